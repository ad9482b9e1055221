"""Control-plane activities that write the execution trail to Postgres.

Synchronous on purpose: SQLAlchemy sessions block, so the worker runs these in its thread pool
instead of stalling the event loop.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from ddoc import executions
from ddoc.contracts import ExecutionStatusUpdate, StepRecord


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
            )
            session.commit()

    @activity.defn(name="ddoc.record_step")
    def record_step(self, record: StepRecord) -> None:
        with Session(self._engine) as session:
            executions.record_step(session, record=record)
            session.commit()
