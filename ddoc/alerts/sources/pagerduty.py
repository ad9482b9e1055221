"""PagerDuty: v3 webhook events and v2/v1 extension messages, their incidents, and the
normalisation of the events that act (triggered, reopened, resolved)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from ddoc.alerts.sources.coerced import _coerced
from ddoc.alerts.sources.fields import _mapping, _real_time, _reference, _text, _time
from ddoc.alerts.sources.model import NormalizedAlert
from ddoc.alerts.sources.shape import _block, _object, _require, _Tolerant
from ddoc.platform.ids import short_hash


class PagerDutyService(_Tolerant):
    id: Annotated[str | None, _text("incident.service.id")] = None
    summary: Annotated[str | None, _text("incident.service.summary")] = None
    name: Annotated[str | None, _text("incident.service.name")] = None  # v1/v2


class PagerDutyPriority(_Tolerant):
    summary: Annotated[str | None, _text("incident.priority.summary")] = None
    name: Annotated[str | None, _text("incident.priority.name")] = None


class PagerDutyIncident(_Tolerant):
    """A PagerDuty incident: v3 `event.data`, v2 `messages[].incident`, v1
    `messages[].data.incident`. Every field is optional: older deliveries have no
    `incident_key`, `priority` is null when none is set."""

    id: Annotated[str | None, _text("incident.id")] = None
    type: Annotated[str | None, _text("incident.type")] = None
    title: Annotated[str | None, _text("incident.title")] = None
    summary: Annotated[str | None, _text("incident.summary")] = None
    description: Annotated[str | None, _text("incident.description")] = None
    status: Annotated[str | None, _text("incident.status")] = None
    incident_key: Annotated[str | None, _text("incident.incident_key")] = None
    urgency: Annotated[str | None, _text("incident.urgency")] = None
    html_url: Annotated[str | None, _text("incident.html_url")] = None
    service: Annotated[PagerDutyService | None, _reference("incident.service")] = None
    priority: Annotated[PagerDutyPriority | None, _reference("incident.priority")] = None
    created_at: Annotated[datetime | None, _time("incident.created_at")] = None
    created_on: Annotated[datetime | None, _time("incident.created_on")] = None  # v1
    trigger_summary_data: Annotated[  # v1: {"subject": …}
        dict[str, Any] | None, _mapping("incident.trigger_summary_data")
    ] = None


class PagerDutyEvent(_Tolerant):
    id: Annotated[str | None, _text("event.id")] = None
    event_type: Annotated[str | None, _text("event.event_type")] = None
    resource_type: Annotated[str | None, _text("event.resource_type")] = None
    occurred_at: Annotated[datetime | None, _time("event.occurred_at")] = None
    # Other event types (pagey.ping, service.updated, …) carry other shapes: kept as they came.
    data: Annotated[dict[str, Any], _mapping("event.data", empty=True)] = Field(
        default_factory=dict
    )
    # `data` read as an incident (not part of the body: not dumped, not in the schema).
    incident: SkipJsonSchema[PagerDutyIncident | None] = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _read_incident(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # refused below as not an object
        inner = data.get("data")
        # Only an incident's data is read as one (notes, pings, services are other shapes).
        is_incident = isinstance(inner, dict) and inner.get("type") in (None, "incident")
        return {**data, "incident": inner if is_incident else None}


class PagerDutyMessage(_Tolerant):
    """One message of a v2 (`event`, `incident`) or v1 (`type`, `data.incident`) delivery."""

    id: Annotated[str | None, _text("messages.id")] = None
    event: Annotated[str | None, _text("messages.event")] = None
    type: Annotated[str | None, _text("messages.type")] = None
    created_on: Annotated[datetime | None, _time("messages.created_on")] = None
    incident: PagerDutyIncident | None = None  # v1: moved here from `data.incident`

    @model_validator(mode="before")
    @classmethod
    def _read_incident(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        incident = data.get("incident")
        inner = data.get("data")
        if not isinstance(incident, dict) and isinstance(inner, dict):
            incident = inner.get("incident")
        return {**data, "incident": incident if isinstance(incident, dict) else None}


def _messages(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        _coerced("messages")
        return []
    kept = [m for m in value if isinstance(m, dict)]
    if len(kept) < len(value):
        _coerced("messages")
    return kept


class PagerDutyWebhook(_Tolerant):
    """PagerDuty webhook: a v3 subscription's `{"event": …}`, or a v2/v1 extension's
    `{"messages": […]}` (still sent by older integrations)."""

    event: Annotated[
        PagerDutyEvent | None,
        _block("no PagerDuty event: a v3 webhook carries `event`, a v2 one `messages`"),
    ] = None
    messages: Annotated[list[PagerDutyMessage], BeforeValidator(_messages)] = Field(
        default_factory=list
    )

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        data = _object('a PagerDuty webhook: {"event": {…}}')(data)
        if "messages" in data and data.get("event") is None:
            return {key: value for key, value in data.items() if key != "event"}
        return _require(data, "event")


# v3 event types that act; the others (acknowledged, annotated, priority_updated, …) are news
# about an incident rather than the incident itself: accepted and ignored.
_PAGERDUTY_FIRING = {"incident.triggered", "incident.reopened"}
_PAGERDUTY_RESOLVED = {"incident.resolved"}
# v1/v2 message types (`incident.trigger`, …): the same outcomes.
_PAGERDUTY_V2 = {"incident.trigger": "firing", "incident.resolve": "resolved"}
# An event without its type is read from the incident's status.
_PAGERDUTY_STATUS = {"triggered": "incident.triggered", "resolved": "incident.resolved"}


def normalize_pagerduty(body: PagerDutyWebhook) -> list[NormalizedAlert]:
    event = body.event
    if event is None:
        return [
            _pagerduty_alert(
                message.incident or PagerDutyIncident(),
                status,
                fallback_key=message.id,
                occurred_at=message.created_on,
                raw=message.model_dump(mode="json", exclude_unset=True),
            )
            for message in body.messages
            if (status := _PAGERDUTY_V2.get((message.event or message.type or "").lower()))
        ]
    incident = event.incident or PagerDutyIncident()
    event_type = event.event_type
    if event_type is None:
        event_type = _PAGERDUTY_STATUS.get((incident.status or "").lower())
        _coerced("event.event_type")
    if event_type not in _PAGERDUTY_FIRING | _PAGERDUTY_RESOLVED:
        return []
    status = "resolved" if event_type in _PAGERDUTY_RESOLVED else "firing"
    raw = body.model_dump(mode="json", exclude_unset=True)
    return [
        _pagerduty_alert(
            incident, status, fallback_key=event.id, occurred_at=event.occurred_at, raw=raw
        )
    ]


def _pagerduty_alert(
    incident: PagerDutyIncident,
    status: str,
    *,
    fallback_key: str | None,
    occurred_at: datetime | None,
    raw: dict[str, Any],
) -> NormalizedAlert:
    service_ref = incident.service
    service = (service_ref.summary or service_ref.name) if service_ref else None
    priority = (incident.priority.summary or incident.priority.name) if incident.priority else None
    severity = priority or ("critical" if incident.urgency == "high" else incident.urgency)
    subject = (incident.trigger_summary_data or {}).get("subject")
    title = (
        incident.title
        or incident.summary
        or (subject if isinstance(subject, str) else None)
        or incident.description
    )
    # Deliveries without `incident_key` (older ones, and v1) are de-duplicated by incident.
    dedup_key = incident.incident_key or incident.id or incident.html_url or fallback_key
    if not dedup_key:
        _coerced("incident.id")
        dedup_key = short_hash(json.dumps(raw, sort_keys=True), length=16)
    if not title:
        _coerced("incident.title")
        title = f"PagerDuty incident {incident.id or dedup_key}"
    return NormalizedAlert(
        source="pagerduty",
        dedup_key=dedup_key,
        status=status,
        title=title,
        description=incident.description if incident.description != title else None,
        service=service,
        severity=severity,
        environment=None,
        labels={k: v for k, v in {"service": service, "urgency": incident.urgency}.items() if v},
        annotations={},
        links=[incident.html_url] if incident.html_url else [],
        raw=raw,
        starts_at=_real_time(incident.created_at or incident.created_on or occurred_at),
    )
