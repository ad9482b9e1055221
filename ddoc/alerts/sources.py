"""Alert webhook bodies and their normalisation into one model.

Why this file is long: five sources' models, their tolerant validators and normalisers; one
module a source is the split planned in issue 16 (ddoc/alerts/sources/).

Each source's body is validated by a pydantic model, then normalised into `NormalizedAlert`,
which matching and incidents work on.

The models are tolerant: a receiver that refuses an alert loses a page. They take every shape
the sources are documented or known to send — a per-alert status left to the group's, numbers
where strings are usual and the reverse, `null` where a value is usual, absent optional blocks,
unknown fields (ignored), times as ISO text or epoch seconds/milliseconds/nanoseconds — and
coerce them to one form. Each coercion is noted (see `recording_coercions`; the webhook route
counts them in `ddoc_webhook_coerced_total{source,field}`). A body is refused (a 422 naming the
field) only when it cannot be an alert at all: not a JSON object, no alerts in it, an alert
that is not an object, or NaN/Infinity (not JSON). A status that is neither firing nor resolved
is read as the group's, else firing: a page for nothing costs less than a lost one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ddoc.platform.ids import short_hash

# Labels naming the affected service, in order of preference.
_SERVICE_LABELS = ("service", "app", "application", "app_kubernetes_io_name", "service_name")
_ENVIRONMENT_LABELS = ("environment", "env", "stage", "cluster")


@dataclass
class NormalizedAlert:
    source: str
    dedup_key: str
    status: str  # firing | resolved
    title: str
    description: str | None
    service: str | None
    severity: str | None
    environment: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    links: list[str]
    raw: dict[str, Any]
    starts_at: datetime | None = None
    alert_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- what was coerced ----------------------------------------------------------------------------

# The coercions of the body being validated, per context (each request's validation runs in its
# own context: a task, or a thread's copy), so concurrent deliveries never mix their notes.
_COERCED: ContextVar[set[str] | None] = ContextVar("ddoc_alert_coercions", default=None)


@contextmanager
def recording_coercions() -> Iterator[set[str]]:
    """Collect, while validating and normalising one body, the fields that were coerced: dotted
    names of the source's fields (`alerts.status`, `alert.priority`, …), each once."""
    found: set[str] = set()
    token = _COERCED.set(found)
    try:
        yield found
    finally:
        _COERCED.reset(token)


def _coerced(where: str) -> None:
    found = _COERCED.get()
    if found is not None:
        found.add(where)


# --- coercions -----------------------------------------------------------------------------------

_UNSET: Any = object()  # "no default": the field's own default applies to null
_MISSING: Any = object()  # put in place of a required block the body lacks (see _require)


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


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None


# --- Alertmanager ----------------------------------------------------------------------------

Status = Literal["firing", "resolved"]


class AlertmanagerAlert(_Tolerant):
    # Missing: the group's status (see AlertmanagerWebhook), set once the body is validated.
    status: Annotated[Status | None, _status("alerts.status")] = None
    labels: Annotated[dict[str, str], _labels("alerts.labels")] = Field(default_factory=dict)
    annotations: Annotated[dict[str, str], _labels("alerts.annotations")] = Field(
        default_factory=dict
    )
    startsAt: Annotated[datetime | None, _time("alerts.startsAt")] = None
    endsAt: Annotated[datetime | None, _time("alerts.endsAt")] = None
    generatorURL: Annotated[str | None, _text("alerts.generatorURL")] = None
    fingerprint: Annotated[str | None, _text("alerts.fingerprint")] = None


