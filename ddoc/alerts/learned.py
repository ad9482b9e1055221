"""Learned triggers: a responder's pick of a runbook for an incident, remembered by the fingerprint
of the alert that opened it (ddoc/alerts/fingerprints.py), so that the next alert with that
fingerprint
is attached to the same runbook (an explicit match, ddoc/alerts/matching.py).

One per fingerprint in a tenant: a pick of another runbook for it replaces the trigger, a pick of
the same runbook changes nothing. A responder removes one (API, CLI), and aborting an execution
that a learned trigger attached as "wrong runbook" removes that trigger. Every change is
audited. A trigger whose runbook is archived does not match (the runbook may come back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from ddoc.alerts.fingerprints import MAX_SHOWN, Fingerprint
from ddoc.platform import audit
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Incident, LearnedTrigger


class LearnedTriggerNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Hit:
    """A learned trigger that matches an alert, with its (not archived) runbook."""

    trigger_id: str
    created_by_name: str
    incident_id: str | None
    created_at: datetime
    runbook_id: str
    title: str
    source_path: str | None
    services: list[str]
    alert_names: list[str]

    @property
    def reason(self) -> str:
        incident = f" for {self.incident_id}" if self.incident_id else ""
        return (
            f"picked by {self.created_by_name}{incident} on {self.created_at:%Y-%m-%d}"
            f" (learned trigger {self.trigger_id})"
        )


def lookup(session: Session, *, tenant_id: str, fingerprint: Fingerprint) -> Hit | None:
    row = session.execute(
        text(
            "SELECT t.id, t.created_by_name, t.incident_id, t.created_at, r.id AS runbook_id,"
            " r.title, r.source_path, r.services, r.alert_names"
            " FROM learned_triggers t JOIN runbooks r ON r.id = t.runbook_id"
            " WHERE t.tenant_id = :tenant AND t.fingerprint = :digest"
            " AND r.archived_at IS NULL AND NOT r.draft"
        ),
        {"tenant": tenant_id, "digest": fingerprint.digest},
    ).first()
    if row is None:
        return None
    return Hit(
        trigger_id=row.id,
        created_by_name=row.created_by_name,
        incident_id=row.incident_id,
        created_at=row.created_at,
        runbook_id=row.runbook_id,
        title=row.title,
        source_path=row.source_path,
        services=list(row.services),
        alert_names=list(row.alert_names),
    )


def record(
    session: Session,
    *,
    tenant_id: str,
    fingerprint: Fingerprint,
    runbook_id: str,
    incident_id: str | None,
    actor: str,
    actor_name: str,
) -> LearnedTrigger:
    """Remember that `runbook_id` was picked for alerts with this fingerprint (in the caller's
    transaction; the runbook is the caller's to have checked)."""
    # Two picks for one fingerprint at once: the second waits and then replaces the first.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:tenant), hashtext(:what))"),
        {"tenant": tenant_id, "what": f"learned:{fingerprint.digest}"},
    )
    existing = session.exec(
        select(LearnedTrigger).where(
            LearnedTrigger.tenant_id == tenant_id,
            LearnedTrigger.fingerprint == fingerprint.digest,
        )
    ).first()
    if existing is not None and existing.runbook_id == runbook_id:
        return existing
    replaced: dict[str, Any] | None = None
    if existing is not None:
        replaced = {"trigger_id": existing.id, "runbook_id": existing.runbook_id}
        session.delete(existing)
        session.flush()
    row = LearnedTrigger(
        id=new_id("lt"),
        tenant_id=tenant_id,
        runbook_id=runbook_id,
        fingerprint=fingerprint.digest,
        source=fingerprint.source,
        alert_name=fingerprint.alert_name,
        service=fingerprint.service,
        title_pattern=_shown(fingerprint.title),
        incident_id=incident_id,
        created_by=actor,
        created_by_name=actor_name[:200],
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="learned_trigger.replaced" if replaced else "learned_trigger.created",
        subject=row.id,
        data={
            "runbook_id": runbook_id,
            "incident_id": incident_id,
            "fingerprint": readable(row),
            "digest": fingerprint.digest,
            **({"replaced": replaced} if replaced else {}),
        },
    )
    return row


