from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api.deps import StateDep
from ddoc.contracts import supervisor
from ddoc.platform import db, metrics

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_SECONDS = 3.0


@router.get("/health", summary="Liveness of the API and its dependencies (no auth)")
async def health(state: StateDep) -> JSONResponse:
    database = await _check(asyncio.to_thread(db.check, state.engine))
    temporal = await _check(state.temporal.workflow_service.get_system_info(GetSystemInfoRequest()))
    ok = database == "ok" and temporal == "ok"
    body: dict[str, object] = {
        "status": "ok" if ok else "degraded",
        "temporal": temporal,
        "database": database,
    }
    # Under `ddoc up`: its supervisor's view of every process (restarts, last exit). It does not
    # change the status, which is this API's own: a restarting worker is not an API outage.
    if state.settings.supervisor_state is not None:
        view = await asyncio.to_thread(supervisor.read_state, state.settings.supervisor_state)
        if view is not None:
            body["supervisor"] = supervisor.health_view(view)
    return JSONResponse(body, status_code=200 if ok else 503)


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, _CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception as err:
        return f"error: {type(err).__name__}: {err}"[:300]
    return "ok"


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Prometheus exposition (no auth: aggregate counts only, no tenant data; keep the port
    inside your network or behind the proxy's allow-list)."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
