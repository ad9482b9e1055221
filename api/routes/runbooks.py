from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from api.deps import PrincipalDep, SessionDep
from ddoc import runbooks
from ddoc.parsing import parse_runbook
from ddoc.tables import Runbook, RunbookVersion

router = APIRouter(prefix="/runbooks", tags=["runbooks"])

RunbookFormat = Literal["markdown", "text", "html"]


class RunbookIn(BaseModel):
    content: str = Field(description="The runbook as written: markdown, plain text or HTML.")
    format: RunbookFormat = "markdown"
    source_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Relative path at the source; re-posting the same path makes a new version.",
    )


class RunbookOut(BaseModel):
    id: str
    version: int
    title: str
    source_path: str | None
    trust_level: str
    alert_names: list[str]
    services: list[str]
    archived: bool
    outcome: str | None = None
    created_at: datetime | None
    updated_at: datetime | None
    parsed: dict[str, Any] | None = None


# A runbook can also be posted as the raw document (`curl --data-binary @runbook.md`).
_RAW_TYPES: dict[str, RunbookFormat] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
}


async def runbook_body(
    request: Request,
    source_path: Annotated[
        str | None,
        Query(max_length=1024, description="With a raw text body: the source path."),
    ] = None,
    fmt: Annotated[
        RunbookFormat | None,
        Query(alias="format", description="With a raw text body: overrides its type."),
    ] = None,
) -> RunbookIn:
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.split(";")[0].strip().lower()
    raw = await request.body()
    if media_type in _RAW_TYPES:
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(422, "the runbook is not valid UTF-8 text") from None
        return RunbookIn(
            content=content, format=fmt or _RAW_TYPES[media_type], source_path=source_path
        )
    if media_type != "application/json":
        raise HTTPException(
            415,
            f"unsupported content type {media_type!r}: send application/json, "
            "text/markdown, text/plain or text/html",
        )
    try:
        return RunbookIn.model_validate_json(raw)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False)) from None


_RAW_BODY_SCHEMA = {"type": "string"}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": RunbookIn.model_json_schema()},
            **{media: {"schema": _RAW_BODY_SCHEMA} for media in _RAW_TYPES},
        },
    }
}


def _out(
    runbook: Runbook, version: RunbookVersion | None, outcome: str | None = None
) -> RunbookOut:
    return RunbookOut(
        id=runbook.id,
        version=version.version if version else runbook.current_version,
        title=runbook.title,
        source_path=runbook.source_path,
        trust_level=runbook.trust_level,
        alert_names=runbook.alert_names,
        services=runbook.services,
        archived=runbook.archived_at is not None,
        outcome=outcome,
        created_at=runbook.created_at,
        updated_at=runbook.updated_at,
        parsed=version.parsed if version else None,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a runbook (or the next version of the one at the same source path)",
    openapi_extra=_BODY_DOC,
)
def create_runbook(
    body: Annotated[RunbookIn, Depends(runbook_body)],
    principal: PrincipalDep,
    session: SessionDep,
    response: Response,
) -> RunbookOut:
    parsed = parse_runbook(body.content, body.format, source_path=body.source_path)
    saved = runbooks.save(
        session,
        tenant_id=principal.tenant_id,
        content=body.content,
        fmt=body.format,
        parsed=parsed,
        source_path=body.source_path,
        actor=principal.actor,
    )
    session.commit()
    if saved.outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    session.refresh(saved.runbook)
    return _out(saved.runbook, saved.version, saved.outcome)


@router.get("", summary="List runbooks")
def list_runbooks(
    principal: PrincipalDep, session: SessionDep, include_archived: bool = False
) -> list[RunbookOut]:
    return [
        _out(rb, None)
        for rb in runbooks.list_runbooks(
            session, tenant_id=principal.tenant_id, include_archived=include_archived
        )
    ]


@router.get("/{runbook_id}", summary="A runbook with its parsed structure (latest or ?version=N)")
def get_runbook(
    runbook_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    version: int | None = Query(default=None, ge=1),
) -> RunbookOut:
    runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    row = runbooks.version(
        session, tenant_id=principal.tenant_id, runbook_id=runbook_id, number=version
    )
    return _out(runbook, row)
