"""Runbooks and their immutable versions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ddoc.platform import audit
from ddoc.platform.errors import NotFound
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Runbook, RunbookVersion
from ddoc.runbooks import search
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.urls import clean_urls, url_columns

if TYPE_CHECKING:
    from ddoc.runbooks.embedding import Embedder


class RunbookNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    model: str


def embed(embedder: Embedder | None, parsed: Sequence[ParsedRunbook]) -> list[Embedding | None]:
    if embedder is None:
        return [None] * len(parsed)
    vectors = embedder.embed([search.document_text(p) for p in parsed])
    return [Embedding(v, embedder.model_name) for v in vectors]


@dataclass(frozen=True)
class SavedRunbook:
    runbook: Runbook
    version: RunbookVersion
    outcome: str  # created | new_version | unchanged


def save(
    session: Session,
    *,
    tenant_id: str,
    content: str,
    fmt: str,
    parsed: ParsedRunbook,
    source_path: str | None,
    actor: str,
    runbook_id: str | None = None,
    embedding: Embedding | None = None,
    urls: Sequence[str] | None = None,
    origin: dict[str, Any] | None = None,
) -> SavedRunbook:
    """Store a runbook: a new one, the next version of an existing one (by id, or by its source
    path within the tenant), or nothing at all when the content is unchanged.

    `urls`: the URLs its source shows it at (None: keep the ones it has); with the front-matter's
    `urls:` they are what an alert's `runbook_url` is matched against. `origin`: a new runbook
    is a draft drafted from it (a session, a postmortem, an execution: docs/decisions/0012)."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    existing: Runbook | None = None
    if runbook_id is not None:
        existing = get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    elif source_path is not None:
        existing = session.exec(
            select(Runbook)
            .where(Runbook.tenant_id == tenant_id, Runbook.source_path == source_path)
            .with_for_update()
        ).first()

    if existing is not None:
        current = version(session, tenant_id=tenant_id, runbook_id=existing.id)
        if current.content_sha256 == digest and current.format == fmt:
            if existing.archived_at is not None:
                existing.archived_at = None  # back at the source: bring it back
                session.add(existing)
            if urls is not None and _set_urls(existing, urls, content, fmt):
                session.add(existing)  # a source that now names its URL: no new version
            return SavedRunbook(existing, current, "unchanged")
        runbook = existing
        runbook.current_version += 1
        outcome = "new_version"
    else:
        runbook = Runbook(
            id=new_id("rb"),
            tenant_id=tenant_id,
            title=parsed.title,
            source_path=source_path,
            current_version=1,
            draft=origin is not None,
            origin=origin,
        )
        outcome = "drafted" if origin is not None else "created"

    now = datetime.now(UTC)
    runbook.title = parsed.title
    runbook.alert_names = sorted(set(parsed.triggers.alerts))
    runbook.services = sorted(set(parsed.triggers.services))
    runbook.trigger_labels = dict(parsed.triggers.labels)
    _set_urls(runbook, runbook.source_urls if urls is None else urls, content, fmt)
    runbook.updated_at = now
    runbook.archived_at = None
    session.add(runbook)
    session.flush()
    row = RunbookVersion(
        id=new_id("rbv"),
        tenant_id=tenant_id,
        runbook_id=runbook.id,
        version=runbook.current_version,
        format=fmt,
        content=content,
        content_sha256=digest,
        parsed=parsed.to_dict(),
        created_by=actor,
    )
    session.add(row)
    session.flush()
    search.index_runbook(
        session,
        runbook_id=runbook.id,
        tenant_id=tenant_id,
        version=row.version,
        parsed=parsed,
        embedding=embedding.vector if embedding else None,
        model=embedding.model if embedding else None,
    )
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=f"runbook.{outcome}",
        subject=runbook.id,
        data={"version": row.version, "content_sha256": digest, "source_path": source_path}
        | ({"origin": origin} if origin is not None and outcome == "drafted" else {}),
    )
    return SavedRunbook(runbook, row, outcome)


def store(
    engine: Engine,
    *,
    tenant_id: str,
    content: str,
    fmt: str,
    parsed: ParsedRunbook,
    source_path: str | None,
    actor: str,
    runbook_id: str | None = None,
    embedder: Embedder | None = None,
    embedding: Embedding | None = None,
    urls: Sequence[str] | None = None,
    origin: dict[str, Any] | None = None,
) -> SavedRunbook:
    """`save` in its own transaction. Two first imports of one source path can race to insert;
    the loser retries once and then finds the winner's runbook."""
    if embedding is None:
        # Before the transaction: the model's few milliseconds hold no locks.
        embedding = embed(embedder, [parsed])[0]
    for attempt in (1, 2):
        with Session(engine, expire_on_commit=False) as session:
            try:
                saved = save(
                    session,
                    tenant_id=tenant_id,
                    content=content,
                    fmt=fmt,
                    parsed=parsed,
                    source_path=source_path,
                    actor=actor,
                    runbook_id=runbook_id,
                    embedding=embedding,
                    urls=urls,
                    origin=origin,
                )
                session.commit()
                return saved
            except IntegrityError:
                if attempt == 2:
                    raise
                session.rollback()
    raise AssertionError("unreachable")


