"""Executions: start by hand, follow (live from the workflow, else from the trail), decide."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import AppState, Origin, OriginDep, ResponderDep, SessionDep, StateDep, ViewerDep
from ddoc.alerts import learned
from ddoc.alerts.intake import start_execution
from ddoc.contracts.approvals import RefusalCode
from ddoc.contracts.execution import (
    Actor,
    DecisionKind,
    ExecutionInput,
    ExecutionMode,
    ExecutionStatus,
)
from ddoc.execution import live
from ddoc.execution import store as executions
from ddoc.platform.ids import new_id
from ddoc.platform.tenancy import Principal
from ddoc.runbooks import store as runbooks

router = APIRouter(prefix="/executions", tags=["executions"])


class ExecutionIn(BaseModel):
    runbook_id: str
    mode: ExecutionMode | None = Field(
        default=None, description="Default: the runbook's trust level."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Values for the runbook's variables, by name."
    )


_REFUSAL_STATUS = {
    RefusalCode.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    RefusalCode.NOT_AWAITING: status.HTTP_409_CONFLICT,
    RefusalCode.INVALID: status.HTTP_422_UNPROCESSABLE_ENTITY,
}


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
    summary="Start a runbook by hand (read-only steps run; the others need approval)",
)
async def start_execution_by_hand(
    body: ExecutionIn, principal: ResponderDep, state: StateDep
) -> dict[str, Any]:
    return await start_by_hand(
        state,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        runbook_id=body.runbook_id,
        mode=body.mode,
        variables=body.variables,
    )


async def start_by_hand(
    state: AppState,
    *,
    tenant_id: str,
    actor: str,
    runbook_id: str,
    mode: ExecutionMode | None,
    variables: dict[str, str],
) -> dict[str, Any]:
    """Create and start an execution (the API's and Slack's `/ddoc run`)."""
    inp = await asyncio.to_thread(_create, state, tenant_id, actor, runbook_id, mode, variables)
    try:
        await start_execution(state.temporal, inp, task_queue=state.settings.control_task_queue)
    except Exception as err:
        await asyncio.to_thread(_give_up, state, inp)
        raise HTTPException(
            503, f"Temporal did not accept the start ({err}); execution {inp.execution_id} failed"
        ) from None
    with Session(state.engine) as session:
        return executions.view(session, tenant_id=tenant_id, execution_id=inp.execution_id)


def _create(
    state: AppState,
    tenant_id: str,
    actor: str,
    runbook_id: str,
    mode: ExecutionMode | None,
    variables: dict[str, str],
) -> ExecutionInput:
    with Session(state.engine) as session:
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
        if runbook.archived_at is not None:
            raise HTTPException(409, f"runbook {runbook.id} is archived")
        version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
        inp = executions.build_input(
            execution_id=new_id("ex"),
            tenant_id=tenant_id,
            environment=state.settings.environment,
            runbook=runbook,
            version=version,
            mode=mode or ExecutionMode(runbook.trust_level),
            alert=None,
            incident_id=None,
            values=variables,
            command_timeout_seconds=state.settings.command_timeout_seconds,
            agent_offline_timeout_seconds=state.settings.agent_offline_timeout_seconds,
            started_by=actor,
            **executions.execution_rules(session, tenant_id),
        )
        executions.create(session, inp=inp, started_by=actor)
        session.commit()
        return inp


def _give_up(state: AppState, inp: ExecutionInput) -> None:
    with Session(state.engine) as session:
        executions.record_status(
            session,
            tenant_id=inp.tenant_id,
            execution_id=inp.execution_id,
            status=ExecutionStatus.FAILED,
            from_workflow=False,
        )
        session.commit()


@router.get("", summary="Executions, newest first (filter by status or runbook)")
def list_executions(
    principal: ViewerDep,
    session: SessionDep,
    status: ExecutionStatus | None = None,
    runbook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return executions.list_executions(
        session, tenant_id=principal.tenant_id, status=status, runbook_id=runbook_id, limit=limit
    )


@router.get(
    "/{execution_id}",
    summary="An execution with its steps, decisions and outputs (live while it runs)",
)
async def get_execution(execution_id: str, principal: ViewerDep, state: StateDep) -> dict[str, Any]:
    return await live.view(state.engine, state.temporal, principal.tenant_id, execution_id)


@router.get("/{execution_id}/events", summary="The execution's transitions, oldest first")
def get_events(
    execution_id: str,
    principal: ViewerDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, description="only events after this id")] = 0,
) -> list[dict[str, Any]]:
    executions.view(session, tenant_id=principal.tenant_id, execution_id=execution_id)
    return executions.events(
        session, tenant_id=principal.tenant_id, execution_id=execution_id, after=after
    )


@router.post(
    "/{execution_id}/decisions",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Approve, reject, skip, edit, choose, mark done, retry, provide, roll back or abort",
)
async def post_decision(
    execution_id: str,
    body: DecisionIn,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
) -> dict[str, Any]:
    return await _decide(state, principal, execution_id, body, origin)


@router.post(
    "/{execution_id}/abort",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Stop the execution (with rollback: undo the completed steps first)",
)
async def abort(
    execution_id: str,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
    body: StopIn | None = None,
) -> dict[str, Any]:
    body = body or StopIn()
    kind = DecisionKind.ROLLBACK if body.rollback else DecisionKind.ABORT
    decision = DecisionIn(decision=kind, comment=body.comment)
    accepted = await _decide(state, principal, execution_id, decision, origin)
    if body.wrong_runbook or body.reason == "wrong_runbook":
        removed = await asyncio.to_thread(
            _wrong_runbook, state, principal.tenant_id, execution_id, principal.actor
        )
        accepted["learned_trigger_removed"] = removed
    return accepted


def _wrong_runbook(state: AppState, tenant_id: str, execution_id: str, actor: str) -> str | None:
    with Session(state.engine) as session:
        removed = learned.wrong_runbook(
            session, tenant_id=tenant_id, execution_id=execution_id, actor=actor
        )
        session.commit()
        return removed


@router.post(
    "/{execution_id}/rollback",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Stop the execution and undo its completed steps, last first",
)
async def rollback(
    execution_id: str,
    principal: ResponderDep,
    state: StateDep,
    origin: OriginDep,
    body: StopIn | None = None,
) -> dict[str, Any]:
    stop = (body or StopIn()).model_copy(update={"rollback": True})
    return await abort(execution_id, principal, state, origin, stop)


async def _decide(
    state: AppState,
    principal: Principal,
    execution_id: str,
    body: DecisionIn,
    origin: Origin,
) -> dict[str, Any]:
    actor = Actor(
        user_id=principal.actor,
        display_name=principal.name,
        source=origin.source,
        roles=sorted(principal.roles),
        address=origin.address,
    )
    try:
        decision = await live.decide(
            state.engine,
            state.temporal,
            tenant_id=principal.tenant_id,
            execution_id=execution_id,
            step_id=body.step_id,
            kind=body.decision,
            actor=actor,
            command=body.command,
            branch=body.branch,
            comment=body.comment,
            values=body.values,
        )
    except live.DecisionRefused as refused:
        raise HTTPException(_REFUSAL_STATUS[refused.refusal.code], str(refused)) from None
    except live.StepNotFound as err:
        raise HTTPException(404, str(err)) from None
    return {
        "accepted": True,
        "execution_id": execution_id,
        "step_id": decision.step_id,
        "decision": decision.decision.value,
        "request_id": decision.request_id,
    }
