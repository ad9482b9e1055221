"""What people do to executions: start a runbook by hand, pick one for an incident, decide on a
step, stop. The API, Slack and (through the API) the CLI call these same functions.

Plain functions of explicit dependencies (the database engine, the Temporal client, the
settings); each raises a domain error (ddoc/platform/errors.py) that its caller words once:
the API as an HTTP status, Slack as a reply. Who the caller is was checked by the caller (API
key or Slack user); what they may decide is checked here, by the approval policy.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from ddoc.contracts.approvals import refusal
from ddoc.contracts.execution import (
    Actor,
    Decision,
    DecisionKind,
    ExecutionInput,
    ExecutionMode,
    ExecutionStatus,
)
from ddoc.contracts.settings import Settings
from ddoc.execution import drills, live
from ddoc.execution import store as executions
from ddoc.execution.breakpoints import check_steps
from ddoc.execution.views import DecisionAccepted, ExecutionView
from ddoc.platform import audit
from ddoc.platform.errors import Conflict, Unavailable
from ddoc.platform.ids import new_id
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook

log = logging.getLogger(__name__)

# Open executions, those waiting for a human first (Slack's `/ddoc status` and handoff).
_OPEN = (ExecutionStatus.AWAITING_HUMAN, ExecutionStatus.STALLED, ExecutionStatus.RUNNING)


async def start_by_hand(
    engine: Engine,
    client: Client,
    settings: Settings,
    *,
    tenant_id: str,
    actor: str,
    runbook_id: str,
    mode: ExecutionMode | None,
    variables: dict[str, str],
    breakpoints: list[str] | None = None,
    drill: drills.DrillRequest | None = None,
) -> ExecutionView:
    """Create an execution of the runbook's current version and start its workflow. With no
    mode, the runbook's trust level. `breakpoints`: steps to pause before (with the runbook's
    own); a step the runbook does not have is Invalid. In mode drill, `drill` says for which
    team, in which sandbox, with which simulated alert (ddoc/execution/drills.py). When Temporal
    refuses the start, the execution is recorded as failed (it never ran) and Unavailable says
    so."""
    request = HandStart(mode, variables, breakpoints or [], drill or drills.DrillRequest())
    inp = await asyncio.to_thread(_create, engine, settings, tenant_id, actor, runbook_id, request)
    try:
        await live.start_execution(client, inp, task_queue=settings.control_task_queue)
    except Exception as err:
        log.warning("could not start %s: %s", inp.execution_id, err)
        await asyncio.to_thread(give_up, engine, inp)
        raise Unavailable(
            f"Temporal did not accept the start ({err}); execution {inp.execution_id} failed"
        ) from None
    return await asyncio.to_thread(trail, engine, tenant_id, inp.execution_id)


@dataclass
class HandStart:
    mode: ExecutionMode | None
    variables: dict[str, str]
    breakpoints: list[str]
    drill: drills.DrillRequest


def _create(
    engine: Engine,
    settings: Settings,
    tenant_id: str,
    actor: str,
    runbook_id: str,
    request: HandStart,
) -> ExecutionInput:
    breakpoints = request.breakpoints
    mode = request.mode
    with Session(engine) as session:
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
        if runbook.archived_at is not None:
            raise Conflict(f"runbook {runbook.id} is archived")
        version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
        known = [step.id for step in ParsedRunbook.from_dict(version.parsed).steps]
        check_steps(breakpoints, known, f"runbook {runbook.id} (version {version.version})")
        execution_id = new_id("ex")
        environment, alert = settings.environment, None
        drill = request.drill
        if mode == ExecutionMode.DRILL:
            environment = drill.environment or drills.SANDBOX
            alert = drills.simulated_alert(
                execution_id, drill.alert_title or f"DRILL: {runbook.title}", drill.service
            )
        inp = executions.build_input(
            execution_id=execution_id,
            tenant_id=tenant_id,
            environment=environment,
            runbook=runbook,
            version=version,
            mode=mode or ExecutionMode(runbook.trust_level),
            alert=alert,
            incident_id=None,
            values=request.variables,
            command_timeout_seconds=settings.command_timeout_seconds,
            agent_offline_timeout_seconds=settings.agent_offline_timeout_seconds,
            started_by=actor,
            breakpoints={step: actor for step in breakpoints},
            **executions.execution_rules(session, tenant_id),
        )
        executions.create(session, inp=inp, started_by=actor)
        if alert is not None:  # a drill's simulated alert
            session.flush()
            drills.record(
                session,
                tenant_id=tenant_id,
                execution_id=execution_id,
                runbook_id=runbook.id,
                team=drill.team,
                environment=environment,
                alert_title=alert.title,
                started_by=actor,
            )
        session.commit()
        return inp


def give_up(engine: Engine, inp: ExecutionInput) -> None:
    """Record as failed an execution whose start Temporal refused: it never ran."""
    with Session(engine) as session:
        executions.record_status(
            session,
            tenant_id=inp.tenant_id,
            execution_id=inp.execution_id,
            status=ExecutionStatus.FAILED,
            from_workflow=False,
        )
        session.commit()


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
) -> DecisionAccepted:
    """Send a decision about a step (or, for abort and rollback, the whole execution) once the
    approval policy allows it now: Forbidden (the actor may not), Conflict (not awaited now,
    or finished), Invalid (malformed), NotFound (no such execution or step)."""
    decision = await live.decide(
        engine,
        client,
        tenant_id=tenant_id,
        execution_id=execution_id,
        step_id=step_id,
        kind=kind,
        actor=actor,
        command=command,
        branch=branch,
        comment=comment,
        values=values,
    )
    return DecisionAccepted(
        accepted=True,
        execution_id=execution_id,
        step_id=decision.step_id,
        decision=decision.decision,
        request_id=decision.request_id,
    )


async def stop(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    actor: Actor,
    rollback: bool = False,
    comment: str | None = None,
) -> DecisionAccepted:
    """Abort the execution (with `rollback`, undo its completed steps first). Aborting it as the
    wrong runbook for its incident is ddoc/alerts/service.py `abort_wrong_runbook`."""
    kind = DecisionKind.ROLLBACK if rollback else DecisionKind.ABORT
    return await decide(
        engine,
        client,
        tenant_id=tenant_id,
        execution_id=execution_id,
        step_id=None,
        kind=kind,
        actor=actor,
        comment=comment,
    )


async def editable_command(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    step_id: str | None,
    actor: Actor,
) -> str:
    """The command the actor may edit now (for an editor to start from), or the domain error
    an edit would get: NotFound when the step is not there now, the policy's refusal else."""
    current = await live.state(engine, client, tenant_id, execution_id)
    step = next((s for s in current.steps if s.step_id == step_id), None) if current else None
    if step is None:
        raise live.StepNotFound(f"execution {execution_id} has no step {step_id} now")
    probe = Decision(step.step_id, DecisionKind.EDIT, actor, command="probe")
    why = refusal(probe, step.awaiting, edited_by=step.edited_by)
    if why is not None:
        raise live.refused(why)
    return step.command or ""


