"""Append-only, hash-chained audit trail.

Each event stores the hash of the tenant's previous event; the chain is serialised per tenant
with a transaction-scoped advisory lock, so concurrent writers cannot fork it. The database
rejects UPDATE and DELETE on the table (trigger in the foundation migration).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
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
        text("SELECT pg_advisory_xact_lock(hashtext('ddoc.platform.audit'), hashtext(:tenant))"),
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


@dataclass(frozen=True)
class Verification:
    tenant_id: str
    checked: int
    broken_seq: int | None = None  # the first event that does not hold
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def verify(session: Session, *, tenant_id: str, batch: int = 5000) -> Verification:
    """Walk the tenant's chain in order: every event must follow the previous one (seq + 1),
    carry its hash, and hash to what it claims. An edited, deleted or reordered event breaks
    one of the three; the first one that breaks is named."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    rows = session.execute(
        text(
            "SELECT seq, at, actor, action, subject, data, prev_hash, hash FROM audit_events"
            " WHERE tenant_id = :tenant ORDER BY seq"
        ).execution_options(yield_per=batch),
        {"tenant": tenant_id},
    )
    for row in rows:
        if row.seq != expected_seq:
            what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
            return Verification(tenant_id, checked, expected_seq, f"event {expected_seq} {what}")
        if row.prev_hash != prev_hash:
            return Verification(
                tenant_id, checked, row.seq, f"event {row.seq} does not follow event {row.seq - 1}"
            )
        digest = event_hash(
            prev_hash=row.prev_hash,
            tenant_id=tenant_id,
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            data=row.data,
        )
        if digest != row.hash:
            return Verification(
                tenant_id, checked, row.seq, f"event {row.seq} was changed after it was written"
            )
        prev_hash, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    return Verification(tenant_id, checked)


def export(
    session: Session,
    *,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = 5000,
) -> Iterator[dict[str, Any]]:
    """The tenant's events in order, optionally within [since, until)."""
    query = (
        "SELECT seq, at, actor, action, subject, data, prev_hash, hash FROM audit_events"
        " WHERE tenant_id = :tenant"
    )
    params: dict[str, Any] = {"tenant": tenant_id}
    if since is not None:
        query += " AND at >= :since"
        params["since"] = since
    if until is not None:
        query += " AND at < :until"
        params["until"] = until
    rows = session.execute(text(query + " ORDER BY seq").execution_options(yield_per=batch), params)
    for row in rows:
        yield {
            "tenant_id": tenant_id,
            "seq": row.seq,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "action": row.action,
            "subject": row.subject,
            "data": row.data,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        }


def search(
    session: Session,
    *,
    tenant_id: str,
    action: str | None = None,
    actor: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The tenant's newest events that match: `action` is a prefix (`execution.` finds every
    execution event), `actor` and `subject` exact; [since, until)."""
    query = "SELECT seq, at, actor, action, subject, data FROM audit_events WHERE tenant_id = :t"
    params: dict[str, Any] = {"t": tenant_id, "limit": limit}
    if action:
        query += " AND starts_with(action, :action)"
        params["action"] = action
    for name, value in (("actor", actor), ("subject", subject)):
        if value:
            query += f" AND {name} = :{name}"
            params[name] = value
    if since is not None:
        query += " AND at >= :since"
        params["since"] = since
    if until is not None:
        query += " AND at < :until"
        params["until"] = until
    rows = session.execute(text(query + " ORDER BY seq DESC LIMIT :limit"), params)
    return [dict(row._mapping) for row in rows]


CSV_FIELDS = ("tenant_id", "seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash")


def export_lines(events: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """Exported events as JSON Lines (`jsonl`) or CSV with a header (`csv`), line by line."""
    if fmt == "jsonl":
        for event in events:
            yield json.dumps(event, sort_keys=True, default=str) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for event in events:
        writer.writerow({**event, "data": json.dumps(event["data"], sort_keys=True)})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
