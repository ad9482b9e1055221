"""Breakpoints: a responder marks a step, and the execution pauses before it (in every mode,
autopilot included) until a human says continue, or skips it.

On a runbook, every new execution of it gets them (by hand or from an alert); on a running
execution, a step that has not started yet. A step that is not in the runbook is refused
(Invalid, HTTP 422): a breakpoint that could never pause is a mistake worth hearing about.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from ddoc.contracts import names
from ddoc.contracts.execution import Actor, BreakpointChange, StepStatus
from ddoc.execution import live
from ddoc.platform import audit
from ddoc.platform.errors import Conflict, Invalid
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook


def check_steps(wanted: list[str], known: list[str], where: str) -> None:
    unknown = [step for step in wanted if step not in known]
    if unknown:
        raise Invalid(
            f"no step {', '.join(map(repr, unknown))} in {where}: breakpoints go on its steps "
            f"({', '.join(known) or 'it has none'})"
        )


def steps_of(session: Session, *, tenant_id: str, runbook_id: str) -> list[str]:
    version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook_id)
    return [step.id for step in ParsedRunbook.from_dict(version.parsed).steps]


def set_on_runbook(
    session: Session, *, tenant_id: str, runbook_id: str, steps: list[str], actor: str
) -> dict[str, str]:
    """Replace the runbook's breakpoints (an empty list clears them); audited."""
    runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id, for_update=True)
    known = steps_of(session, tenant_id=tenant_id, runbook_id=runbook.id)
    check_steps(steps, known, f"runbook {runbook.id} (version {runbook.current_version})")
    before = dict(runbook.breakpoints or {})
    runbook.breakpoints = {step: before.get(step, actor) for step in dict.fromkeys(steps)}
    session.add(runbook)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="runbook.breakpoints_set",
        subject=runbook.id,
        data={"steps": list(runbook.breakpoints), "before": list(before)},
    )
    return dict(runbook.breakpoints)


async def set_on_execution(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    step_id: str,
    actor: Actor,
    on: bool = True,
) -> None:
    """Set (or clear) a breakpoint on a step of a running execution that has not started."""
    current = await live.state(engine, client, tenant_id, execution_id)
    if current is None:
        raise Conflict(f"execution {execution_id} is finished")
    known = [s.step_id for s in current.steps]
    check_steps([step_id], known, f"execution {execution_id}")
    step = next(s for s in current.steps if s.step_id == step_id)
    if on and step.status != StepStatus.PENDING:
        raise Conflict(
            f"step {step_id} is {step.status.value}: a breakpoint pauses before a step starts"
        )
    change = BreakpointChange(step_id=step_id, actor=actor, on=on)
    await client.get_workflow_handle(execution_id).signal(names.BREAKPOINT_SIGNAL, change)
    await asyncio.to_thread(_audit, engine, tenant_id, execution_id, change)


def _audit(engine: Engine, tenant_id: str, execution_id: str, change: BreakpointChange) -> None:
    with Session(engine) as session:
        audit.append(
            session,
            tenant_id=tenant_id,
            actor=change.actor.user_id,
            action="execution.breakpoint_set" if change.on else "execution.breakpoint_cleared",
            subject=execution_id,
            data={"step_id": change.step_id},
        )
        session.commit()
