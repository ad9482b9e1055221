"""The learning loop: what finished executions say about a runbook.

Why this file is long: effectiveness, dead steps and suggested revisions read the same rows of
a runbook's recent executions; issue 16 moves them into ddoc/trust/levels/ as separate modules.

- Effectiveness: success rate, median time to resolve, skip/edit/failure rates per step, and a
  score from 0 to 100 (success rate, lowered by half the mean skip rate).
- Dead steps: skipped in more than half of the recent executions that reached them.
- Suggested revisions: the commands people edited (and then ran successfully) and the dead
  steps, applied to the current version's text as a diff an editor accepts (it becomes the next
  version) or dismisses (the same changes are not suggested again for that version).
- Confidence decay: halves every `stale_after_days` without a success, and drops with recent
  failures and an old version; under `review_below` the runbook is flagged stale.

Everything is computed from the execution trail in Postgres; nothing here calls a model.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import func, text
from sqlalchemy import select as sa_select  # more than four columns, typed
from sqlmodel import Session, col, select

from ddoc.platform import audit
from ddoc.platform.ids import new_id
from ddoc.platform.tables import (
    Execution,
    ExecutionStep,
    Incident,
    Runbook,
    RunbookSuggestion,
    RunbookVersion,
)
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook

FINISHED = ("succeeded", "failed", "rolled_back", "aborted")
BAD = ("failed", "rolled_back")


@dataclass(frozen=True)
class LearningPolicy:
    window: int = 20  # the recent finished executions looked at, per runbook
    dead_step_ratio: float = 0.5  # skipped in more than this share of executions...
    dead_step_min_runs: int = 3  # ...that reached the step, with at least this many
    stale_after_days: float = 90.0  # confidence halves this often without a success
    review_below: float = 0.5  # confidence under which a runbook is flagged for review
    old_version_days: float = 365.0  # a version older than this costs confidence too
    failure_window: int = 5  # recent executions whose failures cost confidence


DEFAULT_POLICY = LearningPolicy()


class SuggestionError(Exception):
    """The suggestion cannot be accepted or dismissed as asked (closed, or outdated)."""


class RunFacts(Protocol):
    """What the learning loop reads of an execution (a row, not an ORM object: cheap)."""

    id: str
    runbook_id: str
    runbook_version: int
    status: str
    incident_id: str | None
    created_at: datetime
    finished_at: datetime | None


class StepFacts(Protocol):
    execution_id: str
    step_id: str
    status: str
    command: str | None
    original_command: str | None
    undoes: str | None
    started_at: datetime | None
    finished_at: datetime | None


class IncidentFacts(Protocol):
    id: str
    opened_at: datetime
    resolved_at: datetime | None


@dataclass
class Evidence:
    """One runbook's recent finished executions, their steps and incidents."""

    executions: Sequence[RunFacts] = field(default_factory=list)  # newest first
    steps: dict[str, list[StepFacts]] = field(default_factory=dict)  # by execution id
    incidents: dict[str, IncidentFacts] = field(default_factory=dict)  # by incident id
    last_success_at: datetime | None = None


