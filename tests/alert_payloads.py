"""Builders of webhook bodies shaped exactly like the sources send them."""

from __future__ import annotations

from typing import Any


def alertmanager_v4(
    *alerts: dict[str, Any], status: str = "firing", receiver: str = "ddoc"
) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + alerts[0]["labels"].get("alertname", "") + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": alerts[0]["labels"].get("alertname", "")},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def am_alert(
    alertname: str,
    *,
    fingerprint: str,
    status: str = "firing",
    summary: str = "",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": {"summary": summary or f"{alertname} is firing"},
        "startsAt": "2026-11-25T03:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint,
    }
