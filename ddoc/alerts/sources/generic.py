"""dd0c/run's own generic format (`GenericAlert`), for any tool that can POST JSON: its title
fallbacks, its dedup key, and its normalisation."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ddoc.alerts.sources.coerced import _coerced
from ddoc.alerts.sources.fields import _labels, _status, _text, _text_of
from ddoc.alerts.sources.model import (
    _ENVIRONMENT_LABELS,
    _SERVICE_LABELS,
    NormalizedAlert,
    Status,
    _first,
)
from ddoc.alerts.sources.shape import _block, _object, _require
from ddoc.platform.ids import short_hash

# Where a title may be instead, in order: other tools' names for it.
_TITLE_FALLBACKS = ("summary", "message", "name")
_NO_TITLE = (
    "no title: a generic alert needs `title` (or `summary`, `message`, `name`, a `labels.alertname`"
    " or a `description`)"
)


def _dedup_key(value: Any) -> Any:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 500):
        return value
    _coerced("dedup_key")
    text = _text_of(value)
    if not text:
        return None
    if len(text) > 500:  # a long key, still one key: its head and a digest of all of it
        return f"{text[:400]}~{short_hash(text, length=32)}"
    return text


class GenericAlert(BaseModel):
    """dd0c/run's own format, for any tool that can POST JSON.

    An unknown field is ignored like the sources' (kept in `raw`) and counted as the coerced
    field `unknown_field`, so that a misspelt one (`sevrity`) shows in the metrics and in
    `POST /match/generic`'s `coerced` instead of costing the page."""

    # NaN and Infinity are not JSON: a label cannot be one (Python's parser would let them in).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    title: Annotated[str, _text("title", max_length=1000), _block(_NO_TITLE)] = Field(
        min_length=1, max_length=1000
    )
    # Other tools' names for the title, taken when `title` is absent or empty.
    summary: Annotated[str | None, _text("summary")] = None
    message: Annotated[str | None, _text("message")] = None
    name: Annotated[str | None, _text("name")] = None
    description: Annotated[str | None, _text("description", max_length=20000)] = Field(
        default=None, max_length=20000
    )
    service: Annotated[str | None, _text("service", max_length=200)] = Field(
        default=None, max_length=200
    )
    severity: Annotated[str | None, _text("severity", max_length=50)] = Field(
        default=None, max_length=50
    )
    environment: Annotated[str | None, _text("environment", max_length=200)] = Field(
        default=None, max_length=200
    )
    # Numbers and booleans are taken as label values too (as their text): tools emit them.
    labels: Annotated[dict[str, str], _labels("labels")] = Field(default_factory=dict)
    dedup_key: Annotated[str | None, BeforeValidator(_dedup_key)] = Field(
        default=None, min_length=1, max_length=500
    )
    status: Annotated[Status, _status("status", default="firing")] = "firing"

    @model_validator(mode="before")
    @classmethod
    def _title(cls, data: Any) -> Any:
        data = _object('a generic alert: {"title": …}')(data)
        if set(data) - set(cls.model_fields):
            _coerced("unknown_field")
        title = data.get("title")
        if title is not None and not (isinstance(title, str) and not title.strip()):
            return data  # a title (its field coerces numbers and the like to text)
        labels = data.get("labels")
        fallbacks = [data.get(key) for key in _TITLE_FALLBACKS]
        fallbacks.append(labels.get("alertname") if isinstance(labels, dict) else None)
        description = data.get("description")
        if isinstance(description, str) and description.strip():
            fallbacks.append(description.strip().splitlines()[0])
        for candidate in fallbacks:
            if isinstance(candidate, str) and candidate.strip():
                _coerced("title")
                return {**data, "title": candidate}
        return _require(data, "title")


def normalize_generic(body: GenericAlert) -> list[NormalizedAlert]:
    labels = dict(body.labels)
    dedup_key = body.dedup_key or short_hash(
        body.title, body.service or "", json.dumps(labels, sort_keys=True), length=16
    )
    absent = {key for key in _TITLE_FALLBACKS if getattr(body, key) is None}
    return [
        NormalizedAlert(
            source="generic",
            dedup_key=dedup_key,
            status=body.status,
            title=body.title,
            description=body.description,
            service=body.service or _first(labels, _SERVICE_LABELS),
            severity=body.severity or labels.get("severity"),
            environment=body.environment or _first(labels, _ENVIRONMENT_LABELS),
            labels=labels,
            annotations={"description": body.description} if body.description else {},
            links=[],
            raw=body.model_dump(mode="json", exclude=absent),
            alert_name=labels.get("alertname"),
        )
    ]
