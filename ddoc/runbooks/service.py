"""Adding runbooks, as the API, the web console and the CLI do it: parse with the tenant's risk
rules, then store the runbook (or the next version of the one at the same source path)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.runbooks import source_paths
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.embedding import Embedder
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import RunbookParser
from ddoc.runbooks.risk import tenant as tenant_rules


def parse(
    engine: Engine,
    parser: RunbookParser,
    *,
    tenant_id: str,
    content: str,
    fmt: str,
    source_path: str | None,
) -> ParsedRunbook:
    """The runbook as it would be stored, with the tenant's risk rules; stores nothing."""
    with Session(engine) as session:
        rules = tenant_rules.risk_rules(session, tenant_id)
    return parser(content, fmt, source_path, rules)


def add(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    actor: str,
    content: str,
    fmt: str,
    source_path: str | None,
    urls: Sequence[str] | None = None,
    runbook_id: str | None = None,
) -> runbooks.SavedRunbook:
    """Store a runbook: the next version of `runbook_id`, else of the runbook the same file
    (by source path or content) already is, else a new one. Unchanged content makes none."""
    parsed = parse(
        engine, parser, tenant_id=tenant_id, content=content, fmt=fmt, source_path=source_path
    )
    if runbook_id is None:  # the same file added another way is the same runbook
        where = source_paths.resolve(
            engine,
            tenant_id=tenant_id,
            source_path=source_path,
            content=content,
            fmt=fmt,
            title=parsed.title,
            actor=actor,
        )
        source_path, runbook_id = where.source_path, where.runbook_id
    return runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=content,
        fmt=fmt,
        parsed=parsed,
        source_path=source_path,
        actor=actor,
        runbook_id=runbook_id,
        embedder=embedder,
        urls=urls,
    )
