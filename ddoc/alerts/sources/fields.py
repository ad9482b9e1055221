"""The tolerant field validators the sources' models are built from: text, integers, labels,
objects, references, statuses and times, each coercing the shapes the sources send to one form
and noting the coercion (see coerced.py)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from ddoc.alerts.sources.coerced import _coerced

_UNSET: Any = object()  # "no default": the field's own default applies to null


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "NaN and Infinity are not JSON numbers")
    return value


def _number_text(value: int | float) -> str:
    if isinstance(value, float):
        return json.dumps(_finite(value))
    return str(value)


# Keys of an object that stands where a name is usual ({"name": "web", "type": "api"}).
_NAME_KEYS = ("summary", "name", "title", "id", "value", "type")


def _text_of(value: Any) -> str | None:
    """Text for a value that is not text (None for None); nested values as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, dict):
        for key in _NAME_KEYS:
            named = value.get(key)
            if isinstance(named, str) and named.strip():
                return named
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise PydanticCustomError(
            "finite_number", "NaN and Infinity are not JSON numbers"
        ) from None


def _text(where: str, *, max_length: int | None = None, default: Any = _UNSET) -> BeforeValidator:
    """A string field: numbers, booleans and objects become text; null is the default."""

    def coerce(value: Any) -> Any:
        if value is None:
            if default is not _UNSET:
                _coerced(where)
                return default
            return None
        if not isinstance(value, str):
            _coerced(where)
            value = _text_of(value)
        if max_length is not None and len(value) > max_length:
            _coerced(where)
            value = value[:max_length]
        return value

    return BeforeValidator(coerce)


def _int(where: str, *, default: int | None = None) -> BeforeValidator:
    """An integer field: numeric text and whole floats are read, anything else is the default."""

    def coerce(value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if value is None and default is None:
            return None
        _coerced(where)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
            return int(value)
        return default

    return BeforeValidator(coerce)


def _label_value(value: Any) -> str | None:
    return value if isinstance(value, str) else _text_of(value)


def _pairs(items: list[Any]) -> Iterator[tuple[Any, Any]]:
    """Label pairs from a list: "k=v" / "k:v" strings, {"name"|"key": k, "value": v} objects."""
    for item in items:
        if isinstance(item, str):
            key, value = _split_pair(item)
            yield key, value
        elif isinstance(item, dict):
            name = item.get("name", item.get("key"))
            if isinstance(name, str) and name:
                yield name, item.get("value")


def _pair_cut(text: str) -> int:
    """Where `k:v` or `k=v` is cut (whichever separator comes first), -1 for a bare word."""
    return min((i for i in (text.find(":"), text.find("=")) if i > 0), default=-1)


def _split_pair(text: str) -> tuple[str, str]:
    """`k:v` or `k=v` as a pair; a bare word is `word: true`."""
    cut = _pair_cut(text)
    if cut < 0:
        return text.strip(), "true"
    return text[:cut].strip(), text[cut + 1 :].strip()


def _labels(where: str) -> BeforeValidator:
    """A string-to-string map (labels, annotations, details): numbers and booleans become text,
    null values are dropped, a list of `k=v` strings or {name, value} objects is read as pairs,
    and anything else that is not a map is no labels."""

    def coerce(value: Any) -> dict[str, str]:
        if isinstance(value, dict):
            pairs: Any = value.items()
        elif isinstance(value, list):
            _coerced(where)
            pairs = list(_pairs(value))
        elif isinstance(value, str) and value.strip():
            _coerced(where)
            pairs = [_split_pair(part) for part in value.split(",") if part.strip()]
        else:
            _coerced(where)  # null, or something that cannot be labels
            return {}
        labels: dict[str, str] = {}
        for key, item in pairs:
            if item is None:
                _coerced(where)
                continue
            if not isinstance(item, str):
                _coerced(where)
            labels[str(key)] = _label_value(item) or ""
        return labels

    return BeforeValidator(coerce)


def _mapping(where: str, *, empty: bool = False) -> BeforeValidator:
    """An object (Grafana's `values`, PagerDuty's `data`): anything else is none (or `{}` where
    `empty`, null included)."""

    def coerce(value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict) or (value is None and not empty):
            return value
        _coerced(where)
        return {} if empty else None

    return BeforeValidator(coerce)


def _reference(where: str) -> BeforeValidator:
    """An object reference (PagerDuty's service, priority): a bare string is its summary."""

    def coerce(value: Any) -> dict[str, Any] | None:
        if value is None or isinstance(value, dict):
            return value
        _coerced(where)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"summary": _text_of(value)}
        return None

    return BeforeValidator(coerce)


_FIRING_WORDS = {"firing", "alerting", "active", "triggered", "problem", "open"}
_RESOLVED_WORDS = {"resolved", "ok", "normal", "inactive", "recovered", "closed"}


def _status_word(value: Any) -> Literal["firing", "resolved"] | None:
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    if word in _FIRING_WORDS:
        return "firing"
    if word in _RESOLVED_WORDS:
        return "resolved"
    return None


def _status(where: str, *, default: str | None = None) -> BeforeValidator:
    """An alert status: firing or resolved, in any case, or a word the sources use for either
    (alerting, ok, …). Missing, blank or another word is noted and becomes `default` (None: the
    caller decides, the group's status, else firing): an alert's own status is never a reason
    to refuse the alert."""

    def coerce(value: Any) -> str | None:
        if value in ("firing", "resolved") or (value is None and default is None):
            return value  # type: ignore[no-any-return]
        if value is None or (isinstance(value, str) and not value.strip()):
            _coerced(where)
            return default
        word = _status_word(value)
        _coerced(where)
        return word if word is not None else default

    return BeforeValidator(coerce)


# Epoch numbers by magnitude: seconds up to year ~5138, then ms, µs, ns.
_EPOCH_DIVISORS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3), (0.0, 1.0))
_NUMERIC = re.compile(r"\s*[+-]?\d+(\.\d+)?\s*")


def _epoch(value: float) -> datetime | None:
    if not math.isfinite(value) or value <= 0:
        return None
    seconds = next(value / divisor for bound, divisor in _EPOCH_DIVISORS if value >= bound)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)  # RFC 2822 (HTTP dates, some e-mail gateways)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _time(where: str, *, epoch: bool = False) -> BeforeValidator:
    """An optional time: ISO 8601 text (Go's zero time "0001-01-01T00:00:00Z" included, as
    the sources send it for "not set"), or epoch seconds, milliseconds, microseconds or
    nanoseconds as a number or numeric text (told apart by magnitude). Anything unreadable is
    no time: a bad optional time never refuses an alert. Epoch numbers are the documented form
    where `epoch` (OpsGenie), a coercion elsewhere; times without a zone are UTC."""

    def coerce(value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = _epoch(float(value))
            if parsed is None or not epoch:
                _coerced(where)
            return parsed
        if not isinstance(value, str):
            _coerced(where)
            return None
        if _NUMERIC.fullmatch(value):
            parsed = _epoch(float(value))
            _coerced(where)
            return parsed
        parsed = _parse_time(value.strip())
        if parsed is None:
            _coerced(where)
        return parsed

    return BeforeValidator(coerce)


def _real_time(value: datetime | None) -> datetime | None:
    """The time, unless it is Go's zero time (year 1: "not set")."""
    return value if value is not None and value.year > 1 else None
