"""An execution as it is now: the workflow's `state` query while it runs, the database trail
once it is finished (or when Temporal cannot answer), and signals to it.

Used by the API (and, through it, the CLI and Slack).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from ddoc.contracts.approvals import Refusal, RefusalCode, refusal
from ddoc.contracts.execution import Actor, Decision, DecisionKind, ExecutionResult, ExecutionStatus
from ddoc.execution import store as executions
from ddoc.platform.ids import new_id
from workflows.execution import RunbookExecutionWorkflow

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 5.0


async def state(
    engine: Engine, client: Client, tenant_id: str, execution_id: str
) -> ExecutionResult | None:
    """The live state, or None when the execution is finished. ExecutionNotFound when the
    tenant has no such execution (the tenant check is the database's, never the caller's)."""
    row = await asyncio.to_thread(_row, engine, tenant_id, execution_id)
    if ExecutionStatus(row["status"]) in executions.TERMINAL_STATUSES:
        return None
    return await _query(client, execution_id)


async def view(engine: Engine, client: Client, tenant_id: str, execution_id: str) -> dict[str, Any]:
    """The trail, overlaid with the workflow's live state while it runs."""
    trail = await asyncio.to_thread(_trail, engine, tenant_id, execution_id)
    if ExecutionStatus(trail["status"]) in executions.TERMINAL_STATUSES:
        return {**trail, "live": False}
    current = await _query(client, execution_id)
    if current is None:
        return {**trail, "live": False}
    return {**merge(trail, current), "live": True}


def merge(trail: dict[str, Any], current: ExecutionResult) -> dict[str, Any]:
    steps = {step["id"]: step for step in trail["steps"]}
    merged = []
    for live_step in current.steps:
        stored = steps.pop(live_step.step_id, {})
        merged.append(
            {
                **stored,
                "id": live_step.step_id,
                "kind": live_step.kind,
                "text": live_step.text,
                "status": live_step.status.value,
                "command": live_step.command,
                "risk": live_step.risk,
                "exit_code": live_step.exit_code,
                "detail": live_step.detail,
                "undoes": live_step.undoes,
                "edited_by": live_step.edited_by,
                "dry_run": live_step.dry_run,
                "decisions": [dataclasses.asdict(d) for d in live_step.decisions],
                "awaiting": dataclasses.asdict(live_step.awaiting) if live_step.awaiting else None,
                "output": stored.get("output"),
                "output_truncated": stored.get("output_truncated", False),
            }
        )
    return {
        **trail,
        "status": current.status.value,
        "current_step": current.current_step,
        "alert_resolved": current.alert_resolved,
        "incident_escalated": current.incident_escalated,
        "escalations": current.escalations,
        "steps": merged + list(steps.values()),
    }


class DecisionRefused(Exception):
    def __init__(self, refused: Refusal) -> None:
        super().__init__(refused.reason)
        self.refusal = refused


class StepNotFound(LookupError):
    pass


async def decide(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    step_id: str | None,
    kind: DecisionKind,
    actor: Actor,
    command: str | None = None,
    branch: str | None = None,
    comment: str | None = None,
    values: dict[str, str] | None = None,
) -> Decision:
    """Check a decision against the live state with the policy the workflow applies (so the
    caller hears "no" at once), then signal it. The workflow checks again: a decision that raced
    another one is refused there and recorded."""
    current = await state(engine, client, tenant_id, execution_id)
    if current is None:
        raise DecisionRefused(
            Refusal(RefusalCode.NOT_AWAITING, f"execution {execution_id} is finished")
        )
    execution_wide = kind in (DecisionKind.ABORT, DecisionKind.ROLLBACK)
    step_id = step_id or (current.current_step if execution_wide else None)
    if step_id is None:
        raise DecisionRefused(Refusal(RefusalCode.INVALID, f"step_id is needed for {kind.value}"))
    step = next((s for s in current.steps if s.step_id == step_id), None)
    if step is None:
        raise StepNotFound(f"execution {execution_id} has no step {step_id}")
    decision = Decision(
        step_id=step_id,
        decision=kind,
        actor=actor,
        command=command,
        branch=branch,
        comment=comment,
        values=dict(values or {}),
        request_id=new_id("dec"),
    )
    why = refusal(decision, step.awaiting, edited_by=step.edited_by)
    if why is not None:
        raise DecisionRefused(why)
    await signal(client, execution_id, decision)
    return decision


async def signal(client: Client, execution_id: str, decision: Decision) -> None:
    handle = client.get_workflow_handle_for(RunbookExecutionWorkflow.run, execution_id)
    await handle.signal(RunbookExecutionWorkflow.decide, decision)


async def _query(client: Client, execution_id: str) -> ExecutionResult | None:
    handle = client.get_workflow_handle_for(RunbookExecutionWorkflow.run, execution_id)
    try:
        return await asyncio.wait_for(
            handle.query(RunbookExecutionWorkflow.state), timeout=QUERY_TIMEOUT_SECONDS
        )
    except (
        RPCError,
        TimeoutError,
        WorkflowQueryFailedError,
        WorkflowQueryRejectedError,
    ) as err:
        log.info("execution %s: no live state (%s); showing the trail", execution_id, err)
        return None


def _row(engine: Engine, tenant_id: str, execution_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        return executions.summary(session, tenant_id=tenant_id, execution_id=execution_id)


def _trail(engine: Engine, tenant_id: str, execution_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        return executions.view(session, tenant_id=tenant_id, execution_id=execution_id)
