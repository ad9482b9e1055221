"""The tenant's execution policy: approvals, escalation deadlines and levels.

Stored in the tenant's settings under `execution_policy` (set with `PATCH /settings`); frozen
into each execution's input when it starts, except PagerDuty routing keys, which are secrets:
stored encrypted in the secrets table (the settings keep a reference, ddoc/platform/secrets.py)
and only read by the escalation activities (they never enter a workflow's history).

    {"red_approvals": 2,
     "wait_minutes": {"critical": 5, "high": 10, "default": 30},
     "escalation_levels": [{"name": "L2 platform", "pagerduty_routing_key": "…",
                            "slack_user_ids": ["U…"]}, …],
     "incident_timeout_minutes": 60,
     "heartbeat_timeout_seconds": 30}
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from ddoc.contracts.execution import EscalationLevel, ExecutionPolicy
from ddoc.platform import secrets

SETTINGS_KEY = "execution_policy"
MAX_LEVELS = 10


class PolicyError(ValueError):
    pass


def execution_policy(settings: dict[str, Any]) -> ExecutionPolicy:
    raw = settings.get(SETTINGS_KEY) or {}
    default = ExecutionPolicy()
    wait = dict(default.wait_seconds)
    for severity, minutes in (raw.get("wait_minutes") or {}).items():
        wait[str(severity).lower()] = round(float(minutes) * 60)
    timeout = raw.get("incident_timeout_minutes", -1)
    return ExecutionPolicy(
        red_approvals=int(raw.get("red_approvals", default.red_approvals)),
        wait_seconds=wait,
        escalation_levels=[
            EscalationLevel(name=str(level["name"])) for level in raw.get("escalation_levels", [])
        ],
        incident_timeout_seconds=default.incident_timeout_seconds
        if timeout == -1
        else (round(float(timeout) * 60) if timeout else None),
        heartbeat_timeout_seconds=int(
            raw.get("heartbeat_timeout_seconds", default.heartbeat_timeout_seconds)
        ),
    )


def escalation_level(settings: dict[str, Any], level: int) -> dict[str, Any] | None:
    """The stored level (1-based). Its `pagerduty_routing_key` is a reference to the encrypted
    secret (or, written by an older release, the key itself): read it with `routing_key`."""
    levels = (settings.get(SETTINGS_KEY) or {}).get("escalation_levels") or []
    return dict(levels[level - 1]) if 1 <= level <= len(levels) else None


def routing_key(session: Session, tenant_id: str, level: dict[str, Any] | None) -> str | None:
    """The level's PagerDuty routing key, decrypted (ddoc/platform/secrets.py); None: no pager."""
    value = secrets.reveal(session, tenant_id, (level or {}).get("pagerduty_routing_key"))
    return str(value) if value else None


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    """The policy as it will be stored; PolicyError with a message a human can act on."""
    known = {
        "red_approvals",
        "wait_minutes",
        "escalation_levels",
        "incident_timeout_minutes",
        "heartbeat_timeout_seconds",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PolicyError(f"unknown execution_policy keys: {', '.join(unknown)}")
    red = raw.get("red_approvals", 1)
    if red not in (1, 2):
        raise PolicyError("red_approvals must be 1 or 2")
    for severity, minutes in (raw.get("wait_minutes") or {}).items():
        if not isinstance(minutes, int | float) or not 0 < minutes <= 24 * 60:
            raise PolicyError(f"wait_minutes.{severity} must be between 0 and 1440 minutes")
    levels = raw.get("escalation_levels") or []
    if not isinstance(levels, list) or len(levels) > MAX_LEVELS:
        raise PolicyError(f"escalation_levels must be a list of at most {MAX_LEVELS} levels")
    for index, level in enumerate(levels, 1):
        if not isinstance(level, dict) or not str(level.get("name") or "").strip():
            raise PolicyError(f"escalation level {index} needs a name")
        slack_users = level.get("slack_user_ids", [])
        if not isinstance(slack_users, list) or not all(
            isinstance(u, str) and u[:1] in ("U", "W") for u in slack_users
        ):
            raise PolicyError(
                f"escalation level {index}: slack_user_ids must be Slack user ids (U…)"
            )
        key = level.get("pagerduty_routing_key")
        if key is not None and (not isinstance(key, str) or len(key) != 32):
            raise PolicyError(
                f"escalation level {index}: pagerduty_routing_key must be the 32-character "
                "integration key of a PagerDuty Events API v2 integration"
            )
    timeout = raw.get("incident_timeout_minutes")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
        raise PolicyError("incident_timeout_minutes must be a number of minutes (0: never)")
    heartbeat = raw.get("heartbeat_timeout_seconds", 30)
    if not isinstance(heartbeat, int) or not 5 <= heartbeat <= 600:
        raise PolicyError("heartbeat_timeout_seconds must be between 5 and 600")
    return raw


def shown(raw: dict[str, Any]) -> dict[str, Any]:
    """The policy as the API shows it: routing keys are write-only."""
    levels = [
        {**level, "pagerduty_routing_key": bool(level.get("pagerduty_routing_key"))}
        for level in raw.get("escalation_levels") or []
    ]
    return {**raw, "escalation_levels": levels} if "escalation_levels" in raw else dict(raw)
