"""What a body must be to be read at all: a JSON object with its required blocks and a list of
alerts, refused otherwise with a message naming what is missing; and the tolerant base model of
the sources' bodies (unknown fields kept)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

_MISSING: Any = object()  # put in place of a required block the body lacks (see _require)


def _object(what: str) -> Callable[[Any], dict[str, Any]]:
    def check(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "body_not_object",
                "the body is {kind}, not a JSON object: expected {what}",
                {"what": what, "kind": _kind(data)},
            )
        return data

    return check


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None or value is _MISSING:
        return "null"
    return type(value).__name__


def _require(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Mark the required blocks the body lacks, so that their field validator refuses them with a
    message saying what is missing (pydantic's own would only say "Field required")."""
    missing = {key: _MISSING for key in keys if key not in data}
    return {**data, **missing} if missing else data


def _block(message: str) -> BeforeValidator:
    """A required block (`alerts`, `event`, `alert`): absent or null is refused with `message`."""

    def check(value: Any) -> Any:
        if value is _MISSING or value is None:
            raise PydanticCustomError("missing", message)
        return value

    return BeforeValidator(check)


def _alert_list(where: str, message: str) -> BeforeValidator:
    """The list of alerts: absent, null or not a list is refused (there is no alert)."""

    def check(value: Any) -> Any:
        if value is _MISSING or value is None:
            raise PydanticCustomError("missing", message)
        if not isinstance(value, list):
            raise PydanticCustomError(
                "alerts_not_list",
                "{where} must be a list of alert objects, not {kind}",
                {"where": where, "kind": _kind(value)},
            )
        return value

    return BeforeValidator(check)


class _Tolerant(BaseModel):
    # Unknown fields are kept (in `raw`) and otherwise ignored.
    model_config = ConfigDict(extra="allow")