def for_runbook(session: Session, *, tenant_id: str, runbook_id: str) -> list[LearnedTrigger]:
    return list(
        session.exec(
            select(LearnedTrigger)
            .where(LearnedTrigger.tenant_id == tenant_id, LearnedTrigger.runbook_id == runbook_id)
            .order_by(col(LearnedTrigger.created_at), col(LearnedTrigger.id))
        )
    )


def remove(
    session: Session, *, tenant_id: str, runbook_id: str, trigger_id: str, actor: str, reason: str
) -> LearnedTrigger:
    row = session.exec(
        select(LearnedTrigger)
        .where(
            LearnedTrigger.id == trigger_id,
            LearnedTrigger.tenant_id == tenant_id,
            LearnedTrigger.runbook_id == runbook_id,
        )
        .with_for_update()
    ).first()
    if row is None:
        raise LearnedTriggerNotFound(
            f"learned trigger {trigger_id} of runbook {runbook_id} not found"
        )
    session.delete(row)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="learned_trigger.removed",
        subject=row.id,
        data={
            "runbook_id": row.runbook_id,
            "incident_id": row.incident_id,
            "fingerprint": readable(row),
            "digest": row.fingerprint,
            "reason": reason,
        },
    )
    return row


def wrong_runbook(session: Session, *, tenant_id: str, execution_id: str, actor: str) -> str | None:
    """An execution was aborted as the wrong runbook for its incident: record that, detach it
    from the incident (so the right one can be picked at once), and remove the learned trigger
    that attached it (if one did and still names that runbook). Returns the removed trigger's
    id."""
    incident = session.exec(
        select(Incident).where(
            Incident.tenant_id == tenant_id, Incident.execution_id == execution_id
        )
    ).first()
    if incident is None:
        return None  # started by hand: nothing was matched
    attached = (incident.match or {}).get("attached") or {}
    trigger_id = attached.get("learned_trigger_id") if isinstance(attached, dict) else None
    removed = None
    if isinstance(trigger_id, str) and incident.runbook_id:
        exists = session.exec(
            select(LearnedTrigger.id).where(
                LearnedTrigger.id == trigger_id,
                LearnedTrigger.tenant_id == tenant_id,
                LearnedTrigger.runbook_id == incident.runbook_id,
            )
        ).first()
        if exists is not None:
            remove(
                session,
                tenant_id=tenant_id,
                runbook_id=incident.runbook_id,
                trigger_id=trigger_id,
                actor=actor,
                reason=f"wrong runbook: execution {execution_id} aborted",
            )
            removed = trigger_id
    runbook_id = incident.runbook_id
    incident.runbook_id = incident.runbook_version = incident.execution_id = None
    session.add(incident)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="incident.wrong_runbook",
        subject=incident.id,
        data={
            "execution_id": execution_id,
            "runbook_id": runbook_id,
            "learned_trigger_removed": removed,
        },
    )
    return removed


def readable(row: LearnedTrigger) -> str:
    """The fingerprint as people read it: source · alert · service · masked title."""
    return " · ".join(
        [
            row.source,
            f"alert {row.alert_name or '-'}",
            f"service {row.service or '-'}",
            row.title_pattern,
        ]
    )


def view(row: LearnedTrigger) -> dict[str, Any]:
    return {
        "id": row.id,
        "fingerprint": readable(row),
        "source": row.source,
        "alert_name": row.alert_name,
        "service": row.service,
        "title_pattern": row.title_pattern,
        "created_by": row.created_by,
        "created_by_name": row.created_by_name,
        "created_at": row.created_at,
        "incident_id": row.incident_id,
    }


def _shown(title: str) -> str:
    return title if len(title) <= MAX_SHOWN else title[: MAX_SHOWN - 1] + "…"
