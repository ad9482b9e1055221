"""Adding runbooks, as the API, the web console and the CLI do it: parse with the tenant's risk
rules, then store the runbook (or the next version of the one at the same source path); drafts
from what engineers did; templates from the library."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.contracts.redact import Redactor
from ddoc.platform.errors import Invalid
from ddoc.runbooks import source_paths, templates
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.drafts import to_markdown
from ddoc.runbooks.drafts.distill import draft_from_session
from ddoc.runbooks.drafts.postmortem import draft_from_postmortem
from ddoc.runbooks.drafts.sessions import read_session
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


DRAFT_KINDS = ("cast", "script", "history", "postmortem", "draft")


def draft_document(
    kind: str,
    content: str,
    fmt: str = "text",
    *,
    labels: Mapping[str, str] | None = None,
    alerts: Sequence[str] = (),
    title: str | None = None,
) -> tuple[str, list[str]]:
    """The draft runbook document for what was posted, and what was left out of it. `kind`
    "draft" is a document already drafted (by `ddoc watch` or `ddoc runbook draft`, on the
    engineer's machine); the others are read and distilled here, with secrets redacted."""
    if kind == "draft":
        return content, []
    if kind not in DRAFT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(DRAFT_KINDS)}")
    redactor = Redactor()
    if kind == "postmortem":
        draft = draft_from_postmortem(
            redactor.redact(content), fmt, alerts=list(alerts), labels=labels, title=title
        )
    else:
        runs = read_session(io.BytesIO(content.encode("utf-8")), kind=kind)
        draft = draft_from_session(
            runs, kind=kind, title=title, labels=labels, alerts=list(alerts), redactor=redactor
        )
    if not draft.steps:
        why = "; ".join(draft.dropped) or f"no command or action found in the {kind}"
        raise Invalid(f"nothing to draft: {why}")
    return to_markdown(draft), list(draft.dropped)


def add_draft(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    actor: str,
    document: str,
    origin: dict[str, Any],
) -> runbooks.SavedRunbook:
    """Store a draft runbook: it matches no alert until someone publishes it."""
    parsed = parse(
        engine, parser, tenant_id=tenant_id, content=document, fmt="markdown", source_path=None
    )
    if not parsed.steps:
        raise Invalid("the draft has no steps")
    return runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=document,
        fmt="markdown",
        parsed=parsed,
        source_path=None,
        actor=actor,
        embedder=embedder,
        origin=origin,
    )


def add_template(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    actor: str,
    name: str,
) -> runbooks.SavedRunbook:
    """Install a template from the library as the tenant's runbook (`templates/<name>.md`: a
    second install is the same runbook, unchanged or its next version)."""
    found = templates.template(name)
    return add(
        engine,
        parser,
        embedder,
        tenant_id=tenant_id,
        actor=actor,
        content=found.content,
        fmt="markdown",
        source_path=f"templates/{found.name}.md",
    )
