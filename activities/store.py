"""Control-plane activities that write the execution trail to Postgres, and draw what a finished
execution teaches.

Synchronous on purpose: SQLAlchemy sessions block, so the worker runs these in its thread pool
instead of stalling the event loop. A cancellation (a timeout, the worker shutting down) is never
raised into a running transaction (`no_thread_cancel_exception`): an exception injected there
could leave its connection checked out and idle in transaction, holding its locks; each write
commits or rolls back whole, and a retry writes the same again. The workflow runs
`record_transition` and `after_execution` as local activities (workflows/execution/trail.py); the
three single-record activities serve executions started before that (`trail-v2` patch).
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from ddoc.contracts import names
from ddoc.contracts.execution import (
    ExecutionEvent,
    ExecutionFinished,
    ExecutionStatusUpdate,
    StepRecord,
    TrailWrite,
)
from ddoc.execution import store as executions
from ddoc.trust import evidence


class ExecutionStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
