"""Console pages for executions: the list, and one execution live (its steps refresh about once
a second) with the decisions the signed-in person may take, as buttons.

A button is shown only when the approval policy the workflow applies (ddoc/contracts/approvals)
would accept that decision from this person now: viewers see none, a red step's approve needs
an approver, nobody approves twice or their own edit. The workflow checks every decision again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import StateDep
from api.routes.ui.common import FormDep, User, UserDep, back_to, field, page
from ddoc.alerts import service as incidents_service
from ddoc.contracts.approvals import refusal
from ddoc.contracts.execution import (
    Actor,
    Awaiting,
    Decision,
    DecisionKind,
    ExecutionStatus,
)
from ddoc.contracts.roles import Role
from ddoc.execution import breakpoints, live, service
from ddoc.execution import store as executions
from ddoc.execution.views import ExecutionView, StepView
from ddoc.platform.errors import Invalid
from ddoc.trust import learning

router = APIRouter(prefix="/ui/executions", include_in_schema=False)

FINISHED = {
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.ABORTED,
    ExecutionStatus.ROLLED_BACK,
}
# The order buttons appear in; approve first (the keyboard reaches it first).
BUTTONS = [
    DecisionKind.APPROVE,
    DecisionKind.CONTINUE,
    DecisionKind.CHOOSE,
    DecisionKind.PROVIDE,
    DecisionKind.DONE,
    DecisionKind.RETRY,
    DecisionKind.EDIT,
    DecisionKind.SKIP,
    DecisionKind.REJECT,
]
LABELS = {
    DecisionKind.APPROVE: "Approve",
    DecisionKind.REJECT: "Reject",
    DecisionKind.SKIP: "Skip",
    DecisionKind.EDIT: "Edit and submit",
    DecisionKind.CHOOSE: "Choose",
    DecisionKind.DONE: "Mark done",
    DecisionKind.RETRY: "Retry",
    DecisionKind.PROVIDE: "Provide",
    DecisionKind.CONTINUE: "Continue",
}


@router.get("")
def execution_list(
    request: Request,
    user: UserDep,
    state: StateDep,
    status: Annotated[str, Query(max_length=30)] = "",
) -> Response:
    try:
        wanted = ExecutionStatus(status) if status else None
    except ValueError:
        raise Invalid(f"no status {status!r}") from None
    with Session(state.engine) as session:
        rows = executions.list_executions(
            session, tenant_id=user.tenant_id, status=wanted, limit=200
        )
    return page(
        request,
        "executions.html",
        user,
        nav="executions",
        title="Executions",
        rows=rows,
        status=status,
        statuses=[s.value for s in ExecutionStatus],
    )


@router.get("/{execution_id}")
async def execution_page(
    request: Request,
    execution_id: str,
    user: UserDep,
    state: StateDep,
    notice: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    view = await live.view(state.engine, state.temporal, user.tenant_id, execution_id)
    return page(
        request,
        "execution.html",
        user,
        nav="executions",
        notice=notice,
        **_context(view, user, state),
    )


@router.get("/{execution_id}/live")
async def execution_fragment(
    request: Request, execution_id: str, user: UserDep, state: StateDep
) -> Response:
    """The live part of the execution page (the page's script asks about once a second)."""
    view = await live.view(state.engine, state.temporal, user.tenant_id, execution_id)
    return page(request, "_execution_live.html", user, **_context(view, user, state))


def _context(view: ExecutionView, user: User, state: Any) -> dict[str, Any]:
    ui = state.settings.temporal_ui_url
    namespace = state.settings.temporal.namespace
    finished = view.status in FINISHED
    return {
        "title": f"Execution {view.id}",
        "execution": view,
        "finished": finished,
        "choices": {s.id: _choices(s, user) for s in view.steps} if not finished else {},
        "labels": LABELS,
        "may_stop": not finished and user.may(Role.RESPONDER),
        "temporal_url": (
            f"{ui}/namespaces/{quote(namespace)}/workflows/{quote(view.workflow_id)}"
            if ui
            else None
        ),
    }


def _actor(user: User) -> Actor:
    return Actor(
        user_id=user.principal.actor,
        display_name=user.principal.name,
        source="console",
        roles=sorted(user.principal.roles),
    )


def _choices(step: StepView, user: User) -> list[DecisionKind]:
    """The decisions this person may take about the step now (the workflow's own policy)."""
    waiting = step.awaiting
    if waiting is None or not user.may(Role.RESPONDER):
        return []
    awaiting = Awaiting(
        kind=waiting.kind,
        allowed=[k.value for k in waiting.allowed],
        message=waiting.message,
        role=waiting.role.value,
        approvals_needed=waiting.approvals_needed,
        approved_by=list(waiting.approved_by),
        missing=list(waiting.missing),
        branches=list(waiting.branches),
    )
    actor = _actor(user)
    found = []
    for kind in BUTTONS:
        if kind not in waiting.allowed:
            continue
        probe = Decision(
            step_id=step.id,
            decision=kind,
            actor=actor,
            command="x",  # the form asks for the real one; only who-may is checked here
            branch="1",
            values={name: "x" for name in waiting.missing},
        )
        if refusal(probe, awaiting, edited_by=step.edited_by) is None:
            found.append(kind)
    return found


@router.post("/{execution_id}/decide")
async def decide(execution_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    user.require(Role.RESPONDER)
    try:
        kind = DecisionKind(field(form, "decision"))
    except ValueError:
        raise Invalid("no such decision") from None
    values = {
        key[len("value.") :]: str(value)
        for key, value in form.items()
        if key.startswith("value.") and str(value).strip()
    }
    decision = await service.decide(
        state.engine,
        state.temporal,
        tenant_id=user.tenant_id,
        execution_id=execution_id,
        step_id=field(form, "step_id") or None,
        kind=kind,
        actor=_actor(user),
        command=field(form, "command")[:20000] or None,
        branch=field(form, "branch")[:2000] or None,
        comment=field(form, "comment")[:2000] or None,
        values=values,
    )
    return back_to(
        f"/ui/executions/{execution_id}",
        notice=f"{LABELS.get(kind, kind.value)} sent for {decision.step_id}.",
    )


@router.post("/{execution_id}/breakpoint")
async def breakpoint(execution_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    """Pause before a step that has not started (any mode), as the API's breakpoints do."""
    user.require(Role.RESPONDER)
    step_id = field(form, "step_id")[:200]
    await breakpoints.set_on_execution(
        state.engine,
        state.temporal,
        tenant_id=user.tenant_id,
        execution_id=execution_id,
        step_id=step_id,
        actor=_actor(user),
    )
    return back_to(
        f"/ui/executions/{execution_id}", notice=f"The execution pauses before {step_id}."
    )


@router.post("/{execution_id}/stop")
async def stop(execution_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    """Abort, roll back, or abort because the runbook is the wrong one for the incident."""
    user.require(Role.RESPONDER)
    how = field(form, "how", "abort")
    if how not in ("abort", "rollback", "wrong_runbook"):
        raise Invalid("stop with abort, rollback or wrong_runbook")
    stopper = incidents_service.abort_wrong_runbook if how == "wrong_runbook" else service.stop
    await stopper(
        state.engine,
        state.temporal,
        tenant_id=user.tenant_id,
        execution_id=execution_id,
        actor=_actor(user),
        rollback=how == "rollback",
        comment=field(form, "comment")[:2000] or None,
    )
    said = {"abort": "Abort", "rollback": "Roll back", "wrong_runbook": "Wrong runbook: abort"}
    return back_to(f"/ui/executions/{execution_id}", notice=f"{said[how]} sent.")


@router.post("/{execution_id}/save-as-version")
async def save_as_version(
    execution_id: str, user: UserDep, state: StateDep, form: FormDep
) -> Response:
    """What the responders did (edited commands that ran, steps they skipped) becomes the
    runbook's next version."""
    user.require(Role.RESPONDER)
    _, saved = await asyncio.to_thread(
        learning.save_what_was_done,
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=user.tenant_id,
        execution_id=execution_id,
        actor=user.principal.actor,
    )
    return back_to(
        f"/ui/runbooks/{saved.runbook.id}",
        notice=f"Saved as version {saved.version.version}.",
    )
