"""Blast-radius limits: how many executions intake may start by itself, where autopilot may run.

Stored in the tenant's settings under `blast_radius` (set with `PATCH /settings`; docs/LIMITS.md):

    {"max_concurrent_per_runbook": 5,      # running, awaiting_human or stalled executions
     "max_concurrent_per_service": 10,     # of the alert's service (executions of incidents)
     "max_runs_per_hour": {"autopilot": 6, "copilot": 20},   # per runbook, per mode
     "production_environments": ["production", "prod", "prd"],  # autopilot never runs there
     "breaker": {"failures": 3, "window_minutes": 60},        # ddoc/trust/breaker.py
     "owner_level": 1,                     # the escalation level paged as the runbook's owner
     "runbooks": {"rb_…": {…the same keys, for that runbook…}}}

`decide` is the rule intake applies before it starts an execution for an alert: the mode to run
in (a production environment or an open circuit breaker turn autopilot into copilot) and,
for automatic starts, a refusal when a count limit is reached. It is pure; `usage` counts what
it looks at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlmodel import Session

from ddoc.contracts.execution import ExecutionMode

SETTINGS_KEY = "blast_radius"
# Executions that hold a slot: they may still act.
ACTIVE_STATUSES = ("running", "awaiting_human", "stalled")
_MAX_COUNT = 10_000
_MODES = tuple(m.value for m in ExecutionMode)
_LIMIT_KEYS = (
    "max_concurrent_per_runbook",
    "max_concurrent_per_service",
    "max_runs_per_hour",
    "production_environments",
    "breaker",
    "owner_level",
)


class LimitsError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one runbook: the tenant's, with the runbook's overrides."""

    max_concurrent_per_runbook: int = 5
    max_concurrent_per_service: int = 10
    max_runs_per_hour: dict[str, int] = field(
        default_factory=lambda: {"autopilot": 6, "copilot": 20}
    )
    production_environments: tuple[str, ...] = ("production", "prod", "prd")
    breaker_failures: int = 3
    breaker_window_minutes: int = 60
    owner_level: int = 1

    def is_production(self, environment: str | None) -> bool:
        wanted = (environment or "").strip().lower()
        return bool(wanted) and wanted in {e.lower() for e in self.production_environments}

    def shown(self) -> dict[str, Any]:
        return {
            "max_concurrent_per_runbook": self.max_concurrent_per_runbook,
            "max_concurrent_per_service": self.max_concurrent_per_service,
            "max_runs_per_hour": dict(self.max_runs_per_hour),
            "production_environments": list(self.production_environments),
            "breaker": {
                "failures": self.breaker_failures,
                "window_minutes": self.breaker_window_minutes,
            },
            "owner_level": self.owner_level,
        }


def _apply(limits: Limits, raw: dict[str, Any]) -> Limits:
    hourly = dict(limits.max_runs_per_hour)
    hourly.update({str(k): int(v) for k, v in (raw.get("max_runs_per_hour") or {}).items()})
    breaker = raw.get("breaker") or {}
    return Limits(
        max_concurrent_per_runbook=int(
            raw.get("max_concurrent_per_runbook", limits.max_concurrent_per_runbook)
        ),
        max_concurrent_per_service=int(
            raw.get("max_concurrent_per_service", limits.max_concurrent_per_service)
        ),
        max_runs_per_hour=hourly,
        production_environments=tuple(
            str(e) for e in raw.get("production_environments", limits.production_environments)
        ),
        breaker_failures=int(breaker.get("failures", limits.breaker_failures)),
        breaker_window_minutes=int(breaker.get("window_minutes", limits.breaker_window_minutes)),
        owner_level=int(raw.get("owner_level", limits.owner_level)),
    )


def effective(settings: dict[str, Any], runbook_id: str | None = None) -> Limits:
    """The tenant's limits (defaults for keys it did not set), with the runbook's overrides."""
    raw = settings.get(SETTINGS_KEY) or {}
    limits = _apply(Limits(), raw)
    override = (raw.get("runbooks") or {}).get(runbook_id) if runbook_id else None
    return _apply(limits, override) if override else limits