class AlertmanagerWebhook(_Tolerant):
    """Alertmanager webhook (version 4; legacy version 3 bodies too)."""

    _what: ClassVar[str] = "an Alertmanager webhook with an `alerts` list"

    version: Annotated[str, _text("version", default="4")] = "4"
    # A long regex-like text; legacy v3 bodies carry a number (above 2^53: kept exactly).
    groupKey: Annotated[str | None, _text("groupKey")] = None
    truncatedAlerts: Annotated[int, _int("truncatedAlerts", default=0)] = 0
    status: Annotated[Status | None, _status("status")] = None
    receiver: Annotated[str | None, _text("receiver")] = None
    groupLabels: Annotated[dict[str, str], _labels("groupLabels")] = Field(default_factory=dict)
    commonLabels: Annotated[dict[str, str], _labels("commonLabels")] = Field(default_factory=dict)
    commonAnnotations: Annotated[dict[str, str], _labels("commonAnnotations")] = Field(
        default_factory=dict
    )
    externalURL: Annotated[str | None, _text("externalURL")] = None
    alerts: Annotated[
        list[AlertmanagerAlert],
        _alert_list("alerts", "no alerts: the body has no `alerts` list, so nothing to page about"),
    ]

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        return _require(cls._reshape(_object(cls._what)(data)), "alerts")

    @classmethod
    def _reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data

    def _group_status(self) -> Status | None:
        return self.status

    @model_validator(mode="after")
    def _inherit_status(self) -> AlertmanagerWebhook:
        """An alert without a status of its own has the group's; without either, it is resolved
        if it ended in the past (as Alertmanager itself decides), else firing."""
        group = self._group_status()
        now = datetime.now(UTC)
        for alert in self.alerts:
            if alert.status is None:
                _coerced("alerts.status")
                ended = _real_time(alert.endsAt)
                alert.status = group or ("resolved" if ended and ended <= now else "firing")
        return self


def normalize_alertmanager(body: AlertmanagerWebhook) -> list[NormalizedAlert]:
    return [_alertmanager_alert(body, alert, "alertmanager") for alert in body.alerts]


def _alertmanager_alert(
    body: AlertmanagerWebhook, alert: AlertmanagerAlert, source: str
) -> NormalizedAlert:
    # The group's common labels and annotations are every alert's (a no-op for Alertmanager's
    # own bodies; hand-written ones sometimes put them only there).
    labels = _with_defaults(alert.labels, body.commonLabels)
    annotations = _with_defaults(alert.annotations, body.commonAnnotations)
    name = labels.get("alertname")
    # Alertmanager's fingerprint identifies the alert's label set; without one, derive it.
    dedup_key = alert.fingerprint or short_hash(json.dumps(labels, sort_keys=True), length=16)
    links = [link for link in (alert.generatorURL, annotations.get("runbook_url")) if link]
    return NormalizedAlert(
        source=source,
        dedup_key=dedup_key,
        status=alert.status or "firing",
        title=annotations.get("summary") or name or "Alertmanager alert",
        description=annotations.get("description") or annotations.get("message"),
        service=_first(labels, _SERVICE_LABELS),
        severity=labels.get("severity"),
        environment=_first(labels, _ENVIRONMENT_LABELS),
        labels=labels,
        annotations=annotations,
        links=links,
        raw=alert.model_dump(mode="json"),
        starts_at=_real_time(alert.startsAt),
        alert_name=name,
    )


