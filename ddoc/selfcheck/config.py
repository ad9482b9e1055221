"""The tenant setting `self_check` (`POST /settings` or `PATCH /settings`, admin):

    {"self_check": {"enabled": true, "time": "03:00", "time_zone": "Europe/Paris",
                    "environment": "production", "run_read_only": true,
                    "values": {"namespace": "checkout"}}}

- `enabled` (default true once the key is set): the schedule exists; false or removing the key
  deletes it;
- `time`: `HH:MM` (24-hour; `HH:MM:SS` is accepted too, which tests use), in `time_zone` (an
  IANA name, default UTC): when the tenant's schedule starts a run every day;
- `environment` (required): the agent environment checked, i.e. the agents polling
  `ddoc.agent.<tenant>.<environment>`;
- `run_read_only` (default false): also run the read-only (green) steps and the dry-run forms
  of the others on the agent; off, a run only looks for programs, variables and the agent's
  policy;
- `values`: variable values to check with (by variable name), besides the runbook's own label
  selector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SETTINGS_KEY = "self_check"
KEYS = ("enabled", "time", "time_zone", "environment", "run_read_only", "values")
DEFAULT_TIME = "03:00"
MAX_VALUES = 100
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?\Z")
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


class SelfCheckSettingsError(ValueError):
    """A `self_check` setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class SelfCheckConfig:
    environment: str
    enabled: bool = True
    hour: int = 3
    minute: int = 0
    second: int = 0
    time_zone: str = "UTC"
    run_read_only: bool = False
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def time(self) -> str:
        shown = f"{self.hour:02d}:{self.minute:02d}"
        return shown + (f":{self.second:02d}" if self.second else "")


def validate(raw: Any) -> dict[str, Any]:
    """The setting as stored (defaults filled in); SelfCheckSettingsError names what is wrong."""
    if not isinstance(raw, dict):
        raise SelfCheckSettingsError("self_check must be an object")
    unknown = sorted(str(k) for k in raw if k not in KEYS)
    if unknown:
        raise SelfCheckSettingsError(
            f"unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})"
        )
    for key in ("enabled", "run_read_only"):
        if key in raw and not isinstance(raw[key], bool):
            raise SelfCheckSettingsError(f"{key} must be true or false, not {raw[key]!r}")
    time = raw.get("time", DEFAULT_TIME)
    _clock(time)
    zone = raw.get("time_zone", "UTC")
    if not isinstance(zone, str) or not _zone_exists(zone):
        raise SelfCheckSettingsError(
            f"time_zone must be an IANA time zone name such as UTC or Europe/Paris, not {zone!r}"
        )
    environment = raw.get("environment")
    if not isinstance(environment, str) or not _ENVIRONMENT.match(environment):
        raise SelfCheckSettingsError(
            "environment is required: the agent environment to check on (letters, digits, "
            f"'-' and '_', up to 64), not {environment!r}"
        )
    values = raw.get("values", {})
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in values.items()
    ):
        raise SelfCheckSettingsError("values must map variable names to strings")
    if len(values) > MAX_VALUES:
        raise SelfCheckSettingsError(f"values takes at most {MAX_VALUES} variables")
    return {
        "enabled": raw.get("enabled", True),
        "time": time,
        "time_zone": zone,
        "environment": environment,
        "run_read_only": raw.get("run_read_only", False),
        "values": dict(values),
    }


def config_of(settings: Mapping[str, Any]) -> SelfCheckConfig | None:
    """The tenant's self-check, from its settings (validated when stored); None when unset."""
    raw = settings.get(SETTINGS_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        stored = validate(raw)
    except SelfCheckSettingsError:
        return None  # stored before a rule changed: treated as unset, never half-applied
    hour, minute, second = _clock(stored["time"])
    return SelfCheckConfig(
        environment=stored["environment"],
        enabled=stored["enabled"],
        hour=hour,
        minute=minute,
        second=second,
        time_zone=stored["time_zone"],
        run_read_only=stored["run_read_only"],
        values={k.lower(): v for k, v in stored["values"].items()},
    )


def _clock(time: Any) -> tuple[int, int, int]:
    found = _TIME.match(time) if isinstance(time, str) else None
    hour, minute, second = (
        (int(found[1]), int(found[2]), int(found[3] or 0)) if found else (99, 0, 0)
    )
    if hour > 23 or minute > 59 or second > 59:
        raise SelfCheckSettingsError(f'time must be "HH:MM" (24-hour, e.g. "03:00"), not {time!r}')
    return hour, minute, second


def _zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
