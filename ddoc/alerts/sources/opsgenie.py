"""OpsGenie: the webhook integration's body, its priority and tags coercions, and the
normalisation of the actions that act (create, reopen, close)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from ddoc.alerts.sources.coerced import _coerced
from ddoc.alerts.sources.fields import (
    _label_value,
    _labels,
    _pair_cut,
    _real_time,
    _split_pair,
    _text,
    _text_of,
    _time,
)
from ddoc.alerts.sources.model import (
    _ENVIRONMENT_LABELS,
    _SERVICE_LABELS,
    NormalizedAlert,
    _first,
)
from ddoc.alerts.sources.shape import _block, _object, _require, _Tolerant
from ddoc.platform.ids import short_hash


def _priority(where: str) -> BeforeValidator:
    """OpsGenie priority: "P1"…"P5", also sent as the number 3 or the text "3" or "p3"."""

    def coerce(value: Any) -> str | None:
        if value is None or (isinstance(value, str) and re.fullmatch(r"P[1-5]", value)):
            return value
        _coerced(where)
        text = _text_of(value)
        if text is None:
            return None
        match = re.fullmatch(r"\s*[Pp]?([1-5])(\.0)?\s*", text)
        return f"P{match.group(1)}" if match else (text.strip() or None)

    return BeforeValidator(coerce)


def _tags(where: str) -> BeforeValidator:
    """OpsGenie tags: a list of strings (`key:value`, `key=value` or a bare word), also sent as
    one comma-separated string, an object, numbers, or one string of several `k:v` words."""

    def coerce(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            _coerced(where)
            items: list[Any] = value.split(",")
        elif isinstance(value, dict):
            _coerced(where)
            items = [f"{k}:{_label_value(v)}" for k, v in value.items() if v is not None]
        elif isinstance(value, list):
            items = value
        else:
            _coerced(where)
            return []
        tags: list[str] = []
        for item in items:
            if item is None:
                _coerced(where)
                continue
            if not isinstance(item, str):
                _coerced(where)
                item = _text_of(item) or ""
            words = item.split()
            if len(words) > 1 and all(_pair_cut(w) > 0 for w in words):
                _coerced(where)  # "component:mysql env:live": several tags in one
                tags += words
            elif item.strip():
                tags.append(item.strip())
        return tags

    return BeforeValidator(coerce)


def _message(value: Any) -> Any:
    # OpsGenie pads some messages with leading spaces (and cuts them at 130 characters).
    return value.strip() if isinstance(value, str) else value


class OpsgenieAlert(_Tolerant):
    alertId: Annotated[str | None, _text("alert.alertId")] = None
    message: Annotated[str | None, _text("alert.message"), BeforeValidator(_message)] = None
    alias: Annotated[str | None, _text("alert.alias")] = None
    tinyId: Annotated[str | None, _text("alert.tinyId")] = None
    entity: Annotated[str | None, _text("alert.entity")] = None
    tags: Annotated[list[str], _tags("alert.tags")] = Field(default_factory=list)
    description: Annotated[str | None, _text("alert.description")] = None
    # When the origin is Alertmanager, its labels sit here (and only here).
    details: Annotated[dict[str, str], _labels("alert.details")] = Field(default_factory=dict)
    priority: Annotated[str | None, _priority("alert.priority")] = None
    # A string here (the top-level `source` is an object: kept as it came).
    source: Annotated[str | None, _text("alert.source")] = None
    # Milliseconds and nanoseconds since the epoch respectively (as OpsGenie sends them).
    createdAt: Annotated[datetime | None, _time("alert.createdAt", epoch=True)] = None
    updatedAt: Annotated[datetime | None, _time("alert.updatedAt", epoch=True)] = None


class OpsgenieWebhook(_Tolerant):
    """OpsGenie webhook integration delivery."""

    # Without an action the delivery is taken as a new alert (a lost page costs more).
    action: Annotated[str, _text("action", default="Create")] = "Create"
    alert: Annotated[
        OpsgenieAlert,
        _block("no OpsGenie alert: the body has no `alert` object"),
    ]
    integrationName: Annotated[str | None, _text("integrationName")] = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        data = _object('an OpsGenie webhook: {"action": …, "alert": {…}}')(data)
        if "action" not in data:
            _coerced("action")
        return _require(data, "alert")


_OPSGENIE_FIRING = {"create", "reopen"}
_OPSGENIE_RESOLVED = {"close"}


def normalize_opsgenie(body: OpsgenieWebhook) -> list[NormalizedAlert]:
    action = body.action.strip().lower()
    if action not in _OPSGENIE_FIRING | _OPSGENIE_RESOLVED:
        return []
    alert = body.alert
    labels = dict(alert.details)
    for tag in alert.tags:
        key, value = _split_pair(tag)
        labels.setdefault(key, value)
    description = alert.description or None
    title = alert.message
    if not title:
        _coerced("alert.message")
        first_line = (description or "").strip().splitlines()[:1]
        title = (
            (first_line[0][:1000] if first_line else None)
            or labels.get("alertname")
            or alert.alias
            or f"OpsGenie alert {alert.tinyId or alert.alertId or ''}".strip()
        )
    dedup_key = alert.alias or alert.alertId or alert.tinyId
    if not dedup_key:
        _coerced("alert.alertId")
        dedup_key = short_hash(title, json.dumps(labels, sort_keys=True), length=16)
    return [
        NormalizedAlert(
            source="opsgenie",
            dedup_key=dedup_key,
            status="resolved" if action in _OPSGENIE_RESOLVED else "firing",
            title=title,
            description=description,
            service=_first(labels, _SERVICE_LABELS) or alert.entity or None,
            severity=alert.priority or labels.get("severity"),
            environment=_first(labels, _ENVIRONMENT_LABELS),
            labels=labels,
            annotations={"description": description} if description else {},
            links=[],
            raw=body.model_dump(mode="json"),
            starts_at=_real_time(alert.createdAt),
            alert_name=labels.get("alertname"),
        )
    ]
