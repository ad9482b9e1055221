"""`/ui/health`: the runbook health view a team lead opens in a browser (no script needed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import StateDep
from api.routes.ui.common import UserDep, page
from ddoc.trust import learning

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/health")
def health_page(
    request: Request,
    user: UserDep,
    state: StateDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> Response:
    with Session(state.engine) as session:
        report = learning.health(session, tenant_id=user.tenant_id, days=days)
    return page(request, "health.html", user, title="Runbook health", report=report)
