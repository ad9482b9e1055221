"""Alertmanager: the webhook body (version 4, legacy version 3 too), its alerts inheriting the
group's status, and their normalisation (shared with Grafana, whose body is Alertmanager-like)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from ddoc.alerts.sources.coerced import _coerced
from ddoc.alerts.sources.fields import _int, _labels, _real_time, _status, _text, _time
from ddoc.alerts.sources.model import (
    _ENVIRONMENT_LABELS,
    _SERVICE_LABELS,
    NormalizedAlert,
    Status,
    _first,
)
from ddoc.alerts.sources.shape import _alert_list, _object, _require, _Tolerant
from ddoc.platform.ids import short_hash


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
