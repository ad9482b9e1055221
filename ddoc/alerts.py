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


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None
