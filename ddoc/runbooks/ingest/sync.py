"""Store fetched documents as runbook versions, one transaction per document.

A document that does not parse is reported and skipped; it never blocks the others and never
leaves a half-written runbook behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ddoc.platform import audit
from ddoc.platform.tables import Runbook
from ddoc.runbooks import source_paths
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.ingest import SourceDocument
from ddoc.runbooks.ingest.urls import document_urls
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import ParseError, RunbookParser, runbook_parser

if TYPE_CHECKING:
    from ddoc.runbooks.embedding import Embedder
    from ddoc.runbooks.risk import RuleSet

CONNECTOR_PREFIXES = ("git:", "confluence:", "notion:")
Progress = Callable[[int, int, str, str], None]  # (done, total, source_path, outcome)


@dataclass
class ImportResult:
    source_path: str
    outcome: str  # created | new_version | unchanged | failed
    runbook_id: str | None = None
    version: int | None = None
    steps: int | None = None
    error: str | None = None


@dataclass
class ImportReport:
    results: list[ImportResult] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


def import_documents(
    engine: Engine,
    *,
    tenant_id: str,
    documents: Sequence[SourceDocument],
    actor: str,
    embedder: Embedder | None = None,
    parse: RunbookParser | None = None,
    rules: RuleSet | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport()
    parse = parse or runbook_parser()
    parsed: list[ParsedRunbook | ParseError] = []
    for document in documents:
        try:
            parsed.append(parse(document.content, document.format, document.source_path, rules))
        except ParseError as err:
            parsed.append(err)
    good = [p for p in parsed if isinstance(p, ParsedRunbook)]
    embeddings = iter(runbooks.embed(embedder, good))  # one batch through the model
    for done, (document, result) in enumerate(zip(documents, parsed, strict=True), start=1):
        if isinstance(result, ParseError):
            outcome = ImportResult(document.source_path, "failed", error=str(result))
        else:
            outcome = _store(engine, tenant_id, document, result, actor, next(embeddings))
        report.results.append(outcome)
        if progress is not None:
            progress(done, len(documents), document.source_path, outcome.outcome)
    return report


def archive_missing(
    engine: Engine, *, tenant_id: str, prefix: str, present: Iterable[str], actor: str
) -> list[str]:
    """Archive runbooks under `prefix` that the source no longer has; returns their ids."""
    keep = set(present)
    archived: list[str] = []
    # The empty prefix means local files, whose paths are bare: never touch connector sources.
    with Session(engine) as session:
        candidates = session.exec(
            select(Runbook).where(
                Runbook.tenant_id == tenant_id,
                col(Runbook.archived_at).is_(None),
                col(Runbook.source_path).startswith(prefix, autoescape=True),
            )
        ).all()
        now = datetime.now(UTC)
        for runbook in candidates:
            if runbook.source_path in keep:
                continue
            if not prefix and (runbook.source_path or "").startswith(CONNECTOR_PREFIXES):
                continue
            runbook.archived_at = now
            session.add(runbook)
            audit.append(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="runbook.archived",
                subject=runbook.id,
                data={"source_path": runbook.source_path, "reason": "gone from its source"},
            )
            archived.append(runbook.id)
        session.commit()
    return archived


def _store(
    engine: Engine,
    tenant_id: str,
    document: SourceDocument,
    parsed: ParsedRunbook,
    actor: str,
    embedding: runbooks.Embedding | None,
) -> ImportResult:
    # The same file imported from another folder, or pasted before, is the same runbook.
    where = source_paths.resolve(
        engine,
        tenant_id=tenant_id,
        source_path=document.source_path,
        content=document.content,
        fmt=document.format,
        title=parsed.title,
        actor=actor,
    )
    saved = runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=document.content,
        fmt=document.format,
        parsed=parsed,
        source_path=where.source_path,
        actor=actor,
        runbook_id=where.runbook_id,
        embedding=embedding,
        urls=document_urls(document),
    )
    return ImportResult(
        document.source_path,
        saved.outcome,
        runbook_id=saved.runbook.id,
        version=saved.version.version,
        steps=len(parsed.steps),
    )
