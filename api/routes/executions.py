from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import PrincipalDep, SessionDep
from ddoc import executions

router = APIRouter(prefix="/executions", tags=["executions"])


@router.get("/{execution_id}", summary="An execution with its steps, outputs and exit codes")
def get_execution(
    execution_id: str, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    return executions.view(session, tenant_id=principal.tenant_id, execution_id=execution_id)
