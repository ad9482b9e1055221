"""Per-tenant webhook rate limits: a token bucket per tenant, shared by every API process.

A tenant may deliver `per_second` webhook requests a second on average with bursts of `burst`
(tenant settings `webhook_rate_limit`, else DDOC_WEBHOOK_RATE / DDOC_WEBHOOK_BURST). Over it,
the answer is 429 with Retry-After, which Alertmanager, Grafana and PagerDuty retry.

`SharedRateLimiter` keeps the buckets in PostgreSQL (`webhook_rate_buckets`, one row per
tenant): each delivery takes a token with one upsert on the database's clock, so N API processes
behind a balancer share one limit. Should the database not answer, the process falls back to
its own in-process bucket (`RateLimiter`) until it does: with N processes a tenant then gets up
to N times the rate, as before.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

SETTINGS_KEY = "webhook_rate_limit"


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: float


def limit_for(settings: dict[str, Any], default: Limit) -> Limit:
    raw = settings.get(SETTINGS_KEY) or {}
    return Limit(
        per_second=float(raw.get("per_second", default.per_second)),
        burst=float(raw.get("burst", default.burst)),
    )


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"per_second", "burst"})
    if unknown:
        raise ValueError(f"unknown webhook_rate_limit keys: {', '.join(unknown)}")
    for key in ("per_second", "burst"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1e6
        ):
            raise ValueError(f"webhook_rate_limit.{key} must be a number above 0")
    return raw


class Limiter(Protocol):
    def take(self, tenant_id: str, limit: Limit) -> float: ...


class RateLimiter:
    """Buckets in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, tenant_id: str, limit: Limit) -> float:
        """0 when the request may go on; else the seconds until it may be retried."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(tenant_id, (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - at) * limit.per_second)
            if tokens >= 1:
                self._buckets[tenant_id] = (tokens - 1, now)
                return 0.0
            self._buckets[tenant_id] = (tokens, now)
            return (1 - tokens) / limit.per_second


# One statement, on the database's clock (`now()`: the statement's transaction is this one
# statement). A new tenant's bucket starts full; concurrent takes serialize on the tenant's row.
_TAKE_SQL = """
    INSERT INTO {table} AS b ({column}, tokens, granted, updated_at)
    VALUES (:tenant, CASE WHEN :burst >= 1 THEN :burst - 1 ELSE :burst END, :burst >= 1, now())
    ON CONFLICT ({column}) DO UPDATE SET
        tokens = CASE
            WHEN LEAST(:burst, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)::float8)) >= 1
            THEN LEAST(:burst, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)::float8)) - 1
            ELSE LEAST(:burst, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)::float8))
        END,
        granted = LEAST(:burst, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)::float8)) >= 1,
        updated_at = GREATEST(b.updated_at, now())
    RETURNING tokens, granted
    """  # noqa: E501
# The buckets' tables: the webhooks' per tenant, MCP calls' per API key (api/mcp).
WEBHOOK_BUCKETS = ("webhook_rate_buckets", "tenant_id")
API_KEY_BUCKETS = ("api_key_rate_buckets", "key_id")


class SharedRateLimiter:
    """Buckets in PostgreSQL, shared by every process using the database (one upsert a take);
    the in-process buckets while the database does not answer."""

    def __init__(
        self,
        engine: Engine,
        fallback: RateLimiter | None = None,
        *,
        buckets: tuple[str, str] = WEBHOOK_BUCKETS,
    ) -> None:
        self._engine = engine
        table, column = buckets
        self._take = text(_TAKE_SQL.format(table=table, column=column))
        self._fallback = fallback or RateLimiter()
        self._failing = False

    def take(self, tenant_id: str, limit: Limit) -> float:
        """0 when the request may go on; else the seconds until it may be retried. Blocks on
        the database: call it from a thread."""
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                tokens, granted = conn.execute(
                    self._take,
                    {"tenant": tenant_id, "burst": limit.burst, "rate": limit.per_second},
                ).one()
        except SQLAlchemyError as err:
            if not self._failing:
                log.warning("webhook rate limits fall back to this process's buckets: %s", err)
                self._failing = True
            return self._fallback.take(tenant_id, limit)
        self._failing = False
        return 0.0 if granted else (1 - float(tokens)) / limit.per_second


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
