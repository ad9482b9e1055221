"""What matching searches on the runbooks' side: their text, the full-text index and the
stored embeddings (the alerts' side is ddoc/alerts/search_text.py).

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

from ddoc.runbooks.model import ParsedRunbook

if TYPE_CHECKING:
    from ddoc.runbooks.embedding import Embedder

log = logging.getLogger(__name__)

CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # where a word starts
WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SUMMARY_CHARS = 600


def split_name(name: str) -> str:
    """`KubePodCrashLooping` → `Kube Pod Crash Looping`; `etcd_high_fsync` → `etcd high fsync`."""
    return " ".join(CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").split())


def document_text(parsed: ParsedRunbook) -> str:
    """The runbook as one short text for embedding: what it is about, not how to fix it."""
    parts = [parsed.title]
    parts += [split_name(a) for a in parsed.triggers.alerts]
    parts += parsed.triggers.services
    if parsed.summary:
        parts.append(parsed.summary[:_SUMMARY_CHARS])
    return ". ".join(p.strip() for p in parts if p and p.strip())


def title_words(title: str, alert_names: Sequence[str] = ()) -> list[str]:
    """The words of a runbook's title and of the alert names it declares (split), lower-cased:
    what the runbook says it is about, in the fewest words."""
    words: list[str] = []
    for text_ in (title, *alert_names):
        for word in WORD.findall(split_name(text_).lower()):
            if len(word) > 1 and not word.isdigit() and word not in words:
                words.append(word)
    return words


# English stop words that change what a title says ("Kube API Down", "Errors Sending Alerts To
# Any Alertmanager", "Pod Not Ready"): kept as themselves where titles are compared.
MEANINGFUL_STOP_WORDS = frozenset(
    "down up out off not any some all over under few more most only too against above below"
    " before after again".split()
)
# Negations compare as "not" ("non-ready" and "Not Ready"; "isn't" is split into "isn", "t").
_NEGATIONS = frozenset(
    "no non never cannot isn aren wasn weren doesn don didn hasn haven hadn couldn shouldn"
    " wouldn".split()
)
_LEXEMES: dict[str, tuple[str, ...]] = {}
_LEXEMES_MAX = 200_000


def lexemes(session: Session, words: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each word's English stems as PostgreSQL's full-text search has them (none for a stop
    word, except the few that change what a title says; negations are "not"); remembered per
    process."""
    missing = sorted({w for w in words if w not in _LEXEMES})
    if missing:
        if len(_LEXEMES) + len(missing) > _LEXEMES_MAX:
            _LEXEMES.clear()
        rows = session.execute(
            text(
                "SELECT w, tsvector_to_array(to_tsvector('english', w)) AS lex"
                " FROM unnest(CAST(:words AS text[])) AS w"
            ),
            {"words": missing},
        ).all()
        for row in rows:
            found = tuple(row.lex)
            if row.w in _NEGATIONS:
                found = ("not",)
            elif not found and row.w in MEANINGFUL_STOP_WORDS:
                found = (row.w,)
            _LEXEMES[row.w] = found
    return {w: _LEXEMES.get(w, ()) for w in words}


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
    from ddoc.runbooks.model import ParsedRunbook as Parsed

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