def _set_urls(runbook: Runbook, source_urls: Sequence[str], content: str, fmt: str) -> bool:
    """Set the runbook's URL columns; whether they changed."""
    given = clean_urls(source_urls)
    urls, keys = url_columns(source_urls=given, content=content, fmt=fmt)
    if (given, urls, keys) == (runbook.source_urls, runbook.urls, runbook.url_keys):
        return False
    runbook.source_urls, runbook.urls, runbook.url_keys = given, urls, keys
    return True


def archive(session: Session, *, tenant_id: str, runbook_id: str, actor: str) -> Runbook:
    runbook = get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    if runbook.archived_at is None:
        runbook.archived_at = datetime.now(UTC)
        session.add(runbook)
        audit.append(
            session, tenant_id=tenant_id, actor=actor, action="runbook.archived", subject=runbook_id
        )
    return runbook


def versions(session: Session, *, tenant_id: str, runbook_id: str) -> list[RunbookVersion]:
    get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    return list(
        session.exec(
            select(RunbookVersion)
            .where(RunbookVersion.tenant_id == tenant_id, RunbookVersion.runbook_id == runbook_id)
            .order_by(col(RunbookVersion.version))
        )
    )


def get(session: Session, *, tenant_id: str, runbook_id: str, for_update: bool = False) -> Runbook:
    """The tenant's runbook; `for_update` locks its row for the caller's transaction."""
    query = select(Runbook).where(Runbook.id == runbook_id, Runbook.tenant_id == tenant_id)
    runbook = session.exec(query.with_for_update() if for_update else query).first()
    if runbook is None:
        raise RunbookNotFound(f"runbook {runbook_id} not found")
    return runbook


def version(
    session: Session, *, tenant_id: str, runbook_id: str, number: int | None = None
) -> RunbookVersion:
    query = select(RunbookVersion).where(
        RunbookVersion.tenant_id == tenant_id, RunbookVersion.runbook_id == runbook_id
    )
    if number is not None:
        query = query.where(RunbookVersion.version == number)
    row = session.exec(query.order_by(col(RunbookVersion.version).desc())).first()
    if row is None:
        suffix = f" version {number}" if number is not None else ""
        raise RunbookNotFound(f"runbook {runbook_id}{suffix} not found")
    return row


def list_runbooks(
    session: Session,
    *,
    tenant_id: str,
    include_archived: bool = False,
    include_drafts: bool = False,
) -> list[Runbook]:
    query = select(Runbook).where(Runbook.tenant_id == tenant_id)
    if not include_archived:
        query = query.where(col(Runbook.archived_at).is_(None))
    if not include_drafts:
        query = query.where(col(Runbook.draft).is_(False))
    return list(session.exec(query.order_by(col(Runbook.title))))


def drafts(session: Session, *, tenant_id: str) -> list[Runbook]:
    """The tenant's drafts awaiting review, newest first."""
    return list(
        session.exec(
            select(Runbook)
            .where(
                Runbook.tenant_id == tenant_id,
                col(Runbook.draft).is_(True),
                col(Runbook.archived_at).is_(None),
            )
            .order_by(col(Runbook.created_at).desc())
        )
    )


def drafted_for(session: Session, *, tenant_id: str, incident_id: str) -> list[Runbook]:
    """The runbooks drafted from what was done for an incident (drafts or published since)."""
    return list(
        session.exec(
            select(Runbook)
            .where(
                Runbook.tenant_id == tenant_id,
                col(Runbook.origin)["incident_id"].astext == incident_id,
            )
            .order_by(col(Runbook.created_at))
        )
    )


def publish(session: Session, *, tenant_id: str, runbook_id: str, actor: str) -> Runbook:
    """A draft becomes a runbook like any other: it matches alerts from now on."""
    runbook = get(session, tenant_id=tenant_id, runbook_id=runbook_id, for_update=True)
    if runbook.draft:
        runbook.draft = False
        runbook.updated_at = datetime.now(UTC)
        session.add(runbook)
        audit.append(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="runbook.published",
            subject=runbook.id,
            data={"version": runbook.current_version, "origin": runbook.origin},
        )
    return runbook


def by_alert_name(session: Session, *, tenant_id: str, alert_name: str) -> list[Runbook]:
    return list(
        session.exec(
            select(Runbook).where(
                Runbook.tenant_id == tenant_id,
                col(Runbook.archived_at).is_(None),
                col(Runbook.draft).is_(False),
                col(Runbook.alert_names).contains([alert_name]),
            )
        )
    )
