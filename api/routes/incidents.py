from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import AppState, ResponderDep, SessionDep, StateDep, ViewerDep
from ddoc.alerts import incidents, intake
from ddoc.contracts.execution import ExecutionInput
from ddoc.execution import store as executions
from ddoc.platform.tables import Incident
from ddoc.trust import learning

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", summary="Incidents, newest first (filter by status or match status)")
def list_incidents(
    principal: ViewerDep,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    match_status: Annotated[
        Literal["attached", "suggested", "unmatched"] | None,
        Query(description="unmatched = no runbook: a coverage gap"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return incidents.list_incidents(
        session,
        tenant_id=principal.tenant_id,
        status=status,
        match_status=match_status,
        limit=limit,
    )


@router.get(
    "/{incident_id}",
    summary="An incident with its alerts, keys, match and resolution (time to first action, "
    "time to resolve, outcome)",
)
def get_incident(incident_id: str, principal: ViewerDep, session: SessionDep) -> dict[str, Any]:
    view = incidents.view(session, tenant_id=principal.tenant_id, incident_id=incident_id)
    incident = session.get(Incident, incident_id)
    assert incident is not None  # the view found it, in this tenant
    resolution = learning.incident_resolution(
        session, tenant_id=principal.tenant_id, incident=incident
    )
    return {**view, "resolution": resolution}


class PickIn(BaseModel):
    runbook_id: str = Field(max_length=100)


@router.post(
    "/{incident_id}/runbook",
    status_code=201,
    summary="Run this runbook for an incident that has none running (a suggestion, or any); "
    "the pick is learned: the next alert like this one is attached to it",
)
async def pick_runbook(
    incident_id: str, body: PickIn, principal: ResponderDep, state: StateDep
) -> dict[str, Any]:
    return await pick(
        state,
        tenant_id=principal.tenant_id,
        incident_id=incident_id,
        runbook_id=body.runbook_id,
        actor=principal.actor,
        actor_name=principal.name,
    )


async def pick(
    state: AppState,
    *,
    tenant_id: str,
    incident_id: str,
    runbook_id: str,
    actor: str,
    actor_name: str | None = None,
) -> dict[str, Any]:
    """The API's and Slack's "run this runbook for the incident" (and learn the pick)."""

    def create() -> ExecutionInput:
        with Session(state.engine) as session:
            try:
                inp = intake.pick_runbook(
                    session,
                    settings=state.settings,
                    tenant_id=tenant_id,
                    incident_id=incident_id,
                    runbook_id=runbook_id,
                    actor=actor,
                    actor_name=actor_name,
                )
            except intake.IncidentConflict as err:
                raise HTTPException(409, str(err)) from None
            session.commit()
            return inp

    inp = await asyncio.to_thread(create)
    await intake.start_execution(state.temporal, inp, task_queue=state.settings.control_task_queue)
    with Session(state.engine) as session:
        return executions.view(session, tenant_id=tenant_id, execution_id=inp.execution_id)
