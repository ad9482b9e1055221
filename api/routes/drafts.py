"""`/runbooks/drafts` and `/runbooks/templates`: runbooks from what engineers already did (a
terminal recording, a shell history, a postmortem), and from the template library.

On the router before `/runbooks/{runbook_id}`, so that these paths are not read as ids."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, StringConstraints

from api.deps import ResponderDep, SessionDep, StateDep, ViewerDep
from api.routes.runbooks import RunbookOut, runbook_out
from ddoc.alerts import service as incidents_service
from ddoc.runbooks import service, templates
from ddoc.runbooks import store as runbooks

router = APIRouter(prefix="/runbooks", tags=["runbooks"])

DraftKind = Literal["cast", "script", "history", "postmortem", "draft"]


class DraftIn(BaseModel):
    kind: DraftKind = Field(
        description="cast (asciinema v2), script (`script` output), history (bash or zsh), "
        "postmortem (markdown, text or html: `format`), or draft (a runbook document drafted "
        "already, by `ddoc watch` or `ddoc runbook draft`)"
    )
    content: str = Field(description="The recording, history, postmortem or draft, as text.")
    format: Literal["markdown", "text", "html"] = "text"
    incident_id: str | None = Field(
        default=None,
        max_length=100,
        description="The incident it was done for: its alert names the draft's trigger, its "
        "labels the variables (`{{namespace}}` for `payments`)",
    )
    title: Annotated[str, StringConstraints(max_length=200)] | None = None
    drafted_from: DraftKind | Literal["session"] | None = Field(
        default=None, description="With kind draft: what it was drafted from (kept as origin)"
    )


class DraftOut(RunbookOut):
    left_out: list[str] = Field(
        default_factory=list, description="What the draft left out of the input, and why"
    )


@router.post(
    "/drafts",
    status_code=status.HTTP_201_CREATED,
    summary="Draft a runbook from a recording, a shell history or a postmortem (it matches no "
    "alert until published)",
    responses={422: {"description": "Unreadable input, or nothing to draft in it"}},
)
async def create_draft(body: DraftIn, principal: ResponderDep, state: StateDep) -> DraftOut:
    saved, left_out = await asyncio.to_thread(
        incidents_service.draft_runbook,
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        kind=body.kind,
        content=body.content,
        fmt=body.format,
        incident_id=body.incident_id,
        title=body.title,
        drafted_from=body.drafted_from,
    )
    out = runbook_out(saved.runbook, saved.version, saved.outcome)
    return DraftOut(**out.model_dump(), left_out=left_out)


@router.get("/drafts", summary="Drafts awaiting review, newest first")
def list_drafts(principal: ViewerDep, session: SessionDep) -> list[RunbookOut]:
    return [runbook_out(rb, None) for rb in runbooks.drafts(session, tenant_id=principal.tenant_id)]


class TemplateOut(BaseModel):
    name: str
    title: str
    alerts: list[str]


@router.get("/templates", summary="The template library: runbooks for the alerts everyone has")
def list_templates(principal: ViewerDep) -> list[TemplateOut]:
    return [TemplateOut(name=t.name, title=t.title, alerts=t.alerts) for t in templates.templates()]


@router.post(
    "/templates/{name}",
    status_code=status.HTTP_201_CREATED,
    summary="Install a template as a runbook (source path templates/<name>.md)",
)
def install_template(
    name: str, principal: ResponderDep, state: StateDep, response: Response
) -> RunbookOut:
    saved = service.add_template(
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        name=name,
    )
    if saved.outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    return runbook_out(saved.runbook, saved.version, saved.outcome)
