"""What matching searches: the text of runbooks and of alerts, the full-text index and the
stored embeddings.

Alert names are written in CamelCase (`KubePodCrashLooping`); both sides split them into words,
so an alert title written by a human ("pod keeps crash looping") meets the runbook that only
names the alert.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.alerts import NormalizedAlert
from ddoc.runbook import ParsedRunbook

if TYPE_CHECKING:
    from ddoc.embedding import Embedder

log = logging.getLogger(__name__)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_SUMMARY_CHARS = 600
_DESCRIPTION_CHARS = 400
# Ranking cost grows with the words of the query and the size of each document's vector: both
# stay small (what the runbook is about, not every step) so matching holds at 10,000 runbooks.
_QUERY_WORDS = 24


def split_name(name: str) -> str:
    """`KubePodCrashLooping` → `Kube Pod Crash Looping`; `etcd_high_fsync` → `etcd high fsync`."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").split())


def document_text(parsed: ParsedRunbook) -> str:
    """The runbook as one short text for embedding: what it is about, not how to fix it."""
    parts = [parsed.title]
    parts += [split_name(a) for a in parsed.triggers.alerts]
    parts += parsed.triggers.services
    if parsed.summary:
        parts.append(parsed.summary[:_SUMMARY_CHARS])
    return ". ".join(p.strip() for p in parts if p and p.strip())


def alert_text(alert: NormalizedAlert) -> str:
    """Every descriptive field a source offers: an alert without an alertname (a PagerDuty
    title, a paraphrase, another language) still has words to match."""
    parts: list[str] = []
    if alert.alert_name:
        parts.append(split_name(alert.alert_name))
    parts.append(alert.title)
    for value in (alert.description, alert.annotations.get("summary")):
        if value and value not in parts:
            parts.append(value[:_DESCRIPTION_CHARS])
    if alert.service:
        parts.append(alert.service)
    cleaned = (_TEMPLATE.sub(" ", p) for p in parts)
    return ". ".join(" ".join(p.split()) for p in cleaned if p.strip())


def query_words(alert: NormalizedAlert) -> str:
    """The alert's distinct words for full-text search (matched with OR: an AND query would
    need every word in one runbook)."""
    words: list[str] = []
    if alert.alert_name:
        words.append(alert.alert_name.lower())
    for word in _WORD.findall(alert_text(alert).lower()):
        if len(word) > 1 and word not in words:
            words.append(word)
    return " ".join(words[:_QUERY_WORDS])


def index_runbook(
    session: Session,
    *,
    runbook_id: str,
    tenant_id: str,
    version: int,
    parsed: ParsedRunbook,
    embedding: list[float] | None,
    model: str | None,
) -> None:
    """Refresh the runbook's full-text vector and, when given, its embedding."""
    session.execute(
        text(
            "UPDATE runbooks SET search_text = :doc,"
            " search_tsv = setweight(to_tsvector('simple', :names), 'A')"
            "   || setweight(to_tsvector('english', :title), 'A')"
            "   || setweight(to_tsvector('english', :about), 'B')"
            " WHERE id = :id"
        ),
        {
            "doc": document_text(parsed),
            "names": " ".join(a.lower() for a in parsed.triggers.alerts),
            "title": parsed.title,
            "about": " ".join(
                [
                    *(split_name(a) for a in parsed.triggers.alerts),
                    *parsed.triggers.services,
                    parsed.summary[:_SUMMARY_CHARS],
                ]
            ),
            "id": runbook_id,
        },
    )
    if embedding is None or model is None:
        return
    session.execute(
        text(
            "INSERT INTO runbook_embeddings (runbook_id, tenant_id, version, model, dimension,"
            " embedding) VALUES (:id, :tenant, :version, :model, :dim, CAST(:vec AS vector))"
            " ON CONFLICT (runbook_id) DO UPDATE SET version = EXCLUDED.version,"
            " model = EXCLUDED.model, dimension = EXCLUDED.dimension,"
            " embedding = EXCLUDED.embedding, created_at = now()"
        ),
        {
            "id": runbook_id,
            "tenant": tenant_id,
            "version": version,
            "model": model,
            "dim": len(embedding),
            "vec": vector_literal(embedding),
        },
    )


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def reembed_stale(
    engine: Engine,
    embedder: Embedder,
    *,
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed runbooks whose embedding is missing, outdated or made by another model."""
    from ddoc.runbook import ParsedRunbook as Parsed

    with Session(engine) as session:
        rows = session.execute(
            text(
                "SELECT r.id, r.tenant_id, v.version, v.parsed FROM runbooks r"
                " JOIN runbook_versions v ON v.runbook_id = r.id AND v.version = r.current_version"
                " LEFT JOIN runbook_embeddings e ON e.runbook_id = r.id"
                " WHERE e.runbook_id IS NULL OR e.model <> :model OR e.version <> v.version"
            ),
            {"model": embedder.model_name},
        ).all()
    done = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        parsed = [Parsed.from_dict(row.parsed) for row in chunk]
        vectors = embedder.embed([document_text(p) for p in parsed])
        with Session(engine) as session:
            for row, doc, vector in zip(chunk, parsed, vectors, strict=True):
                index_runbook(
                    session,
                    runbook_id=row.id,
                    tenant_id=row.tenant_id,
                    version=row.version,
                    parsed=doc,
                    embedding=vector,
                    model=embedder.model_name,
                )
            session.commit()
        done += len(chunk)
        if progress is not None:
            progress(done, len(rows))
    if rows:
        log.info("embedded %d runbook(s) with %s", len(rows), embedder.model_name)
    return len(rows)
