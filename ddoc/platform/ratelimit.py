"""Per-tenant webhook rate limits: a token bucket per tenant, in each API process.

A tenant may deliver `per_second` webhook requests a second on average with bursts of `burst`
(tenant settings `webhook_rate_limit`, else DDOC_WEBHOOK_RATE / DDOC_WEBHOOK_BURST). Over it,
the answer is 429 with Retry-After, which Alertmanager, Grafana and PagerDuty retry. The buckets
live in the process: with N API processes behind a balancer a tenant gets up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class RateLimiter:
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


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
