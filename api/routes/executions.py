from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import AppState, PrincipalDep, SessionDep, StateDep
from ddoc import executions, runbooks
from ddoc.contracts import ExecutionInput, ExecutionMode, ExecutionStatus
from ddoc.ids import new_id
from ddoc.intake import start_execution
from ddoc.tenancy import Principal, Role

router = APIRouter(prefix="/executions", tags=["executions"])


class ExecutionIn(BaseModel):
    runbook_id: str
    mode: ExecutionMode | None = Field(
        default=None, description="Default: the runbook's trust level."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Values for the runbook's variables, by name."
    )


# Modes whose semantics exist today; the others arrive with the approval engine.
_RUNNABLE_MODES = {ExecutionMode.COPILOT}
_STARTERS = {Role.RESPONDER, Role.APPROVER, Role.ADMIN}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a runbook by hand (read-only steps run; the others need approval)",
)
async def start_execution_by_hand(
    body: ExecutionIn, principal: PrincipalDep, state: StateDep
) -> dict[str, Any]:
    if not principal.roles & _STARTERS:
        raise HTTPException(403, "starting a runbook needs the responder, approver or admin role")
    inp = await asyncio.to_thread(_create, state, principal, body)
    try:
        await start_execution(state.temporal, inp, task_queue=state.settings.control_task_queue)
    except Exception as err:
        await asyncio.to_thread(_give_up, state, inp)
        raise HTTPException(
            503, f"Temporal did not accept the start ({err}); execution {inp.execution_id} failed"
        ) from None
    with Session(state.engine) as session:
        return executions.view(
            session, tenant_id=principal.tenant_id, execution_id=inp.execution_id
        )


def _create(state: AppState, principal: Principal, body: ExecutionIn) -> ExecutionInput:
    with Session(state.engine) as session:
        runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=body.runbook_id)
        if runbook.archived_at is not None:
            raise HTTPException(409, f"runbook {runbook.id} is archived")
        mode = body.mode or ExecutionMode(runbook.trust_level)
        if mode not in _RUNNABLE_MODES:
            raise HTTPException(
                422,
                f"mode {mode.value!r} is not available yet: copilot runs today; read_along, "
                "autopilot and dry_run arrive with the approval engine",
            )
        version = runbooks.version(session, tenant_id=principal.tenant_id, runbook_id=runbook.id)
        inp = executions.build_input(
            execution_id=new_id("ex"),
            tenant_id=principal.tenant_id,
            environment=state.settings.environment,
            runbook=runbook,
            version=version,
            mode=mode,
            alert=None,
            incident_id=None,
            values=body.variables,
            command_timeout_seconds=state.settings.command_timeout_seconds,
            agent_offline_timeout_seconds=state.settings.agent_offline_timeout_seconds,
        )
        executions.create(session, inp=inp, started_by=principal.actor)
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
    principal: PrincipalDep,
    session: SessionDep,
    status: ExecutionStatus | None = None,
    runbook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return executions.list_executions(
        session, tenant_id=principal.tenant_id, status=status, runbook_id=runbook_id, limit=limit
    )


@router.get("/{execution_id}", summary="An execution with its steps, outputs and exit codes")
def get_execution(
    execution_id: str, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return executions.view(session, tenant_id=principal.tenant_id, execution_id=execution_id)
