"""The one model every source's alerts are normalised into (`NormalizedAlert`), which matching
and incidents work on, and what the sources' normalisers share: the alert status type and the
labels that name an alert's service and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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


Status = Literal["firing", "resolved"]


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if labels.get(key):
            return labels[key]
    return None
