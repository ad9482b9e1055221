from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from ddoc import incidents

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", summary="Incidents, newest first (filter by status or match status)")
def list_incidents(
    principal: PrincipalDep,
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


@router.get("/{incident_id}", summary="An incident with its alerts, keys and match")
def get_incident(incident_id: str, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return incidents.view(session, tenant_id=principal.tenant_id, incident_id=incident_id)