def load_evidence(
    session: Session, *, tenant_id: str, runbook_ids: Sequence[str], window: int
) -> dict[str, Evidence]:
    """Four queries whatever the number of runbooks: the last `window` finished executions of
    each, their steps, their incidents, and each runbook's last success (ever). Plain rows of
    the columns used: building ORM objects cost ten times the queries."""
    found: dict[str, Evidence] = {rid: Evidence(executions=[]) for rid in runbook_ids}
    if not runbook_ids:
        return found
    ranked = (
        select(
            Execution.id,
            func.row_number()
            .over(
                partition_by=Execution.runbook_id,
                order_by=(col(Execution.created_at).desc(), col(Execution.id).desc()),
            )
            .label("n"),
        )
        .where(
            Execution.tenant_id == tenant_id,
            col(Execution.runbook_id).in_(runbook_ids),
            col(Execution.status).in_(FINISHED),
        )
        .subquery()
    )
    rows = cast(
        "list[RunFacts]",
        session.execute(
            sa_select(
                col(Execution.id),
                col(Execution.runbook_id),
                col(Execution.runbook_version),
                col(Execution.status),
                col(Execution.incident_id),
                col(Execution.created_at),
                col(Execution.finished_at),
            )
            .join(ranked, col(ranked.c.id) == Execution.id)
            .where(ranked.c.n <= window)
            .order_by(col(Execution.created_at).desc(), col(Execution.id).desc())
        ).all(),
    )
    for row in rows:
        cast("list[RunFacts]", found[row.runbook_id].executions).append(row)
    owner = {e.id: e.runbook_id for e in rows}
    if owner:
        steps = session.execute(
            sa_select(
                col(ExecutionStep.execution_id),
                col(ExecutionStep.step_id),
                col(ExecutionStep.status),
                col(ExecutionStep.command),
                col(ExecutionStep.original_command),
                col(ExecutionStep.undoes),
                col(ExecutionStep.started_at),
                col(ExecutionStep.finished_at),
            )
            .join(ranked, col(ranked.c.id) == col(ExecutionStep.execution_id))
            .where(col(ExecutionStep.tenant_id) == tenant_id, ranked.c.n <= window)
            .order_by(col(ExecutionStep.execution_id), col(ExecutionStep.position))
        ).all()
        for step in cast("list[StepFacts]", steps):
            found[owner[step.execution_id]].steps.setdefault(step.execution_id, []).append(step)
    if any(e.incident_id for e in rows):
        incidents = {
            i.id: i
            for i in cast(
                "list[IncidentFacts]",
                session.execute(
                    select(Incident.id, Incident.opened_at, Incident.resolved_at)
                    .join(Execution, col(Execution.incident_id) == col(Incident.id))
                    .join(ranked, col(ranked.c.id) == col(Execution.id))
                    .where(Incident.tenant_id == tenant_id, ranked.c.n <= window)
                ).all(),
            )
        }
        for evidence in found.values():
            evidence.incidents = {
                e.incident_id: incidents[e.incident_id]
                for e in evidence.executions
                if e.incident_id in incidents
            }
    for runbook_id, at in session.exec(
        select(Execution.runbook_id, func.max(Execution.finished_at))
        .where(
            Execution.tenant_id == tenant_id,
            col(Execution.runbook_id).in_(runbook_ids),
            Execution.status == "succeeded",
        )
        .group_by(col(Execution.runbook_id))
    ):
        found[runbook_id].last_success_at = at
    return found


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return round(statistics.median(found), 3) if found else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def step_stats(
    parsed: ParsedRunbook, version: int, evidence: Evidence, policy: LearningPolicy
) -> list[dict[str, Any]]:
    """Per step of the current version, over its recent executions of that version."""
    runs = [e for e in evidence.executions if e.runbook_version == version]
    table: dict[str, dict[str, Any]] = {
        s.id: {
            "step_id": s.id,
            "text": s.text,
            "command": s.command,
            "reached": 0,
            "executed": 0,
            "skipped": 0,
            "edited": 0,
            "failed": 0,
            "rolled_back": 0,
            "durations": [],
        }
        for s in parsed.steps
    }
    for execution in runs:
        rows = evidence.steps.get(execution.id, [])
        undone = {r.undoes for r in rows if r.undoes and r.status == "succeeded"}
        for row in rows:
            entry = table.get(row.step_id)
            if entry is None or row.undoes is not None or row.status == "pending":
                continue
            entry["reached"] += 1
            if row.status in ("succeeded", "failed"):
                entry["executed"] += 1
            if row.status == "skipped":
                entry["skipped"] += 1
            if row.status == "failed":
                entry["failed"] += 1
            if row.original_command is not None:
                entry["edited"] += 1
            if row.status == "rolled_back" or row.step_id in undone:
                entry["rolled_back"] += 1
            duration = _seconds(row.started_at, row.finished_at)
            if duration is not None and row.status in ("succeeded", "failed"):
                entry["durations"].append(duration)
    result = []
    for entry in table.values():
        reached = entry["reached"]
        durations = entry.pop("durations")
        entry["median_duration_seconds"] = _median(durations)
        entry["skip_rate"] = round(entry["skipped"] / reached, 3) if reached else None
        entry["dead"] = (
            reached >= policy.dead_step_min_runs
            and entry["skipped"] / reached > policy.dead_step_ratio
        )
        result.append(entry)
    return result


def confidence(
    *,
    evidence: Evidence,
    version_created_at: datetime,
    policy: LearningPolicy,
    now: datetime,
) -> dict[str, Any]:
    """1.0 for a runbook that just worked; halves every `stale_after_days` without a success
    (since the version was written when it never succeeded), x0.8 per failure among the last
    `failure_window` executions, x0.8 once the version is older than `old_version_days`."""
    since = evidence.last_success_at or version_created_at
    idle_days = max(0.0, (now - since).total_seconds() / 86400)
    age_days = max(0.0, (now - version_created_at).total_seconds() / 86400)
    failures = sum(1 for e in evidence.executions[: policy.failure_window] if e.status in BAD)
    value = 0.5 ** (idle_days / policy.stale_after_days) * 0.8**failures
    reasons = []
    if evidence.last_success_at is None:
        if evidence.executions:
            reasons.append(f"never succeeded in {len(evidence.executions)} execution(s)")
        if idle_days >= policy.stale_after_days / 2:
            reasons.append(f"never executed successfully in {idle_days:.0f} days")
    elif idle_days >= policy.stale_after_days / 2:
        reasons.append(f"last success {idle_days:.0f} days ago")
    if failures:
        reasons.append(
            f"{failures} of the last {min(policy.failure_window, len(evidence.executions))} "
            "execution(s) failed or rolled back"
        )
    if age_days > policy.old_version_days:
        value *= 0.8
        reasons.append(f"current version is {age_days:.0f} days old")
    value = round(value, 3)
    return {
        "confidence": value,
        "stale": value < policy.review_below,
        "reasons": reasons,
        "last_success_at": evidence.last_success_at,
        "days_since_success": round(idle_days, 1) if evidence.last_success_at else None,
        "version_age_days": round(age_days, 1),
    }


