from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, SessionDep
from ddoc import executions
from ddoc.contracts import ExecutionStatus

router = APIRouter(prefix="/executions", tags=["executions"])


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
