"""Executions: start by hand, follow (live from the workflow, else from the trail), decide."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from api.deps import Origin, OriginDep, ResponderDep, SessionDep, StateDep, ViewerDep
from ddoc.alerts import service as incidents_service
from ddoc.contracts.execution import Actor, DecisionKind, ExecutionMode, ExecutionStatus
from ddoc.execution import breakpoints, drills, live, replay, service
from ddoc.execution import store as executions
from ddoc.execution.views import (
    DecisionAccepted,
    ExecutionEventView,
    ExecutionSummary,
    ExecutionView,
)
from ddoc.platform.tenancy import Principal
from ddoc.trust import learning

router = APIRouter(prefix="/executions", tags=["executions"])


class ExecutionIn(BaseModel):
    runbook_id: str
    mode: ExecutionMode | None = Field(
        default=None, description="Default: the runbook's trust level."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Values for the runbook's variables, by name."
    )
    breakpoints: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=500,
        description="Step ids to pause before, in any mode (besides the runbook's own); "
        "a step the runbook does not have is refused (422)",
    )
    drill: DrillIn | None = Field(
        default=None, description='With mode "drill": the team, the sandbox, the simulated alert'
    )


class DrillIn(BaseModel):
    team: str = Field(default="on-call", min_length=1, max_length=200)
    environment: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description='The sandbox (its own agent task queue); default "sandbox"',
    )
    alert_title: str | None = Field(
        default=None, max_length=500, description='The simulated alert; default "DRILL: <title>"'
    )
    service: str | None = Field(default=None, max_length=200)


class ReplayIn(BaseModel):
    version: int | None = Field(
        default=None, ge=1, description="The runbook version to check (default: its current)"
    )
    environment: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description='The sandbox (its own agent task queue); default "sandbox"',
    )


class BreakpointIn(BaseModel):
    step_id: str = Field(max_length=200)


class DecisionIn(BaseModel):
    step_id: str | None = Field(
        default=None, max_length=200, description="Required except for abort and rollback."
    )
    decision: DecisionKind
    command: str | None = Field(default=None, max_length=20000, description="edit")
    branch: str | None = Field(
        default=None, max_length=2000, description='choose: number, condition or "neither"'
    )
    comment: str | None = Field(default=None, max_length=2000)
    values: dict[str, str] = Field(default_factory=dict, description="provide: variable values")


class StopIn(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)
    rollback: bool = Field(default=False, description="undo the completed steps first")
    wrong_runbook: bool = Field(
        default=False,
        description="the runbook is the wrong one for the incident: recorded, the execution is "
        "detached from the incident (pick another at once), and the learned trigger that "
        "attached it (if one did) is removed; the answer names it (learned_trigger_removed)",
    )
    reason: Literal["wrong_runbook"] | None = Field(
        default=None, description='"wrong_runbook" is the same as wrong_runbook: true'
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_unset=True,
    summary="Start a runbook by hand (read-only steps run; the others need approval)",
)
async def start_execution_by_hand(
    body: ExecutionIn, principal: ResponderDep, state: StateDep
) -> ExecutionView:
    if body.drill is not None and body.mode != ExecutionMode.DRILL:
        raise HTTPException(422, 'drill: only with mode "drill"')
    return await service.start_by_hand(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        runbook_id=body.runbook_id,
        mode=body.mode,
        variables=body.variables,
        breakpoints=body.breakpoints,
        drill=drills.DrillRequest(**body.drill.model_dump()) if body.drill else None,
    )


@router.get(
    "",
    response_model_exclude_unset=True,
    summary="Executions, newest first (filter by status or runbook)",
)
def list_executions(
    principal: ViewerDep,
    session: SessionDep,
    status: ExecutionStatus | None = None,
    runbook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionSummary]:
    return executions.list_executions(
        session, tenant_id=principal.tenant_id, status=status, runbook_id=runbook_id, limit=limit
    )


@router.get(
    "/{execution_id}",
    response_model_exclude_unset=True,
    summary="An execution with its steps, decisions and outputs (live while it runs)",
)
async def get_execution(execution_id: str, principal: ViewerDep, state: StateDep) -> ExecutionView:
    return await live.view(state.engine, state.temporal, principal.tenant_id, execution_id)


@router.get("/{execution_id}/events", summary="The execution's transitions, oldest first")
def get_events(
    execution_id: str,
    principal: ViewerDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, description="only events after this id")] = 0,
) -> list[ExecutionEventView]:
    executions.summary(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    found = executions.events(
        session, tenant_id=principal.tenant_id, execution_id=execution_id, after=after
    )
    return [ExecutionEventView.model_validate(event) for event in found]


@router.post(
    "/{execution_id}/decisions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_unset=True,
    summary="Approve, reject, skip, edit, choose, mark done, retry, provide, continue (past a "
    "breakpoint), roll back or abort",
)
async def post_decision(
    execution_id: str,
    body: DecisionIn,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
) -> DecisionAccepted:
    return await service.decide(
        state.engine,
        state.temporal,
        tenant_id=principal.tenant_id,
        execution_id=execution_id,
        step_id=body.step_id,
        kind=body.decision,
        actor=_actor(principal, origin),
        command=body.command,
        branch=body.branch,
        comment=body.comment,
        values=body.values,
    )


@router.post(
    "/{execution_id}/replay",
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_unset=True,
    summary="Re-run this execution's recorded decisions against a runbook version in a sandbox "
    "(a drill: nobody is paged)",
    responses={404: {"description": "No such execution or runbook version"}},
)
async def replay_execution(
    execution_id: str, body: ReplayIn, principal: ResponderDep, state: StateDep
) -> ExecutionView:
    return await replay.replay(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        execution_id=execution_id,
        version=body.version,
        environment=body.environment,
    )


@router.post(
    "/{execution_id}/breakpoints",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Pause the running execution before a step that has not started (any mode)",
    responses={
        409: {"description": "The step has started, or the execution is finished"},
        422: {"description": "The execution has no such step"},
    },
)
async def set_breakpoint(
    execution_id: str,
    body: BreakpointIn,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
) -> dict[str, Any]:
    await breakpoints.set_on_execution(
        state.engine,
        state.temporal,
        tenant_id=principal.tenant_id,
        execution_id=execution_id,
        step_id=body.step_id,
        actor=_actor(principal, origin),
    )
    return {"accepted": True, "execution_id": execution_id, "step_id": body.step_id}


@router.delete(
    "/{execution_id}/breakpoints/{step_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Clear a breakpoint of a running execution (a pause already reached waits for "
    "continue)",
    responses={422: {"description": "The execution has no such step"}},
)
async def clear_breakpoint(
    execution_id: str, step_id: str, principal: ResponderDep, state: StateDep, origin: OriginDep
) -> dict[str, Any]:
    await breakpoints.set_on_execution(
        state.engine,
        state.temporal,
        tenant_id=principal.tenant_id,
        execution_id=execution_id,
        step_id=step_id,
        actor=_actor(principal, origin),
        on=False,
    )
    return {"accepted": True, "execution_id": execution_id, "step_id": step_id}


@router.post(
    "/{execution_id}/abort",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_unset=True,
    summary="Stop the execution (with rollback: undo the completed steps first)",
)
async def abort(
    execution_id: str,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
    body: StopIn | None = None,
) -> DecisionAccepted:
    body = body or StopIn()
    stop = (
        incidents_service.abort_wrong_runbook
        if body.wrong_runbook or body.reason == "wrong_runbook"
        else service.stop
    )
    return await stop(
        state.engine,
        state.temporal,
        tenant_id=principal.tenant_id,
        execution_id=execution_id,
        actor=_actor(principal, origin),
        rollback=body.rollback,
        comment=body.comment,
    )


@router.post(
    "/{execution_id}/rollback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_unset=True,
    summary="Stop the execution and undo its completed steps, last first",
)
async def rollback(
    execution_id: str,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
    body: StopIn | None = None,
) -> DecisionAccepted:
    stop = (body or StopIn()).model_copy(update={"rollback": True})
    return await abort(execution_id, principal, state, origin, stop)


class SavedVersionOut(BaseModel):
    runbook_id: str
    version: int
    changes: list[dict[str, Any]] = Field(
        description="kind (edited | extended | skipped), step_id, original/edited or text, applied"
    )


@router.post(
    "/{execution_id}/save-as-version",
    status_code=status.HTTP_201_CREATED,
    summary="Save what the responders actually did (edited commands that ran, steps they "
    "skipped) as the runbook's next version",
    responses={409: {"description": "Nothing to save, or the runbook changed since"}},
)
def save_as_version(execution_id: str, principal: ResponderDep, state: StateDep) -> SavedVersionOut:
    changes, saved = learning.save_what_was_done(
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=principal.tenant_id,
        execution_id=execution_id,
        actor=principal.actor,
    )
    return SavedVersionOut(
        runbook_id=saved.runbook.id, version=saved.version.version, changes=changes
    )


def _actor(principal: Principal, origin: Origin) -> Actor:
    """The caller as the workflow records a decision's author."""
    return Actor(
        user_id=principal.actor,
        display_name=principal.name,
        source=origin.source,
        roles=sorted(principal.roles),
        address=origin.address,
    )
