"""An execution as it is now: the workflow's `state` query while it runs, the database trail
once it is finished (or when Temporal cannot answer), and signals to it.

Used by the execution services (ddoc/execution/service.py), hence by the API, Slack and the CLI.
Temporal is called by the workflow's names (ddoc/contracts/names.py), never its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ddoc.contracts import names
from ddoc.contracts import temporal as attrs
from ddoc.contracts.approvals import Refusal, RefusalCode, refusal
from ddoc.contracts.execution import (
    Actor,
    Decision,
    DecisionKind,
    ExecutionInput,
    ExecutionResult,
    StepState,
)
from ddoc.execution import store as executions
from ddoc.execution.views import EscalationView, ExecutionSummary, ExecutionView, StepView
from ddoc.platform.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from ddoc.platform.ids import new_id

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 5.0


async def state(
    engine: Engine, client: Client, tenant_id: str, execution_id: str
) -> ExecutionResult | None:
    """The live state, or None when the execution is finished. ExecutionNotFound when the
    tenant has no such execution (the tenant check is the database's, never the caller's)."""
    row = await asyncio.to_thread(_row, engine, tenant_id, execution_id)
    if row.status in executions.TERMINAL_STATUSES:
        return None
    current = await _query(client, execution_id)
    # A workflow that just ended answers before its end is recorded: finished all the same.
    if current is not None and current.status in executions.TERMINAL_STATUSES:
        return None
    return current


async def view(engine: Engine, client: Client, tenant_id: str, execution_id: str) -> ExecutionView:
    """The trail, overlaid with the workflow's live state while it runs.

    The workflow is asked first and the trail read after: the workflow writes a step's output
    to the trail before it moves on, so a trail read after the query has every output of the
    state the query saw (read before it, a step could show succeeded without its output)."""
    row = await asyncio.to_thread(_row, engine, tenant_id, execution_id)
    current = None
    if row.status not in executions.TERMINAL_STATUSES:
        current = await _query(client, execution_id)
    trail = await asyncio.to_thread(_trail, engine, tenant_id, execution_id)
    if current is None or trail.status in executions.TERMINAL_STATUSES:
        return trail.model_copy(update={"live": False})
    return merge(trail, current).model_copy(update={"live": True})


def merge(trail: ExecutionView, current: ExecutionResult) -> ExecutionView:
    """The workflow's state over the trail: its steps first (in its order), then the steps it
    does not know of."""
    stored = {step.id: step for step in trail.steps}
    merged = [_merged_step(stored.pop(live.step_id, None), live) for live in current.steps]
    return trail.model_copy(
        update={
            "status": current.status,
            "current_step": current.current_step,
            "alert_resolved": current.alert_resolved,
            "incident_escalated": current.incident_escalated,
            "escalations": [EscalationView.model_validate(e) for e in current.escalations],
            "steps": merged + list(stored.values()),
        }
    )


def _merged_step(stored: StepView | None, live: StepState) -> StepView:
    overlay = {
        "id": live.step_id,
        "kind": live.kind,
        "text": live.text,
        "status": live.status,
        "command": live.command,
        "risk": live.risk,
        "exit_code": live.exit_code,
        "detail": live.detail,
        "undoes": live.undoes,
        "edited_by": live.edited_by,
        "dry_run": live.dry_run,
        "decisions": [dataclasses.asdict(d) for d in live.decisions],
        "awaiting": dataclasses.asdict(live.awaiting) if live.awaiting else None,
    }
    if stored is None:  # not recorded yet: no output so far
        return StepView.model_validate({**overlay, "output": None, "output_truncated": False})
    return StepView.model_validate({**stored.model_dump(exclude_unset=True), **overlay})


class StepNotFound(NotFound):
    pass


# How each refusal of the approval policy is told (the API: 403, 409, 422).
_REFUSED: dict[RefusalCode, type[DomainError]] = {
    RefusalCode.FORBIDDEN: Forbidden,
    RefusalCode.NOT_AWAITING: Conflict,
    RefusalCode.INVALID: Invalid,
}


def refused(refusal: Refusal) -> DomainError:
    """The domain error that tells the approval policy's refusal."""
    return _REFUSED[refusal.code](refusal.reason)


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
        raise Conflict(f"execution {execution_id} is finished")
    execution_wide = kind in (DecisionKind.ABORT, DecisionKind.ROLLBACK)
    step_id = step_id or (current.current_step if execution_wide else None)
    if step_id is None:
        raise Invalid(f"step_id is needed for {kind.value}")
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
        raise refused(why)
    await signal(client, execution_id, decision)
    return decision


