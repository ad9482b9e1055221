"""Append-only, hash-chained audit trail.

Each event stores the hash of the tenant's previous event; the chain is serialised per tenant
with a transaction-scoped advisory lock, so concurrent writers cannot fork it. The database
rejects UPDATE and DELETE on the table (trigger in the foundation migration).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

GENESIS_HASH = "0" * 64


def event_hash(
    *,
    prev_hash: str,
    tenant_id: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any],
) -> str:
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "tenant": tenant_id,
            "seq": seq,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    subject: str,
    data: dict[str, Any] | None = None,
) -> int:
    """Append one event inside the caller's transaction; returns its sequence number."""
    data = data or {}
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('ddoc.audit'), hashtext(:tenant))"),
        {"tenant": tenant_id},
    )
    last = session.execute(
        text(
            "SELECT seq, hash FROM audit_events WHERE tenant_id = :tenant ORDER BY seq DESC LIMIT 1"
        ),
        {"tenant": tenant_id},
    ).first()
    seq = (last.seq + 1) if last else 1
    prev_hash = last.hash if last else GENESIS_HASH
    at = session.execute(text("SELECT date_trunc('milliseconds', clock_timestamp())")).scalar_one()
    digest = event_hash(
        prev_hash=prev_hash,
        tenant_id=tenant_id,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=data,
    )
    session.execute(
        text(
            "INSERT INTO audit_events (tenant_id, seq, at, actor, action, subject, data, "
            "prev_hash, hash) VALUES (:tenant, :seq, :at, :actor, :action, :subject, "
            "CAST(:data AS jsonb), :prev, :hash)"
        ),
        {
            "tenant": tenant_id,
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": json.dumps(data, default=str),
            "prev": prev_hash,
            "hash": digest,
        },
    )
    return int(seq)