def open_executions(engine: Engine, tenant_id: str, *, limit: int = 20) -> list[ExecutionView]:
    """Executions not finished yet, each in full as recorded: the ones waiting for a human
    first, then the stalled, then the running (up to `limit` of each)."""
    with Session(engine) as session:
        return [
            executions.trail(session, tenant_id=tenant_id, execution_id=e.id)
            for status in _OPEN
            for e in executions.list_executions(
                session, tenant_id=tenant_id, status=status, limit=limit
            )
        ]


def trail(engine: Engine, tenant_id: str, execution_id: str) -> ExecutionView:
    """The execution as its trail in the database shows it."""
    with Session(engine) as session:
        return executions.trail(session, tenant_id=tenant_id, execution_id=execution_id)


async def request_approval(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    step_id: str,
    comment: str | None,
    actor: str,
    requested_by: str,
) -> ExecutionView:
    """Ask the humans to decide on a step that waits for them (an assistant's request): an
    `approval_requested` event (the Slack notifier posts it in the tenant's channel) and an
    audit event. It decides nothing. Conflict when the step is not waiting for a decision."""
    view = await live.view(engine, client, tenant_id, execution_id)
    step = view.step(step_id)
    if step is None:
        raise live.StepNotFound(f"execution {execution_id} has no step {step_id!r}")
    if step.awaiting is None:
        raise Conflict(
            f"step {step_id} of execution {execution_id} is not waiting for a decision "
            f"(it is {step.status.value}); nothing to ask for"
        )
    data = {
        "requested_by": requested_by,
        "comment": comment or "",
        "waiting_for": step.awaiting.kind.value,
        "role": step.awaiting.role.value,
    }

    def record() -> None:
        with Session(engine) as session:
            executions.record_event(
                session,
                tenant_id=tenant_id,
                execution_id=execution_id,
                kind="approval_requested",
                step_id=step_id,
                data=data,
            )
            audit.append(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="execution.approval_requested",
                subject=execution_id,
                data={"step_id": step_id, **data},
            )
            session.commit()

    await asyncio.to_thread(record)
    return view