async def signal(client: Client, execution_id: str, decision: Decision) -> None:
    await client.get_workflow_handle(execution_id).signal(names.DECIDE_SIGNAL, decision)


async def _query(client: Client, execution_id: str) -> ExecutionResult | None:
    handle = client.get_workflow_handle(execution_id)
    try:
        return await asyncio.wait_for(
            handle.query(names.STATE_QUERY, result_type=ExecutionResult),
            timeout=QUERY_TIMEOUT_SECONDS,
        )
    except (
        RPCError,
        TimeoutError,
        WorkflowQueryFailedError,
        WorkflowQueryRejectedError,
    ) as err:
        log.info("execution %s: no live state (%s); showing the trail", execution_id, err)
        return None


def _row(engine: Engine, tenant_id: str, execution_id: str) -> ExecutionSummary:
    with Session(engine) as session:
        return executions.summary(session, tenant_id=tenant_id, execution_id=execution_id)


def _trail(engine: Engine, tenant_id: str, execution_id: str) -> ExecutionView:
    with Session(engine) as session:
        return executions.trail(session, tenant_id=tenant_id, execution_id=execution_id)


async def start_execution(client: Client, inp: ExecutionInput, *, task_queue: str) -> None:
    """Start the execution's workflow (by name) with its search attributes; a start that already
    went through is harmless (same id, USE_EXISTING)."""
    alert = inp.alert
    pairs = [
        SearchAttributePair(attrs.TENANT_ID, inp.tenant_id),
        SearchAttributePair(attrs.RUNBOOK_ID, inp.runbook_id),
        SearchAttributePair(attrs.MODE, inp.mode.value),
        SearchAttributePair(attrs.LEGACY_MODE, inp.mode.value),
        SearchAttributePair(attrs.EXECUTION_STATUS, "running"),
    ]
    if alert and alert.service:
        pairs.append(SearchAttributePair(attrs.SERVICE, alert.service))
    if alert and alert.severity:
        pairs.append(SearchAttributePair(attrs.SEVERITY, alert.severity))
    # What the Temporal UI shows of it from the start: "<runbook> · <mode> · for <alert> ·
    # incident <id>"; the workflow's current details then tell its steps as they go.
    summary = " · ".join(
        part
        for part in (
            inp.runbook_title,
            inp.mode.value.replace("_", " "),
            f"for {alert.title}" if alert else "started by hand",
            f"incident {inp.incident_id}" if inp.incident_id else "",
        )
        if part
    )
    details = "\n".join(
        line
        for line in (
            f"**{inp.runbook_title}** v{inp.runbook_version} ({inp.runbook_id}), mode {inp.mode}",
            f"alert: {alert.title} ({alert.source}, severity {alert.severity or '-'})"
            if alert
            else f"started by hand by {inp.started_by}",
            f"incident: {inp.incident_id}" if inp.incident_id else "",
            f"environment: {inp.environment}",
            f"steps: {len(inp.steps)}",
        )
        if line
    )
    # A closed run with this id raises: that execution already happened, nothing to start.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            names.EXECUTION_WORKFLOW,
            inp,
            id=inp.execution_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished execution is never re-run under the same id.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(pairs),
            static_summary=summary[:200],
            static_details=details[:2000],
        )
