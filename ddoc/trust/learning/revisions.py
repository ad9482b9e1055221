"""Suggested revisions: the commands people edited (and then ran successfully) and the dead
steps, applied to the current version's text as a diff an editor accepts (it becomes the next
version) or dismisses (the same changes are not suggested again for that version); reading and
deciding suggestions."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ddoc.execution.store import ExecutionNotFound
from ddoc.platform import audit
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Execution, ExecutionStep, RunbookSuggestion, RunbookVersion
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.embedding import Embedder
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import RunbookParser
from ddoc.runbooks.risk import tenant as tenant_rules
from ddoc.trust.learning.policy import DEFAULT_POLICY, LearningPolicy
from ddoc.trust.learning.runs import FINISHED, Evidence, StepFacts, load_evidence
from ddoc.trust.learning.stats import step_stats


class SuggestionError(Exception):
    """The suggestion cannot be accepted or dismissed as asked (closed, or outdated)."""


def propose(
    version: RunbookVersion, evidence: Evidence, policy: LearningPolicy
) -> tuple[list[dict[str, Any]], str]:
    """The changes the recent executions of `version` point to, and the version's text with
    them applied. An edit counts once the edited command ran successfully; the latest such
    edit of a step wins. Edits whose command is not in the step's source text verbatim are
    listed with `applied: false` and change nothing."""
    parsed = ParsedRunbook.from_dict(version.parsed)
    runs = [e for e in evidence.executions if e.runbook_version == version.version]
    stats = {s["step_id"]: s for s in step_stats(parsed, version.version, evidence, policy)}
    lines = version.content.splitlines(keepends=True)
    changes: list[dict[str, Any]] = []
    for step in parsed.steps:
        edits = [
            (execution.id, row.command)
            for execution in runs  # newest first
            for row in evidence.steps.get(execution.id, [])
            if row.step_id == step.id
            and row.undoes is None
            and row.original_command is not None
            and row.status == "succeeded"
            and row.command
            and row.command != step.command
        ]
        start, end = step.source.start_line - 1, step.source.end_line
        if edits and step.command:
            execution_id, edited = edits[0]
            assert edited is not None
            segment = "".join(lines[start:end])
            applied = step.command in segment
            if applied:
                lines[start:end] = [segment.replace(step.command, edited, 1)] + [""] * (
                    end - start - 1
                )
            changes.append(
                {
                    "kind": "extended" if step.command in edited else "edited",
                    "step_id": step.id,
                    "original": step.command,
                    "edited": edited,
                    "times": sum(1 for _, c in edits if c == edited),
                    "of": stats[step.id]["reached"],
                    "execution_id": execution_id,
                    "applied": applied,
                }
            )
        elif stats[step.id]["dead"]:
            lines[start:end] = [""] * (end - start)
            changes.append(
                {
                    "kind": "skipped",
                    "step_id": step.id,
                    "text": step.text,
                    "times": stats[step.id]["skipped"],
                    "of": stats[step.id]["reached"],
                    "applied": True,
                }
            )
    return changes, "".join(lines)


# One execution decides alone: a step a human skipped in it is dropped.
_ONE_RUN = LearningPolicy(dead_step_ratio=0.0, dead_step_min_runs=1)


@dataclass
class _StepFact:
    execution_id: str
    step_id: str
    status: str
    command: str | None
    original_command: str | None
    undoes: str | None
    started_at: datetime | None
    finished_at: datetime | None


def what_was_done(
    session: Session, *, tenant_id: str, execution_id: str
) -> tuple[RunbookVersion, list[dict[str, Any]], str]:
    """The version an execution ran, the changes its responders made (commands edited and then
    run successfully, steps they skipped), and the version's text with them applied. A step
    skipped because the execution never reached it, or a branch not taken, is no change."""
    execution = session.exec(
        select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
    ).first()
    if execution is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    if execution.status not in FINISHED:
        raise SuggestionError(f"execution {execution_id} is {execution.status}: wait until it ends")
    version = runbooks.version(
        session,
        tenant_id=tenant_id,
        runbook_id=execution.runbook_id,
        number=execution.runbook_version,
    )
    rows = session.exec(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.tenant_id == tenant_id)
        .order_by(col(ExecutionStep.position))
    )
    facts: list[StepFacts] = [
        _StepFact(
            execution_id=row.execution_id,
            step_id=row.step_id,
            status=row.status if row.status != "skipped" or _skipped_by_hand(row) else "pending",
            command=row.command,
            original_command=row.original_command,
            undoes=row.undoes,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
        for row in rows
    ]
    evidence = Evidence(executions=[execution], steps={execution.id: facts})
    changes, content = propose(version, evidence, _ONE_RUN)
    return version, changes, content


def save_what_was_done(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    execution_id: str,
    actor: str,
) -> tuple[list[dict[str, Any]], runbooks.SavedRunbook]:
    """Store what an execution's responders actually did (`what_was_done`) as the runbook's
    next version. SuggestionError when there is nothing to save, or the runbook has moved on
    since the execution (its later version would be lost)."""
    with Session(engine) as session:
        version, changes, content = what_was_done(
            session, tenant_id=tenant_id, execution_id=execution_id
        )
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=version.runbook_id)
        rules = tenant_rules.risk_rules(session, tenant_id)
        source_path = runbook.source_path
    if not any(c["applied"] for c in changes):
        raise SuggestionError(
            f"nothing to save: no command of execution {execution_id} was edited and then ran, "
            "and no step was skipped by hand"
        )
    parsed = parser(content, version.format, source_path, rules)
    embedding = runbooks.embed(embedder, [parsed])[0]
    with Session(engine, expire_on_commit=False) as session:
        current = runbooks.get(
            session, tenant_id=tenant_id, runbook_id=version.runbook_id, for_update=True
        )
        if current.current_version != version.version:
            raise SuggestionError(
                f"execution {execution_id} ran version {version.version}; the runbook is at "
                f"version {current.current_version} now: edit that one instead"
            )
        saved = runbooks.save(
            session,
            tenant_id=tenant_id,
            content=content,
            fmt=version.format,
            parsed=parsed,
            source_path=source_path,
            actor=actor,
            runbook_id=version.runbook_id,
            embedding=embedding,
        )
        audit.append(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="runbook.saved_from_execution",
            subject=version.runbook_id,
            data={
                "execution_id": execution_id,
                "version": saved.version.version,
                "changes": [c for c in changes if c["applied"]],
            },
        )
        session.commit()
        return changes, saved


def _skipped_by_hand(row: ExecutionStep) -> bool:
    return any(d.get("decision") == "skip" and d.get("accepted") for d in row.decisions)


def fingerprint(changes: Sequence[dict[str, Any]]) -> str:
    key = sorted((c["kind"], c["step_id"], c.get("edited") or "") for c in changes if c["applied"])
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def suggest(
    session: Session,
    *,
    tenant_id: str,
    runbook_id: str,
    policy: LearningPolicy = DEFAULT_POLICY,
) -> RunbookSuggestion | None:
    """The runbook's open suggestion, made anew from the evidence (in the caller's transaction).
    None when the evidence points to no change, or only to changes already dismissed."""
    # Locked: two executions finishing together do not race to open two suggestions.
    runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id, for_update=True)
    version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook_id)
    evidence = load_evidence(
        session, tenant_id=tenant_id, runbook_ids=[runbook_id], window=policy.window
    )[runbook_id]
    changes, content = propose(version, evidence, policy)
    current = session.exec(
        select(RunbookSuggestion).where(
            RunbookSuggestion.tenant_id == tenant_id,
            RunbookSuggestion.runbook_id == runbook_id,
            RunbookSuggestion.status == "open",
        )
    ).first()
    if not any(c["applied"] for c in changes):
        if current is not None and current.base_version != version.version:
            _close(session, current, "superseded", "workflow", "the runbook has a newer version")
        return current if current is not None and current.status == "open" else None
    digest = fingerprint(changes)
    if current is not None and (current.fingerprint, current.base_version) == (
        digest,
        version.version,
    ):
        return current
    dismissed = session.exec(
        select(RunbookSuggestion.id).where(
            RunbookSuggestion.tenant_id == tenant_id,
            RunbookSuggestion.runbook_id == runbook_id,
            RunbookSuggestion.base_version == version.version,
            RunbookSuggestion.fingerprint == digest,
            RunbookSuggestion.status == "dismissed",
        )
    ).first()
    if current is not None:
        _close(session, current, "superseded", "workflow", "newer evidence")
    if dismissed is not None:
        return None
    suggestion = RunbookSuggestion(
        id=new_id("sug"),
        tenant_id=tenant_id,
        runbook_id=runbook_id,
        base_version=version.version,
        status="open",
        fingerprint=digest,
        changes=changes,
        content=content,
        diff="".join(
            difflib.unified_diff(
                version.content.splitlines(keepends=True),
                content.splitlines(keepends=True),
                f"{runbook_id} v{version.version}",
                f"{runbook_id} suggested",
            )
        ),
    )
    session.add(suggestion)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor="learning",
        action="runbook.suggestion_created",
        subject=runbook_id,
        data={
            "suggestion_id": suggestion.id,
            "base_version": version.version,
            "changes": [{k: c[k] for k in ("kind", "step_id", "times", "of")} for c in changes],
        },
    )
    return suggestion


def _close(
    session: Session, row: RunbookSuggestion, status: str, actor: str, reason: str | None
) -> None:
    row.status = status
    row.decided_at = datetime.now(UTC)
    row.decided_by = actor
    row.decision_reason = reason
    session.add(row)
    session.flush()


def get_suggestion(
    session: Session, *, tenant_id: str, runbook_id: str, suggestion_id: str, lock: bool = False
) -> RunbookSuggestion:
    query = select(RunbookSuggestion).where(
        RunbookSuggestion.id == suggestion_id,
        RunbookSuggestion.tenant_id == tenant_id,
        RunbookSuggestion.runbook_id == runbook_id,
    )
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None:
        raise runbooks.RunbookNotFound(f"suggestion {suggestion_id} of {runbook_id} not found")
    return row


def check_open(session: Session, row: RunbookSuggestion) -> RunbookVersion:
    """The version the suggestion applies to; SuggestionError when it cannot be decided."""
    if row.status != "open":
        raise SuggestionError(f"suggestion {row.id} is {row.status}, not open")
    current = runbooks.version(session, tenant_id=row.tenant_id, runbook_id=row.runbook_id)
    if current.version != row.base_version:
        raise SuggestionError(
            f"suggestion {row.id} was made for version {row.base_version}; the runbook is at "
            f"version {current.version} now: generate a new suggestion"
        )
    return current


def accepted(
    session: Session, row: RunbookSuggestion, *, actor: str, version: int, reason: str | None
) -> None:
    row.accepted_version = version
    _decided(session, row, "accepted", actor, reason, {"version": version})


def accept(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    runbook_id: str,
    suggestion_id: str,
    actor: str,
    reason: str | None,
) -> tuple[RunbookSuggestion, runbooks.SavedRunbook]:
    """Accept an open suggestion: its text becomes the runbook's next version. Parsing and
    embedding hold no locks; the transaction that saves checks again that it is still open."""
    with Session(engine) as session:
        row = get_suggestion(
            session, tenant_id=tenant_id, runbook_id=runbook_id, suggestion_id=suggestion_id
        )
        base = check_open(session, row)
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
        rules = tenant_rules.risk_rules(session, tenant_id)
        content, fmt, source_path = row.content, base.format, runbook.source_path
    parsed = parser(content, fmt, source_path, rules)
    embedding = runbooks.embed(embedder, [parsed])[0]
    with Session(engine, expire_on_commit=False) as session:
        row = get_suggestion(
            session,
            tenant_id=tenant_id,
            runbook_id=runbook_id,
            suggestion_id=suggestion_id,
            lock=True,
        )
        check_open(session, row)
        saved = runbooks.save(
            session,
            tenant_id=tenant_id,
            content=content,
            fmt=fmt,
            parsed=parsed,
            source_path=source_path,
            actor=actor,
            runbook_id=runbook_id,
            embedding=embedding,
        )
        accepted(session, row, actor=actor, version=saved.version.version, reason=reason)
        session.commit()
        return row, saved


def dismiss(session: Session, row: RunbookSuggestion, *, actor: str, reason: str | None) -> None:
    check_open(session, row)
    _decided(session, row, "dismissed", actor, reason, {"reason": reason})


def _decided(
    session: Session,
    row: RunbookSuggestion,
    status: str,
    actor: str,
    reason: str | None,
    data: dict[str, Any],
) -> None:
    _close(session, row, status, actor, reason)
    audit.append(
        session,
        tenant_id=row.tenant_id,
        actor=actor,
        action=f"runbook.suggestion_{status}",
        subject=row.runbook_id,
        data={"suggestion_id": row.id, **data},
    )


def suggestions(session: Session, *, tenant_id: str, runbook_id: str) -> list[RunbookSuggestion]:
    runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    return list(
        session.exec(
            select(RunbookSuggestion)
            .where(
                RunbookSuggestion.tenant_id == tenant_id,
                RunbookSuggestion.runbook_id == runbook_id,
            )
            .order_by(col(RunbookSuggestion.created_at).desc())
        )
    )


def suggestion_view(row: RunbookSuggestion) -> dict[str, Any]:
    return {
        "id": row.id,
        "runbook_id": row.runbook_id,
        "base_version": row.base_version,
        "status": row.status,
        "changes": row.changes,
        "diff": row.diff,
        "created_at": row.created_at,
        "decided_at": row.decided_at,
        "decided_by": row.decided_by,
        "decision_reason": row.decision_reason,
        "accepted_version": row.accepted_version,
    }