def _with_defaults(values: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
    missing = {k: v for k, v in defaults.items() if k not in values}
    return {**values, **missing} if missing else dict(values)


# --- Grafana ---------------------------------------------------------------------------------


class GrafanaAlert(AlertmanagerAlert):
    dashboardURL: Annotated[str | None, _text("alerts.dashboardURL")] = None
    panelURL: Annotated[str | None, _text("alerts.panelURL")] = None
    silenceURL: Annotated[str | None, _text("alerts.silenceURL")] = None
    # The query results: an object of numbers, or absent/null; `valueString` is their text.
    values: Annotated[dict[str, Any] | None, _mapping("alerts.values")] = None
    valueString: Annotated[str | None, _text("alerts.valueString")] = None


# Grafana's legacy (pre-unified alerting) states: `ok` is resolved, the others fire.
_LEGACY_RESOLVED = {"ok", "normal", "paused"}


class GrafanaWebhook(AlertmanagerWebhook):
    """Grafana alerting webhook contact point (Alertmanager-like, version "1"); also the legacy
    (Grafana 7/8 dashboard alerting) body — one rule: `ruleName`, `state`, `evalMatches` — and
    Grafana OnCall's outgoing webhook (`alert_group`, `alert_payload`)."""

    _what: ClassVar[str] = "a Grafana webhook with an `alerts` list"

    version: Annotated[str, _text("version", default="1")] = "1"
    orgId: Annotated[int | None, _int("orgId")] = None
    title: Annotated[str | None, _text("title")] = None
    state: Annotated[str | None, _text("state")] = None
    message: Annotated[str | None, _text("message")] = None
    alerts: Annotated[  # type: ignore[assignment]
        list[GrafanaAlert],
        _alert_list("alerts", "no alerts: the body has no `alerts` list, so nothing to page about"),
    ]

    @classmethod
    def _reshape(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "alerts" in data:
            return data
        if any(key in data for key in ("ruleName", "ruleId", "ruleUrl", "evalMatches")):
            _coerced("body")
            return {**data, "alerts": [_legacy_grafana_alert(data)]}
        if isinstance(data.get("alert_group"), dict):
            _coerced("body")
            return {**data, "alerts": _oncall_alerts(data)}
        return data

    def _group_status(self) -> Status | None:
        return self.status or _status_word(self.state)


def _legacy_grafana_alert(data: dict[str, Any]) -> dict[str, Any]:
    tags = data.get("tags")
    labels: dict[str, Any] = dict(tags) if isinstance(tags, dict) else {}
    name = data.get("ruleName") or data.get("title")
    if name is not None:
        labels["alertname"] = name
    matches = data.get("evalMatches")
    values = {
        str(m.get("metric")): m.get("value")
        for m in (matches if isinstance(matches, list) else [])
        if isinstance(m, dict)
    }
    state = data.get("state")
    rule = data.get("ruleId")
    return {
        "status": "resolved" if isinstance(state, str) and state in _LEGACY_RESOLVED else "firing",
        "labels": labels,
        "annotations": {"description": data["message"]} if data.get("message") else {},
        "generatorURL": data.get("ruleUrl"),
        "fingerprint": f"grafana-rule-{data.get('orgId', 0)}-{rule}" if rule is not None else None,
        "values": values or None,
    }


def _oncall_alerts(data: dict[str, Any]) -> list[Any]:
    """Grafana OnCall's outgoing webhook: the alert group (its state decides: the payload is its
    first alert's, still firing when the group resolves) and that alert's payload."""
    group = data["alert_group"]
    status = "resolved" if _status_word(group.get("state")) == "resolved" else "firing"
    payload = data.get("alert_payload")
    if isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
        alerts = payload["alerts"]
    elif isinstance(payload, dict) and ("labels" in payload or "annotations" in payload):
        alerts = [payload]
    else:
        title = group.get("title") or "Grafana OnCall alert group"
        alerts = [{"labels": {"alertname": title}, "fingerprint": f"oncall-{group.get('id')}"}]
    return [{**a, "status": status} if isinstance(a, dict) else a for a in alerts]


def normalize_grafana(body: GrafanaWebhook) -> list[NormalizedAlert]:
    alerts = []
    for raw in body.alerts:
        alert = _alertmanager_alert(body, raw, "grafana")
        alert.links += [u for u in (raw.dashboardURL, raw.panelURL) if u and u not in alert.links]
        alert.extra = {
            k: v for k, v in {"values": raw.values, "valueString": raw.valueString}.items() if v
        }
        alerts.append(alert)
    return alerts


# --- PagerDuty -------------------------------------------------------------------------------


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


# --- OpsGenie --------------------------------------------------------------------------------


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


# --- generic ---------------------------------------------------------------------------------

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
