"""The circuit breaker of a runbook: when its executions keep ending failed or rolled back, its
autopilot is suspended until a human resumes it.

After an execution of a runbook ends failed or rolled_back (copilot or autopilot), the endings
of that runbook within the tenant's window (`blast_radius.breaker`, ddoc/execution/limits.py)
are counted, only those after the last resume; at the threshold a closed breaker opens: a
`runbook_breakers` row (the executions counted, why), audited `runbook.breaker_opened`. The
caller (the `ddoc.after_execution` activity) then pages the runbook's owner once
(`page_due` / `mark_paged`, so an activity retry never pages twice) and records the
`breaker_opened` execution event the Slack notifier posts. While it is open, intake runs the
runbook's alerts in copilot. `resume` (an approver, with a reason) closes it, audited
`runbook.breaker_resumed`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import text
from sqlmodel import Session, col, select

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from ddoc.execution.limits import Limits
from ddoc.platform import audit
from ddoc.platform.errors import Conflict
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Execution, RunbookBreaker

_BAD_ENDINGS = (ExecutionStatus.FAILED.value, ExecutionStatus.ROLLED_BACK.value)
_COUNTED_MODES = (ExecutionMode.COPILOT.value, ExecutionMode.AUTOPILOT.value)


class BreakerNotOpen(Conflict):
    pass


class BreakerView(BaseModel):
    """The breaker as GET /runbooks/{id} shows it: the last opening, or closed."""

    state: str  # closed | open
    opened_at: datetime | None = None
    reason: str | None = None
    executions: list[str] = []
    resumed_at: datetime | None = None
    resumed_by: str | None = None
    resume_reason: str | None = None
    page: str | None = None  # what paging the owner did


def _latest(session: Session, tenant_id: str, runbook_id: str) -> RunbookBreaker | None:
    return session.exec(
        select(RunbookBreaker)
        .where(RunbookBreaker.tenant_id == tenant_id, RunbookBreaker.runbook_id == runbook_id)
        .order_by(col(RunbookBreaker.opened_at).desc())
        .limit(1)
    ).first()


def _open_row(
    session: Session, tenant_id: str, runbook_id: str, *, lock: bool = False
) -> RunbookBreaker | None:
    query = select(RunbookBreaker).where(
        RunbookBreaker.tenant_id == tenant_id,
        RunbookBreaker.runbook_id == runbook_id,
        col(RunbookBreaker.resumed_at).is_(None),
    )
    return session.exec(query.with_for_update() if lock else query).first()


def is_open(session: Session, *, tenant_id: str, runbook_id: str) -> bool:
    return _open_row(session, tenant_id, runbook_id) is not None


def view(session: Session, *, tenant_id: str, runbook_id: str) -> BreakerView:
    row = _latest(session, tenant_id, runbook_id)
    if row is None:
        return BreakerView(state="closed")
    return BreakerView(
        state="open" if row.resumed_at is None else "closed",
        opened_at=row.opened_at,
        reason=row.reason,
        executions=list(row.execution_ids),
        resumed_at=row.resumed_at,
        resumed_by=row.resumed_by,
        resume_reason=row.resume_reason,
        page=row.page_detail,
    )


def record_ending(
    session: Session, *, execution: Execution, status: ExecutionStatus, limits: Limits
) -> RunbookBreaker | None:
    """Count the runbook's bad endings after this one; open the breaker at the threshold.
    Returns the opened breaker (in the caller's transaction), else None. Idempotent: a breaker
    already open is left as it is."""
    if status.value not in _BAD_ENDINGS or execution.mode not in _COUNTED_MODES:
        return None
    tenant_id, runbook_id = execution.tenant_id, execution.runbook_id
    # One decision per runbook at a time: two endings at once must not open it twice.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:tenant), hashtext(:what))"),
        {"tenant": tenant_id, "what": f"breaker:{runbook_id}"},
    )
    if _open_row(session, tenant_id, runbook_id) is not None:
        return None
    since = datetime.now(UTC) - timedelta(minutes=limits.breaker_window_minutes)
    last_resume = session.execute(
        text(
            "SELECT max(resumed_at) FROM runbook_breakers"
            " WHERE tenant_id = :tenant AND runbook_id = :runbook"
        ),
        {"tenant": tenant_id, "runbook": runbook_id},
    ).scalar_one()
    if last_resume is not None and last_resume > since:
        since = last_resume  # failures count only after the last resume
    failed = session.exec(
        select(Execution.id)
        .where(
            Execution.tenant_id == tenant_id,
            Execution.runbook_id == runbook_id,
            col(Execution.status).in_(_BAD_ENDINGS),
            col(Execution.mode).in_(_COUNTED_MODES),
            col(Execution.finished_at) > since,
        )
        .order_by(col(Execution.finished_at))
    ).all()
    if execution.id not in failed or len(failed) < limits.breaker_failures:
        return None
    reason = (
        f"{len(failed)} executions failed or rolled back within "
        f"{limits.breaker_window_minutes} min (threshold {limits.breaker_failures}): "
        "autopilot suspended until a human resumes it"
    )
    row = RunbookBreaker(
        id=new_id("brk"),
        tenant_id=tenant_id,
        runbook_id=runbook_id,
        reason=reason,
        execution_ids=list(failed),
        opened_by_execution=execution.id,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor="workflow",
        action="runbook.breaker_opened",
        subject=runbook_id,
        data={"breaker_id": row.id, "reason": reason, "executions": list(failed)},
    )
    return row


def page_due(session: Session, *, tenant_id: str, execution_id: str) -> RunbookBreaker | None:
    """The breaker this execution opened, while its owner has not been paged yet."""
    return session.exec(
        select(RunbookBreaker).where(
            RunbookBreaker.tenant_id == tenant_id,
            RunbookBreaker.opened_by_execution == execution_id,
            col(RunbookBreaker.paged_at).is_(None),
        )
    ).first()


def mark_paged(session: Session, *, breaker_id: str, detail: str) -> bool:
    """Record what paging the owner did; False when another run recorded it first."""
    done = session.execute(
        text(
            "UPDATE runbook_breakers SET paged_at = now(), page_detail = :detail"
            " WHERE id = :id AND paged_at IS NULL RETURNING id"
        ),
        {"id": breaker_id, "detail": detail},
    ).first()
    return done is not None


def resume(
    session: Session, *, tenant_id: str, runbook_id: str, actor: str, reason: str
) -> BreakerView:
    """Close the open breaker: autopilot runs again, failures count from now."""
    row = _open_row(session, tenant_id, runbook_id, lock=True)
    if row is None:
        raise BreakerNotOpen(f"the circuit breaker of runbook {runbook_id} is not open")
    row.resumed_at = datetime.now(UTC)
    row.resumed_by = actor
    row.resume_reason = reason
    session.add(row)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="runbook.breaker_resumed",
        subject=runbook_id,
        data={"breaker_id": row.id, "reason": reason, "opened_at": row.opened_at.isoformat()},
    )
    return view(session, tenant_id=tenant_id, runbook_id=runbook_id)
