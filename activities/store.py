"""Control-plane activities that write the execution trail to Postgres.

Synchronous on purpose: SQLAlchemy sessions block, so the worker runs these in its thread pool
instead of stalling the event loop.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from ddoc.contracts.execution import ExecutionEvent, ExecutionStatusUpdate, StepRecord
from ddoc.execution import store as executions


class ExecutionStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="ddoc.record_execution_status")
    def record_execution_status(self, update: ExecutionStatusUpdate) -> None:
        with Session(self._engine) as session:
            executions.record_status(
                session,
                tenant_id=update.tenant_id,
                execution_id=update.execution_id,
                status=update.status,
                current_step=update.current_step,
            )
            session.commit()

    @activity.defn(name="ddoc.record_step")
    def record_step(self, record: StepRecord) -> None:
        with Session(self._engine) as session:
            executions.record_step(session, record=record)
            session.commit()

    @activity.defn(name="ddoc.record_event")
    def record_event(self, event: ExecutionEvent) -> None:
        with Session(self._engine) as session:
            executions.record_event(
                session,
                tenant_id=event.tenant_id,
                execution_id=event.execution_id,
                kind=event.type,
                step_id=event.step_id,
                data=event.data,
            )
            session.commit()
