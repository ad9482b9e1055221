"""What a finished execution teaches: a fresh suggested revision of its runbook, a demotion
back to copilot when an autopilot run failed or rolled back, and the runbook's circuit breaker
(ddoc/trust/breaker.py) opening when such endings pile up.

Called explicitly after the execution's end is on the trail (the `ddoc.after_execution`
activity), never as a side effect of writing a status. Idempotent: a retry finds the runbook
already demoted (and its breaker already open) and recomputes the same suggestion.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlmodel import Session

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from ddoc.execution import limits
from ddoc.execution import store as executions
from ddoc.platform import tenancy
from ddoc.platform.tables import RunbookBreaker
from ddoc.trust import breaker, learning
from ddoc.trust import levels as trust

log = logging.getLogger(__name__)


def after_execution(
    session: Session, *, tenant_id: str, execution_id: str, status: ExecutionStatus
) -> RunbookBreaker | None:
    """Returns the circuit breaker this ending opened (the caller pages its owner)."""
    execution = executions.get(session, tenant_id=tenant_id, execution_id=execution_id)
    if status in executions.TERMINAL_STATUSES:
        _learn(session, tenant_id=tenant_id, runbook_id=execution.runbook_id)
    settings = tenancy.settings(session, tenant_id)
    demoted = trust.demote_after(
        session,
        execution=execution,
        status=status,
        policy=trust.trust_policy(settings),
    )
    if demoted:
        # The event wakes the notifiers (Slack) like every other transition.
        executions.record_event(
            session,
            tenant_id=tenant_id,
            execution_id=execution_id,
            kind="trust_demoted",
            data={
                "runbook_id": execution.runbook_id,
                "from": ExecutionMode.AUTOPILOT.value,
                "to": ExecutionMode.COPILOT.value,
                "reason": demoted,
            },
        )
    return breaker.record_ending(
        session,
        execution=execution,
        status=status,
        limits=limits.effective(settings, execution.runbook_id),
    )


def _learn(session: Session, *, tenant_id: str, runbook_id: str) -> None:
    """Every finished execution is evidence: refresh the runbook's suggested revision. In a
    savepoint, so a fault here never undoes the demotion or the execution's own record.

    One refresh per runbook at a time, and the others skip rather than wait: when many
    executions of one runbook end together (an alert storm) they would otherwise queue on the
    runbook's row, each holding a worker thread. The refresh running reads the evidence after
    it started; an execution that ended just after that read is counted by the next refresh."""
    busy = not session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": f"learn:{runbook_id}"}
    ).scalar_one()
    if busy:
        log.info("learning from %s skipped: a refresh of its suggestion is running", runbook_id)
        return
    try:
        with session.begin_nested():
            learning.suggest(session, tenant_id=tenant_id, runbook_id=runbook_id)
    except Exception:
        log.exception("learning from an execution of %s failed", runbook_id)
