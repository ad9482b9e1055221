"""Execution records in Postgres: created by the API/intake, updated by the workflow's activities.

The workflow is the source of truth while it runs; these rows are its durable, queryable trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from ddoc import audit
from ddoc.contracts import (
    AlertContext,
    ExecutionInput,
    ExecutionMode,
    ExecutionStatus,
    StepRecord,
    StepSnapshot,
    StepStatus,
    VariableSpec,
)
from ddoc.runbook import ParsedRunbook
from ddoc.tables import Execution, ExecutionStep, Runbook, RunbookVersion

TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.ROLLED_BACK,
        ExecutionStatus.ABORTED,
    }
)


class ExecutionNotFound(LookupError):
    pass


def build_input(
    *,
    execution_id: str,
    tenant_id: str,
    environment: str,
    runbook: Runbook,
    version: RunbookVersion,
    mode: ExecutionMode,
    alert: AlertContext | None,
    incident_id: str | None,
    values: dict[str, str] | None = None,
    command_timeout_seconds: int = 300,
    agent_offline_timeout_seconds: int = 120,
) -> ExecutionInput:
    parsed = ParsedRunbook.from_dict(version.parsed)
    return ExecutionInput(
        execution_id=execution_id,
        tenant_id=tenant_id,
        environment=environment,
        runbook_id=runbook.id,
        runbook_version=version.version,
        runbook_title=parsed.title,
        mode=mode,
        steps=[
            StepSnapshot(
                id=step.id,
                text=step.text,
                kind=step.kind.value,
                command=step.command,
                risk=step.risk.value if step.risk else None,
            )
            for step in parsed.steps
        ],
        variables=[
            VariableSpec(name=v.name, syntax=v.syntax, source=v.source.value, key=v.key)
            for v in parsed.variables
        ],
        values=dict(values or {}),
        alert=alert,
        incident_id=incident_id,
        command_timeout_seconds=command_timeout_seconds,
        agent_offline_timeout_seconds=agent_offline_timeout_seconds,
    )


def create(
    session: Session, *, inp: ExecutionInput, started_by: str, record_audit: bool = True
) -> Execution:
    """Insert the execution and its pending steps. With `record_audit=False` the caller
    appends `creation_audit(...)` itself, last in its transaction (see intake)."""
    execution = Execution(
        id=inp.execution_id,
        tenant_id=inp.tenant_id,
        incident_id=inp.incident_id,
        runbook_id=inp.runbook_id,
        runbook_version=inp.runbook_version,
        mode=inp.mode.value,
        status=ExecutionStatus.RUNNING.value,
        environment=inp.environment,
        started_by=started_by,
    )
    session.add(execution)
    session.flush()
    for position, step in enumerate(inp.steps):
        session.add(
            ExecutionStep(
                execution_id=inp.execution_id,
                step_id=step.id,
                tenant_id=inp.tenant_id,
                position=position,
                kind=step.kind,
                text=step.text,
                command=step.command,
                risk=step.risk,
                status=StepStatus.PENDING.value,
            )
        )
    session.flush()
    if record_audit:
        append_creation_audit(session, inp=inp, started_by=started_by)
    return execution


def append_creation_audit(session: Session, *, inp: ExecutionInput, started_by: str) -> None:
    audit.append(
        session,
        tenant_id=inp.tenant_id,
        actor=started_by,
        action="execution.created",
        subject=inp.execution_id,
        data={
            "runbook_id": inp.runbook_id,
            "runbook_version": inp.runbook_version,
            "mode": inp.mode.value,
            "incident_id": inp.incident_id,
        },
    )


def record_status(
    session: Session,
    *,
    tenant_id: str,
    execution_id: str,
    status: ExecutionStatus,
    from_workflow: bool = True,
) -> None:
    execution = _get(session, tenant_id=tenant_id, execution_id=execution_id)
    if from_workflow:
        execution.workflow_started = True  # the workflow runs: its start went through
    if execution.status == status.value:
        session.add(execution)
        return  # activities may be retried: recording twice changes nothing
    execution.status = status.value
    if status in TERMINAL_STATUSES:
        execution.finished_at = datetime.now(UTC)
    session.add(execution)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor="workflow",
        action=f"execution.{status.value}",
        subject=execution_id,
    )


def record_step(session: Session, *, record: StepRecord) -> None:
    step = session.exec(
        select(ExecutionStep).where(
            ExecutionStep.execution_id == record.execution_id,
            ExecutionStep.step_id == record.step_id,
            ExecutionStep.tenant_id == record.tenant_id,
        )
    ).first()
    if step is None:
        raise ExecutionNotFound(f"step {record.step_id} of {record.execution_id} not found")
    now = datetime.now(UTC)
    if record.status == StepStatus.RUNNING:
        step.started_at = step.started_at or now
    elif record.status != StepStatus.PENDING:
        step.finished_at = now
    step.status = record.status.value
    step.exit_code = record.exit_code
    step.output = record.output
    step.output_truncated = record.output_truncated
    step.detail = record.detail
    if record.command is not None:
        step.command = record.command
    session.add(step)
    if record.status not in (StepStatus.RUNNING, StepStatus.PENDING):
        audit.append(
            session,
            tenant_id=record.tenant_id,
            actor="workflow",
            action=f"step.{record.status.value}",
            subject=f"{record.execution_id}/{record.step_id}",
            data={"exit_code": record.exit_code, "command": step.command},
        )


def list_executions(
    session: Session,
    *,
    tenant_id: str,
    status: ExecutionStatus | None = None,
    runbook_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = select(Execution).where(Execution.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Execution.status == status.value)
    if runbook_id is not None:
        query = query.where(Execution.runbook_id == runbook_id)
    rows = session.exec(query.order_by(col(Execution.created_at).desc()).limit(limit))
    return [_summary(row) for row in rows]


def _summary(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "workflow_id": execution.id,
        "status": execution.status,
        "mode": execution.mode,
        "runbook_id": execution.runbook_id,
        "runbook_version": execution.runbook_version,
        "incident_id": execution.incident_id,
        "environment": execution.environment,
        "started_by": execution.started_by,
        "created_at": execution.created_at,
        "finished_at": execution.finished_at,
    }


def view(session: Session, *, tenant_id: str, execution_id: str) -> dict[str, Any]:
    execution = _get(session, tenant_id=tenant_id, execution_id=execution_id)
    steps = session.exec(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id == execution_id, ExecutionStep.tenant_id == tenant_id)
        .order_by(col(ExecutionStep.position))
    ).all()
    return {
        **_summary(execution),
        "steps": [
            {
                "id": step.step_id,
                "kind": step.kind,
                "text": step.text,
                "status": step.status,
                "command": step.command,
                "risk": step.risk,
                "exit_code": step.exit_code,
                "output": step.output,
                "output_truncated": step.output_truncated,
                "detail": step.detail,
                "started_at": step.started_at,
                "finished_at": step.finished_at,
            }
            for step in steps
        ],
    }


def _get(session: Session, *, tenant_id: str, execution_id: str) -> Execution:
    execution = session.exec(
        select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
    ).first()
    if execution is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    return execution
