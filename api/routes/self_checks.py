"""`/self-checks`: run the tenant's self-check now (an SRE trying the setting out), and its runs.

The nightly runs come from the tenant's Temporal Schedule (`self_check` in the settings); a run
started here is the same workflow, started at once. Each runbook's latest result shows on
`GET /runbooks/{id}` (`self_check`); the last run's line on the health report.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field
from sqlmodel import Session
from temporalio.service import RPCError

from api.deps import ResponderDep, SessionDep, StateDep, ViewerDep
from ddoc.platform import tenancy
from ddoc.platform.errors import Conflict, Unavailable
from ddoc.selfcheck import config as self_check
from ddoc.selfcheck import schedules
from ddoc.selfcheck import store as checks

router = APIRouter(prefix="/self-checks", tags=["self-checks"])


class SelfCheckStarted(BaseModel):
    workflow_id: str = Field(description="The SelfCheck workflow (Temporal) of this run")
    environment: str = Field(description="The agent environment it checks")


class SelfCheckRunOut(BaseModel):
    run_id: str
    workflow_id: str
    trigger: str = Field(description="schedule | manual")
    environment: str
    run_read_only: bool
    started_at: datetime
    finished_at: datetime | None
    checked: int
    failing: int = Field(description="runbooks failing that never passed")
    drifted: int = Field(description="runbooks failing after having passed")
    findings: list[dict[str, Any]] = Field(description="about the run: agent offline, …")
    digest: str | None = Field(description="the weekly Slack digest, when this run took it")


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run the tenant's self-check now (the same workflow its schedule starts)",
    responses={409: {"description": "No self_check setting (environment) to run with"}},
)
async def run_self_check(principal: ResponderDep, state: StateDep) -> SelfCheckStarted:
    config = await asyncio.to_thread(_config, state.engine, principal.tenant_id)
    if config is None:
        raise Conflict(
            "self-check is not configured: set self_check (at least its environment) with "
            "POST /settings first"
        )
    try:
        started = await schedules.run_now(
            state.temporal,
            tenant_id=principal.tenant_id,
            task_queue=state.settings.control_task_queue,
            agent_offline_timeout_seconds=state.settings.agent_offline_timeout_seconds,
        )
    except (RPCError, RuntimeError) as err:
        raise Unavailable(f"Temporal did not start the self-check ({err})") from None
    return SelfCheckStarted(workflow_id=started, environment=config.environment)


@router.get("", summary="The tenant's self-check runs, newest first")
def list_self_checks(
    principal: ViewerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[SelfCheckRunOut]:
    return [
        SelfCheckRunOut(**run)
        for run in checks.runs(session, tenant_id=principal.tenant_id, limit=limit)
    ]


def _config(engine: Any, tenant_id: str) -> self_check.SelfCheckConfig | None:
    with Session(engine) as session:
        return self_check.config_of(tenancy.settings(session, tenant_id))
