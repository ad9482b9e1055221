"""Read views of incidents: what fired, what matched, what ran."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from ddoc.alerts.views import (
    AlertBrief,
    IncidentKeyView,
    IncidentStatus,
    IncidentSummary,
    IncidentView,
    MatchStatus,
    MatchView,
)
from ddoc.platform.errors import NotFound
from ddoc.platform.tables import Alert, Incident


class IncidentNotFound(NotFound):
    pass


def _summary(incident: Incident) -> IncidentSummary:
    return IncidentSummary(
        id=incident.id,
        status=IncidentStatus(incident.status),
        title=incident.title,
        source=incident.source,
        dedup_key=incident.dedup_key,
        service=incident.service,
        severity=incident.severity,
        environment=incident.environment,
        alert_count=incident.alert_count,
        match_status=MatchStatus(incident.match_status),
        runbook_id=incident.runbook_id,
        runbook_version=incident.runbook_version,
        execution_id=incident.execution_id,
        opened_at=incident.opened_at,
        last_seen_at=incident.last_seen_at,
        resolved_at=incident.resolved_at,
    )


def list_incidents(
    session: Session,
    *,
    tenant_id: str,
    status: str | None = None,
    match_status: str | None = None,
    limit: int = 100,
) -> list[IncidentSummary]:
    query = select(Incident).where(Incident.tenant_id == tenant_id)
    if status:
        query = query.where(Incident.status == status)
    if match_status:
        query = query.where(Incident.match_status == match_status)
    rows = session.exec(query.order_by(col(Incident.opened_at).desc()).limit(limit))
    return [_summary(row) for row in rows]


def incident_view(session: Session, *, tenant_id: str, incident_id: str) -> IncidentView:
    incident = session.exec(
        select(Incident).where(Incident.id == incident_id, Incident.tenant_id == tenant_id)
    ).first()
    if incident is None:
        raise IncidentNotFound(f"incident {incident_id} not found")
    keys = session.execute(
        text(
            "SELECT dedup_key, open, alert_count, first_seen, last_seen FROM incident_keys"
            " WHERE incident_id = :id ORDER BY first_seen"
        ),
        {"id": incident_id},
    ).mappings()
    alerts = session.exec(
        select(Alert)
        .where(Alert.incident_id == incident_id, Alert.tenant_id == tenant_id)
        .order_by(col(Alert.received_at))
    )
    return IncidentView(
        **dict(_summary(incident)),
        labels=incident.labels,
        annotations=incident.annotations,
        match=MatchView.model_validate(incident.match) if incident.match is not None else None,
        fingerprint=incident.fingerprint,
        keys=[IncidentKeyView.model_validate(dict(k)) for k in keys],
        alerts=[
            AlertBrief(
                id=a.id,
                source=a.source,
                dedup_key=a.dedup_key,
                status=a.status,
                title=a.title,
                received_at=a.received_at,
            )
            for a in alerts
        ],
    )


def view(session: Session, *, tenant_id: str, incident_id: str) -> dict[str, Any]:
    """The incident as a plain dict: the form activities/slack.py still reads (`incident_view`
    is the typed one)."""
    found = incident_view(session, tenant_id=tenant_id, incident_id=incident_id)
    return found.model_dump(exclude_unset=True)
