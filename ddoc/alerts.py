"""Alert webhook bodies and their normalisation into one model.

Each source's body is validated by a pydantic model (a wrong shape is a 422 naming the field),
then normalised into `NormalizedAlert`, which matching and incidents work on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ddoc.ids import short_hash

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


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager webhook, version 4."""

    model_config = ConfigDict(extra="allow")

    version: str = "4"
    groupKey: str | None = None
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str | None = None
    alerts: list[AlertmanagerAlert]


def normalize_alertmanager(body: AlertmanagerWebhook) -> list[NormalizedAlert]:
    alerts = []
    for alert in body.alerts:
        labels = dict(alert.labels)
        annotations = dict(alert.annotations)
        name = labels.get("alertname")
        # Alertmanager's fingerprint identifies the alert's label set; without one, derive it.
        dedup_key = alert.fingerprint or short_hash(json.dumps(labels, sort_keys=True), length=16)
        links = [link for link in (alert.generatorURL, annotations.get("runbook_url")) if link]
        alerts.append(
            NormalizedAlert(
                source="alertmanager",
                dedup_key=dedup_key,
                status=alert.status,
                title=annotations.get("summary") or name or "Alertmanager alert",
                description=annotations.get("description") or annotations.get("message"),
                service=_first(labels, _SERVICE_LABELS),
                severity=labels.get("severity"),
                environment=_first(labels, _ENVIRONMENT_LABELS),
                labels=labels,
                annotations=annotations,
                links=links,
                raw=alert.model_dump(mode="json"),
                starts_at=alert.startsAt,
                alert_name=name,
            )
        )
    return alerts


class GrafanaAlert(AlertmanagerAlert):
    dashboardURL: str | None = None
    panelURL: str | None = None
    silenceURL: str | None = None
    values: dict[str, Any] | None = None
    valueString: str | None = None


class GrafanaWebhook(AlertmanagerWebhook):
    """Grafana alerting webhook contact point (Alertmanager-like, version "1")."""

    version: str = "1"
    orgId: int | None = None
    title: str | None = None
    state: str | None = None
    message: str | None = None
    alerts: list[GrafanaAlert]  # type: ignore[assignment]


def normalize_grafana(body: GrafanaWebhook) -> list[NormalizedAlert]:
    alerts = normalize_alertmanager(body)
    for alert, raw in zip(alerts, body.alerts, strict=True):
        alert.source = "grafana"
        alert.links += [u for u in (raw.dashboardURL, raw.panelURL) if u]
    return alerts


class PagerDutyService(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    summary: str | None = None


class PagerDutyPriority(BaseModel):
    model_config = ConfigDict(extra="allow")
    summary: str | None = None


class PagerDutyIncident(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str | None = None
    title: str | None = None
    status: str | None = None
    incident_key: str | None = None
    urgency: str | None = None
    html_url: str | None = None
    service: PagerDutyService | None = None
    priority: PagerDutyPriority | None = None
    created_at: datetime | None = None


class PagerDutyEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    event_type: str
    resource_type: str | None = None
    occurred_at: datetime | None = None
    # Other event types (pagey.ping, service.updated, …) carry other shapes; incident events
    # are validated as PagerDutyIncident when normalised.
    data: dict[str, Any] = Field(default_factory=dict)


class PagerDutyWebhook(BaseModel):
    """PagerDuty v3 webhook subscription delivery."""

    model_config = ConfigDict(extra="allow")
    event: PagerDutyEvent


# Events that are news about an incident rather than the incident itself (acknowledged,
# annotated, reassigned, …) carry nothing to match or run: they are accepted and ignored.
_PAGERDUTY_FIRING = {"incident.triggered", "incident.reopened"}
_PAGERDUTY_RESOLVED = {"incident.resolved"}


def normalize_pagerduty(body: PagerDutyWebhook) -> list[NormalizedAlert]:
    event = body.event
    if event.event_type not in _PAGERDUTY_FIRING | _PAGERDUTY_RESOLVED:
        return []
    incident = PagerDutyIncident.model_validate(event.data)
    service = incident.service.summary if incident.service else None
    severity = (incident.priority.summary if incident.priority else None) or (
        "critical" if incident.urgency == "high" else incident.urgency
    )
    return [
        NormalizedAlert(
            source="pagerduty",
            dedup_key=incident.incident_key or incident.id,
            status="resolved" if event.event_type in _PAGERDUTY_RESOLVED else "firing",
            title=incident.title or f"PagerDuty incident {incident.id}",
            description=None,
            service=service,
            severity=severity,
            environment=None,
            labels={
                k: v for k, v in {"service": service, "urgency": incident.urgency}.items() if v
            },
            annotations={},
            links=[incident.html_url] if incident.html_url else [],
            raw=body.model_dump(mode="json"),
            starts_at=incident.created_at or event.occurred_at,
        )
    ]


class OpsgenieAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    alertId: str
    message: str
    alias: str | None = None
    tinyId: str | None = None
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    priority: str | None = None
    source: str | None = None


class OpsgenieWebhook(BaseModel):
    """OpsGenie webhook integration delivery."""

    model_config = ConfigDict(extra="allow")
    action: str
    alert: OpsgenieAlert
    integrationName: str | None = None


_OPSGENIE_FIRING = {"Create", "Reopen"}
_OPSGENIE_RESOLVED = {"Close"}


def normalize_opsgenie(body: OpsgenieWebhook) -> list[NormalizedAlert]:
    if body.action not in _OPSGENIE_FIRING | _OPSGENIE_RESOLVED:
        return []
    alert = body.alert
    labels = dict(alert.details)
    for tag in alert.tags:
        key, sep, value = tag.partition(":")
        labels.setdefault(key.strip() if sep else tag, value.strip() if sep else "true")
    return [
        NormalizedAlert(
            source="opsgenie",
            dedup_key=alert.alias or alert.alertId,
            status="resolved" if body.action in _OPSGENIE_RESOLVED else "firing",
            title=alert.message,
            description=alert.description,
            service=_first(labels, _SERVICE_LABELS) or alert.entity,
            severity=alert.priority,
            environment=_first(labels, _ENVIRONMENT_LABELS),
            labels=labels,
            annotations={"description": alert.description} if alert.description else {},
            links=[],
            raw=body.model_dump(mode="json"),
            alert_name=labels.get("alertname"),
        )
    ]


class GenericAlert(BaseModel):
    """dd0c/run's own format, for any tool that can POST JSON."""

    # NaN and Infinity are not JSON: a label cannot be one (Python's parser would let them in).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    title: str = Field(min_length=1, max_length=1000)
    description: str | None = Field(default=None, max_length=20000)
    service: str | None = Field(default=None, max_length=200)
    severity: str | None = Field(default=None, max_length=50)
    environment: str | None = Field(default=None, max_length=200)
    # Numbers and booleans are taken as label values too (as their text): tools emit them.
    labels: dict[str, str | int | float | bool] = Field(default_factory=dict)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=500)
    status: Literal["firing", "resolved"] = "firing"


def normalize_generic(body: GenericAlert) -> list[NormalizedAlert]:
    labels = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.labels.items()}
    dedup_key = body.dedup_key or short_hash(
        body.title, body.service or "", json.dumps(labels, sort_keys=True), length=16
    )
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
            raw=body.model_dump(mode="json"),
            alert_name=labels.get("alertname"),
        )
    ]


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None
