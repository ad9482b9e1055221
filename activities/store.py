"""Control-plane activities that write the execution trail to Postgres, and draw what a finished
execution teaches.

Synchronous on purpose: SQLAlchemy sessions block, so the worker runs these in its thread pool
instead of stalling the event loop. A cancellation (a timeout, the worker shutting down) is never
raised into a running transaction (`no_thread_cancel_exception`): an exception injected there
could leave its connection checked out and idle in transaction, holding its locks; each write
commits or rolls back whole, and a retry writes the same again. The workflow runs
`record_transition` and `after_execution` as local activities (workflows/execution/trail.py); the
three single-record activities serve executions started before that (`trail-v2` patch).

When an ending opens the runbook's circuit breaker, the runbook's owner (the tenant's escalation
level `blast_radius.owner_level`) is paged after that is committed, once: the breaker row records
the page, so a retry of the activity finds nothing left to page.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio import activity

from ddoc.alerts.paging import Page, PagerDutyEvents, PagingError
from ddoc.contracts import names
from ddoc.contracts.execution import (
    ExecutionEvent,
    ExecutionFinished,
    ExecutionStatusUpdate,
    StepRecord,
    TrailWrite,
)
from ddoc.execution import limits, policy
from ddoc.execution import store as executions
from ddoc.platform import tenancy
from ddoc.trust import breaker, evidence

log = logging.getLogger(__name__)


class ExecutionStore:
    def __init__(self, engine: Engine, pager: PagerDutyEvents | None = None) -> None:
        self._engine = engine
        self._pager = pager

    @activity.defn(name=names.RECORD_TRANSITION, no_thread_cancel_exception=True)
    def record_transition(self, write: TrailWrite) -> None:
        """The workflow's writes since its last side effect, in their order, in one transaction."""
        with Session(self._engine) as session:
            for op in write.ops:
                if op.step is not None:
                    executions.record_step(session, record=op.step)
                if op.status is not None:
                    _record_status(session, op.status)
                if op.event is not None:
                    _record_event(session, op.event)
            session.commit()

    @activity.defn(name=names.AFTER_EXECUTION, no_thread_cancel_exception=True)
    def after_execution(self, finished: ExecutionFinished) -> None:
        with Session(self._engine) as session:
            evidence.after_execution(
                session,
                tenant_id=finished.tenant_id,
                execution_id=finished.execution_id,
                status=finished.status,
            )
            session.commit()
        self._page_breaker_owner(finished.tenant_id, finished.execution_id)

    @activity.defn(name=names.RECORD_EXECUTION_STATUS, no_thread_cancel_exception=True)
    def record_execution_status(self, update: ExecutionStatusUpdate) -> None:
        with Session(self._engine) as session:
            if _record_status(session, update):
                # Executions from before `trail-v2` call no `after_execution`: their status
                # write draws what the execution teaches, as it did when they started.
                evidence.after_execution(
                    session,
                    tenant_id=update.tenant_id,
                    execution_id=update.execution_id,
                    status=update.status,
                )
            session.commit()
        self._page_breaker_owner(update.tenant_id, update.execution_id)

    def _page_breaker_owner(self, tenant_id: str, execution_id: str) -> None:
        """Page the owner of the runbook whose breaker this execution's end opened (if it did
        and nobody was paged yet), then record the `breaker_opened` event the notifiers post.
        A page PagerDuty could take later is retried with the activity; a refused one is
        recorded as such."""
        with Session(self._engine) as session:
            due = breaker.page_due(session, tenant_id=tenant_id, execution_id=execution_id)
            if due is None:
                return
            settings = tenancy.settings(session, tenant_id)
            owner = limits.effective(settings, due.runbook_id).owner_level
            level = policy.escalation_level(settings, owner)
            routing_key = policy.routing_key(session, tenant_id, level)
            title = session.execute(
                text("SELECT title FROM runbooks WHERE id = :id"), {"id": due.runbook_id}
            ).scalar_one_or_none()
        name = str(level["name"]) if level else f"level {owner}"
        paged = False
        if not routing_key:
            detail = f"{name}: no pager configured"
        elif self._pager is None:
            detail = f"{name}: no pager in this worker"
        else:
            page = Page(
                routing_key=str(routing_key),
                dedup_key=f"ddoc:breaker:{due.id}",
                summary=f"dd0c/run: circuit breaker opened for {title or due.runbook_id}: "
                + due.reason,
                source="dd0c/run",
                severity="error",
                group=name,
                custom_details={
                    "runbook_id": due.runbook_id,
                    "executions": list(due.execution_ids),
                    "owner_level": owner,
                },
            )
            try:
                answer = self._pager.trigger(page)
                paged, detail = True, f"paged {name} (dedup key {answer.dedup_key})"
            except PagingError as err:
                if err.retryable:
                    raise
                detail = f"paging {name} failed: {err}"
        with Session(self._engine) as session:
            if breaker.mark_paged(session, breaker_id=due.id, detail=detail):
                executions.record_event(
                    session,
                    tenant_id=tenant_id,
                    execution_id=execution_id,
                    kind="breaker_opened",
                    data={
                        "runbook_id": due.runbook_id,
                        "reason": due.reason,
                        "executions": list(due.execution_ids),
                        "level": owner,
                        "name": name,
                        "paged": paged,
                        "detail": detail,
                    },
                )
            session.commit()
        log.info("runbook %s: circuit breaker opened; %s", due.runbook_id, detail)

    @activity.defn(name=names.RECORD_STEP, no_thread_cancel_exception=True)
    def record_step(self, record: StepRecord) -> None:
        with Session(self._engine) as session:
            executions.record_step(session, record=record)
            session.commit()

    @activity.defn(name=names.RECORD_EVENT, no_thread_cancel_exception=True)
    def record_event(self, event: ExecutionEvent) -> None:
        with Session(self._engine) as session:
            _record_event(session, event)
            session.commit()


def _record_status(session: Session, update: ExecutionStatusUpdate) -> bool:
    return executions.record_status(
        session,
        tenant_id=update.tenant_id,
        execution_id=update.execution_id,
        status=update.status,
        current_step=update.current_step,
    )


def _record_event(session: Session, event: ExecutionEvent) -> None:
    executions.record_event(
        session,
        tenant_id=event.tenant_id,
        execution_id=event.execution_id,
        kind=event.type,
        step_id=event.step_id,
        data=event.data,
    )