def _count(where: str, value: Any, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= _MAX_COUNT:
        raise LimitsError(f"{where} must be a whole number between {minimum} and {_MAX_COUNT}")


def _validate_limits(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise LimitsError(f"{where} must be an object")
    unknown = sorted(set(raw) - set(_LIMIT_KEYS))
    if unknown:
        raise LimitsError(f"unknown {where} keys: {', '.join(unknown)}")
    for key in ("max_concurrent_per_runbook", "max_concurrent_per_service"):
        if key in raw:
            _count(f"{where}.{key}", raw[key])
    hourly = raw.get("max_runs_per_hour", {})
    if not isinstance(hourly, dict):
        raise LimitsError(f"{where}.max_runs_per_hour must be an object of mode: count")
    for mode, count in hourly.items():
        if mode not in _MODES:
            raise LimitsError(
                f"{where}.max_runs_per_hour: unknown mode {mode!r} (one of {', '.join(_MODES)})"
            )
        _count(f"{where}.max_runs_per_hour.{mode}", count)
    environments = raw.get("production_environments", [])
    if not isinstance(environments, list) or not all(
        isinstance(e, str) and e.strip() for e in environments
    ):
        raise LimitsError(f"{where}.production_environments must be a list of environment names")
    breaker = raw.get("breaker", {})
    if not isinstance(breaker, dict) or set(breaker) - {"failures", "window_minutes"}:
        raise LimitsError(f"{where}.breaker takes failures and window_minutes")
    if "failures" in breaker:
        _count(f"{where}.breaker.failures", breaker["failures"], minimum=1)
    if "window_minutes" in breaker:
        _count(f"{where}.breaker.window_minutes", breaker["window_minutes"], minimum=1)
    if "owner_level" in raw:
        _count(f"{where}.owner_level", raw["owner_level"], minimum=1)


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    """The limits as they will be stored; LimitsError with a message a human can act on."""
    per_runbook = raw.get("runbooks", {})
    _validate_limits({k: v for k, v in raw.items() if k != "runbooks"}, "blast_radius")
    if not isinstance(per_runbook, dict):
        raise LimitsError("blast_radius.runbooks must be an object of runbook id: limits")
    for runbook_id, override in per_runbook.items():
        _validate_limits(override, f"blast_radius.runbooks.{runbook_id}")
    return raw


@dataclass(frozen=True)
class Usage:
    """What the limits are compared with, counted now."""

    running_runbook: int  # active executions of the runbook
    running_service: int  # active executions of incidents of the alert's service
    runs_last_hour: dict[str, int]  # executions of the runbook created in the last hour, by mode


def usage(session: Session, *, tenant_id: str, runbook_id: str, service: str | None) -> Usage:
    running = session.execute(
        text(
            "SELECT count(*) FROM executions WHERE tenant_id = :tenant AND runbook_id = :runbook"
            " AND status = ANY(:active)"
        ),
        {"tenant": tenant_id, "runbook": runbook_id, "active": list(ACTIVE_STATUSES)},
    ).scalar_one()
    hourly = session.execute(
        text(
            "SELECT mode, count(*) AS n FROM executions"
            " WHERE tenant_id = :tenant AND runbook_id = :runbook"
            " AND created_at >= now() - interval '1 hour' GROUP BY mode"
        ),
        {"tenant": tenant_id, "runbook": runbook_id},
    ).all()
    running_service = 0
    if service:
        running_service = session.execute(
            text(
                "SELECT count(*) FROM executions e JOIN incidents i ON i.id = e.incident_id"
                " WHERE e.tenant_id = :tenant AND i.tenant_id = :tenant"
                " AND i.service = :service AND e.status = ANY(:active)"
            ),
            {"tenant": tenant_id, "service": service, "active": list(ACTIVE_STATUSES)},
        ).scalar_one()
    return Usage(
        running_runbook=int(running),
        running_service=int(running_service),
        runs_last_hour={str(r.mode): int(r.n) for r in hourly},
    )


@dataclass(frozen=True)
class StartDecision:
    """The mode to run in and why it changed, or a refusal (`refused` says which limit)."""

    mode: ExecutionMode
    reasons: list[str] = field(default_factory=list)  # downgrades, in order
    refused: str | None = None  # "limit reached: … (limit N)"
    limit: str | None = None  # the name of the limit that refused
    limit_value: int | None = None

    @property
    def downgraded(self) -> bool:
        return bool(self.reasons)


def decide(
    limits: Limits,
    *,
    mode: ExecutionMode,
    environment: str | None,
    usage: Usage | None,
    breaker_open: bool,
    service: str | None = None,
) -> StartDecision:
    """The production gate and the circuit breaker turn autopilot into copilot; with `usage`
    (automatic starts only) a count limit reached refuses the start."""
    reasons: list[str] = []
    if mode == ExecutionMode.AUTOPILOT and limits.is_production(environment):
        mode = ExecutionMode.COPILOT
        reasons.append(f"production requires a human: environment {environment!r} runs copilot")
    if mode == ExecutionMode.AUTOPILOT and breaker_open:
        mode = ExecutionMode.COPILOT
        reasons.append("circuit breaker open: autopilot is suspended, runs copilot")
    if usage is None:
        return StartDecision(mode, reasons)
    checks = [
        (
            "max_concurrent_per_runbook",
            usage.running_runbook,
            limits.max_concurrent_per_runbook,
            "executions of this runbook running",
        ),
    ]
    if service:
        checks.append(
            (
                "max_concurrent_per_service",
                usage.running_service,
                limits.max_concurrent_per_service,
                f"executions for service {service!r} running",
            )
        )
    hourly = limits.max_runs_per_hour.get(mode.value)
    if hourly is not None:
        checks.append(
            (
                f"max_runs_per_hour.{mode.value}",
                usage.runs_last_hour.get(mode.value, 0),
                hourly,
                f"{mode.value} runs of this runbook in the last hour",
            )
        )
    for name, found, limit, what in checks:
        if found >= limit:
            return StartDecision(
                mode,
                reasons,
                refused=f"limit reached: {found} {what} (limit {limit})",
                limit=name,
                limit_value=limit,
            )
    return StartDecision(mode, reasons)


class LimitsView(BaseModel):
    """A runbook's effective limits and what counts against them now (GET /runbooks/{id})."""

    effective: dict[str, Any]
    running_now: int
    runs_last_hour: dict[str, int]


def view(
    session: Session, *, tenant_id: str, runbook_id: str, settings: dict[str, Any]
) -> LimitsView:
    found = usage(session, tenant_id=tenant_id, runbook_id=runbook_id, service=None)
    limits = effective(settings, runbook_id)
    hourly = {mode: found.runs_last_hour.get(mode, 0) for mode in limits.max_runs_per_hour}
    hourly.update(found.runs_last_hour)
    return LimitsView(
        effective=limits.shown(), running_now=found.running_runbook, runs_last_hour=hourly
    )
