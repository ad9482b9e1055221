"""The rows every part of the learning loop reads: a runbook's recent finished executions, their
steps and incidents, loaded for many runbooks at once.

Named `runs` so as not to be confused with ddoc/trust/evidence.py (what a finished execution
teaches); the loaded rows keep their name, `Evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast

from sqlalchemy import func
from sqlalchemy import select as sa_select  # more than four columns, typed
from sqlmodel import Session, col, select

from ddoc.platform.tables import Execution, ExecutionStep, Incident

FINISHED = ("succeeded", "failed", "rolled_back", "aborted")
BAD = ("failed", "rolled_back")


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
            # Each query reads its own snapshot: an execution that finished in between has
            # steps here but is not among the executions read above.
            if step.execution_id in owner:
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


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """From `start` to `end`; None when either is missing."""
    return (end - start).total_seconds() if start and end else None