def effectiveness(evidence: Evidence, steps: list[dict[str, Any]]) -> dict[str, Any]:
    finished = evidence.executions
    succeeded = sum(1 for e in finished if e.status == "succeeded")
    rate = succeeded / len(finished) if finished else None
    resolve_times = [
        _seconds(i.opened_at, i.resolved_at) for i in evidence.incidents.values() if i.resolved_at
    ]
    skip_rates = [s["skip_rate"] for s in steps if s["skip_rate"] is not None]
    mean_skip = statistics.fmean(skip_rates) if skip_rates else 0.0
    return {
        "executions": len(finished),
        "by_status": {
            status: n
            for status in FINISHED
            if (n := sum(1 for e in finished if e.status == status))
        },
        "success_rate": round(rate, 3) if rate is not None else None,
        "median_time_to_resolve_seconds": _median(t for t in resolve_times if t is not None),
        "mean_skip_rate": round(mean_skip, 3),
        "score": round(100 * rate * (1 - 0.5 * mean_skip), 1) if rate is not None else None,
    }


def runbook_report(
    session: Session,
    *,
    tenant_id: str,
    runbook: Runbook,
    policy: LearningPolicy = DEFAULT_POLICY,
    evidence: Evidence | None = None,
    version: RunbookVersion | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    version = version or runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
    if evidence is None:
        evidence = load_evidence(
            session, tenant_id=tenant_id, runbook_ids=[runbook.id], window=policy.window
        )[runbook.id]
    parsed = ParsedRunbook.from_dict(version.parsed)
    steps = step_stats(parsed, version.version, evidence, policy)
    return {
        "runbook_id": runbook.id,
        "title": runbook.title,
        "trust_level": runbook.trust_level,
        "version": version.version,
        "window": policy.window,
        "effectiveness": effectiveness(evidence, steps),
        "steps": steps,
        "dead_steps": [s["step_id"] for s in steps if s["dead"]],
        "decay": confidence(
            evidence=evidence,
            version_created_at=version.created_at,
            policy=policy,
            now=now or datetime.now(UTC),
        ),
    }


# --- suggested revisions -------------------------------------------------------------------------


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


# --- per incident ---------------------------------------------------------------------------------


def incident_resolution(session: Session, *, tenant_id: str, incident: Incident) -> dict[str, Any]:
    """Alert received → first human or machine action → resolved, and how it ended."""
    execution = (
        session.exec(
            select(Execution).where(
                Execution.id == incident.execution_id, Execution.tenant_id == tenant_id
            )
        ).first()
        if incident.execution_id
        else None
    )
    first_action: datetime | None = None
    if execution is not None:
        rows = session.exec(
            select(ExecutionStep).where(
                ExecutionStep.execution_id == execution.id, ExecutionStep.tenant_id == tenant_id
            )
        ).all()
        moments = [r.started_at for r in rows if r.started_at] + [
            datetime.fromisoformat(d["at"])
            for r in rows
            for d in r.decisions
            if d.get("accepted") and d.get("at")
        ]
        first_action = min(moments, default=None)
    if execution is None:
        outcome = "no_runbook" if incident.match_status != "attached" else "not_executed"
    elif execution.status in FINISHED:
        outcome = execution.status
    else:
        outcome = "in_progress"
    return {
        "outcome": outcome,
        "resolved": incident.resolved_at is not None,
        "execution_id": execution.id if execution else None,
        "first_action_at": first_action,
        "time_to_first_action_seconds": _round(_seconds(incident.opened_at, first_action)),
        "time_to_resolve_seconds": _round(_seconds(incident.opened_at, incident.resolved_at)),
    }


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


# --- the tenant's health -------------------------------------------------------------------------


def health(
    session: Session,
    *,
    tenant_id: str,
    days: int = 30,
    policy: LearningPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
    gap_limit: int = 50,
) -> dict[str, Any]:
    """Totals, coverage gaps, stale runbooks, usage and the effectiveness ranking."""
    now = now or datetime.now(UTC)
    since = now.timestamp() - days * 86400
    since_at = datetime.fromtimestamp(since, UTC)
    books = runbooks.list_runbooks(session, tenant_id=tenant_id)
    ids = [b.id for b in books]
    evidence = load_evidence(session, tenant_id=tenant_id, runbook_ids=ids, window=policy.window)
    versions = {
        v.runbook_id: v
        for v in session.exec(
            select(RunbookVersion)
            .join(
                Runbook,
                (col(Runbook.id) == col(RunbookVersion.runbook_id))
                & (col(Runbook.current_version) == col(RunbookVersion.version)),
            )
            .where(RunbookVersion.tenant_id == tenant_id, col(RunbookVersion.runbook_id).in_(ids))
        )
    }
    usage = dict(
        session.exec(
            select(Execution.runbook_id, func.count())
            .where(Execution.tenant_id == tenant_id, col(Execution.created_at) >= since_at)
            .group_by(col(Execution.runbook_id))
        ).all()
    )
    open_suggestions = dict(
        session.exec(
            select(RunbookSuggestion.runbook_id, RunbookSuggestion.id).where(
                RunbookSuggestion.tenant_id == tenant_id, RunbookSuggestion.status == "open"
            )
        ).all()
    )
    rows = []
    for book in books:
        report = runbook_report(
            session,
            tenant_id=tenant_id,
            runbook=book,
            policy=policy,
            evidence=evidence[book.id],
            version=versions[book.id],
            now=now,
        )
        rows.append(
            {
                "runbook_id": book.id,
                "title": book.title,
                "trust_level": book.trust_level,
                "version": report["version"],
                "executions_in_period": usage.get(book.id, 0),
                **{
                    k: report["effectiveness"][k]
                    for k in ("score", "success_rate", "median_time_to_resolve_seconds")
                },
                "executions_counted": report["effectiveness"]["executions"],
                "dead_steps": report["dead_steps"],
                "confidence": report["decay"]["confidence"],
                "stale": report["decay"]["stale"],
                "stale_reasons": report["decay"]["reasons"],
                "open_suggestion": open_suggestions.get(book.id),
            }
        )
    ranking = sorted(
        rows, key=lambda r: (r["score"] is None, -(r["score"] or 0), r["title"].lower())
    )
    counts = session.execute(
        text(
            "SELECT count(*) AS incidents,"
            " count(*) FILTER (WHERE execution_id IS NOT NULL) AS with_execution,"
            " count(*) FILTER (WHERE runbook_id IS NULL) AS without_runbook"
            " FROM incidents WHERE tenant_id = :tenant AND opened_at >= :since"
        ),
        {"tenant": tenant_id, "since": since_at},
    ).one()
    executions_by_status = dict(
        session.exec(
            select(Execution.status, func.count())
            .where(Execution.tenant_id == tenant_id, col(Execution.created_at) >= since_at)
            .group_by(col(Execution.status))
        ).all()
    )
    by_trust: dict[str, int] = defaultdict(int)
    for book in books:
        by_trust[book.trust_level] += 1
    return {
        "generated_at": now,
        "period_days": days,
        "totals": {
            "runbooks": len(books),
            "by_trust_level": dict(by_trust),
            "incidents": counts.incidents,
            "incidents_with_execution": counts.with_execution,
            "incidents_without_runbook": counts.without_runbook,
            "executions": sum(executions_by_status.values()),
            "executions_by_status": executions_by_status,
            "stale_runbooks": sum(1 for r in rows if r["stale"]),
            "open_suggestions": len(open_suggestions),
        },
        "coverage_gaps": coverage_gaps(
            session, tenant_id=tenant_id, since=since_at, limit=gap_limit
        ),
        "stale": [r for r in ranking if r["stale"]],
        "usage": sorted(rows, key=lambda r: (-r["executions_in_period"], r["title"].lower())),
        "ranking": ranking,
    }


def coverage_gaps(
    session: Session, *, tenant_id: str, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """Alerts and services seen with no runbook attached or picked, most frequent first."""
    rows = session.execute(
        text(
            "SELECT coalesce(labels->>'alertname', title) AS alert, service,"
            " count(*) AS incidents, sum(alert_count) AS alerts, max(last_seen_at) AS last_seen,"
            " bool_or(match_status = 'suggested') AS had_suggestions"
            " FROM incidents WHERE tenant_id = :tenant AND opened_at >= :since"
            " AND runbook_id IS NULL"
            " GROUP BY 1, 2 ORDER BY count(*) DESC, max(last_seen_at) DESC LIMIT :limit"
        ),
        {"tenant": tenant_id, "since": since, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]
