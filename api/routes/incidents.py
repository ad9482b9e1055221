"""Incidents: what fired and matched, how it was resolved; pick a runbook for one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ResponderDep, SessionDep, StateDep, ViewerDep
from ddoc.alerts import incidents
from ddoc.alerts import service as incidents_service
from ddoc.alerts.views import IncidentSummary, IncidentView, ResolutionView
from ddoc.execution.views import ExecutionView
from ddoc.platform.tables import Incident
from ddoc.trust import learning

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", summary="Incidents, newest first (filter by status or match status)")
def list_incidents(
    principal: ViewerDep,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    match_status: Annotated[
        Literal["attached", "suggested", "unmatched", "limit_reached"] | None,
        Query(
            description="unmatched = no runbook: a coverage gap; limit_reached = a runbook "
            "matched but a blast-radius limit held its start (docs/LIMITS.md)"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IncidentSummary]:
    return incidents.list_incidents(
        session,
        tenant_id=principal.tenant_id,
        status=status,
        match_status=match_status,
        limit=limit,
    )


@router.get(
    "/{incident_id}",
    response_model_exclude_unset=True,
    summary="An incident with its alerts, keys, match and resolution (time to first action, "
    "time to resolve, outcome)",
)
def get_incident(incident_id: str, principal: ViewerDep, session: SessionDep) -> IncidentView:
    view = incidents.incident_view(session, tenant_id=principal.tenant_id, incident_id=incident_id)
    incident = session.get(Incident, incident_id)
    assert incident is not None  # the view found it, in this tenant
    resolution = learning.incident_resolution(
        session, tenant_id=principal.tenant_id, incident=incident
    )
    return view.model_copy(update={"resolution": ResolutionView.model_validate(resolution)})


class PickIn(BaseModel):
    runbook_id: str = Field(max_length=100)


@router.post(
    "/{incident_id}/runbook",
    status_code=201,
    response_model_exclude_unset=True,
    summary="Run this runbook for an incident that has none running (a suggestion, or any); "
    "the pick is learned: the next alert like this one is attached to it",
)
async def pick_runbook(
    incident_id: str, body: PickIn, principal: ResponderDep, state: StateDep
) -> ExecutionView:
    return await incidents_service.pick(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=principal.tenant_id,
        incident_id=incident_id,
        runbook_id=body.runbook_id,
        actor=principal.actor,
        actor_name=principal.name,
    )
