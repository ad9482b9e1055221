"""Reports for team leads: the runbook health view (the same data as `/ui/health`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SessionDep, ViewerDep
from ddoc.trust import learning

router = APIRouter(prefix="/reports", tags=["reports"])

Days = Annotated[int, Query(ge=1, le=365, description="The period counted, in days")]


@router.get(
    "/health",
    summary="Runbook health: totals, coverage gaps, stale runbooks, usage, effectiveness ranking",
)
def runbook_health(principal: ViewerDep, session: SessionDep, days: Days = 30) -> dict[str, Any]:
    return learning.health(session, tenant_id=principal.tenant_id, days=days)
