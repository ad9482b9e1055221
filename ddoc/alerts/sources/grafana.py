"""Grafana: the alerting contact point's body (Alertmanager-like), the legacy dashboard alerting
body and Grafana OnCall's outgoing webhook read as it, and their normalisation (query values,
dashboard and panel links)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from ddoc.alerts.sources.alertmanager import (
    AlertmanagerAlert,
    AlertmanagerWebhook,
    _alertmanager_alert,
)
from ddoc.alerts.sources.coerced import _coerced
from ddoc.alerts.sources.fields import _int, _mapping, _status_word, _text
from ddoc.alerts.sources.model import NormalizedAlert, Status
from ddoc.alerts.sources.shape import _alert_list


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
