"""Fire drills: their score cards (a drill starts as `POST /executions` with mode "drill")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, ViewerDep
from ddoc.execution import drills

router = APIRouter(prefix="/drills", tags=["drills"])


@router.get(
    "",
    summary="Drills, newest first, each with its score card against the team's earlier drills",
)
def list_drills(
    principal: ViewerDep,
    session: SessionDep,
    runbook_id: str | None = None,
    team: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[drills.DrillView]:
    return drills.list_drills(
        session, tenant_id=principal.tenant_id, runbook_id=runbook_id, team=team, limit=limit
    )
