"""Console pages for incidents: the list, and one incident with its alerts, the matcher's
candidates and their reasons, its executions, and picking a runbook."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from api.deps import StateDep
from api.routes.ui.common import FormDep, UserDep, back_to, field, page
from ddoc.alerts import incidents
from ddoc.alerts import service as incidents_service
from ddoc.contracts.roles import Role
from ddoc.execution import store as executions
from ddoc.platform.errors import Invalid
from ddoc.platform.tables import Execution, Incident
from ddoc.runbooks import store as runbooks
from ddoc.runbooks import templates
from ddoc.trust import learning

router = APIRouter(prefix="/ui/incidents", include_in_schema=False)


@router.get("")
def incident_list(
    request: Request,
    user: UserDep,
    state: StateDep,
    status: Annotated[str, Query(max_length=20)] = "",
    match: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    if status not in ("", "open", "resolved") or match not in (
        "",
        "attached",
        "suggested",
        "unmatched",
        "limit_reached",
    ):
        raise Invalid(
            "status is open or resolved; match is attached, suggested, unmatched or limit_reached"
        )
    with Session(state.engine) as session:
        rows = incidents.list_incidents(
            session,
            tenant_id=user.tenant_id,
            status=status or None,
            match_status=match or None,
            limit=200,
        )
    return page(
        request,
        "incidents.html",
        user,
        nav="incidents",
        title="Incidents",
        rows=rows,
        status=status,
        match=match,
    )


@router.get("/{incident_id}")
def incident_page(
    request: Request,
    incident_id: str,
    user: UserDep,
    state: StateDep,
    notice: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    with Session(state.engine) as session:
        view = incidents.incident_view(session, tenant_id=user.tenant_id, incident_id=incident_id)
        incident = session.get(Incident, incident_id)
        assert incident is not None  # the view found it, in this tenant
        resolution = learning.incident_resolution(
            session, tenant_id=user.tenant_id, incident=incident
        )
        runs = [
            executions.summary(session, tenant_id=user.tenant_id, execution_id=e.id)
            for e in session.exec(
                select(Execution)
                .where(Execution.tenant_id == user.tenant_id, Execution.incident_id == incident_id)
                .order_by(col(Execution.created_at).desc())
            )
        ]
        every = runbooks.list_runbooks(session, tenant_id=user.tenant_id)
        drafted = runbooks.drafted_for(session, tenant_id=user.tenant_id, incident_id=incident_id)
    return page(
        request,
        "incident.html",
        user,
        nav="incidents",
        title=view.title,
        incident=view,
        resolution=resolution,
        runs=runs,
        runbooks=every,
        drafted=drafted,
        suggested_templates=templates.for_alert(view.labels.get("alertname") or "")
        if view.match_status not in ("attached", "limit_reached")
        else [],
        notice=notice,
    )


@router.post("/{incident_id}/pick")
async def pick(incident_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    """Run the chosen runbook for the incident (the pick is learned, as in the API)."""
    user.require(Role.RESPONDER)
    runbook_id = field(form, "runbook_id").strip()
    if not runbook_id:
        raise Invalid("choose a runbook")
    view = await incidents_service.pick(
        state.engine,
        state.temporal,
        state.settings,
        tenant_id=user.tenant_id,
        incident_id=incident_id,
        runbook_id=runbook_id,
        actor=user.principal.actor,
        actor_name=user.principal.name,
    )
    return back_to(f"/ui/executions/{view.id}", notice="Started.")
