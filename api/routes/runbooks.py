"""`/runbooks`: add, preview, import, list and show runbooks and their versions; trust level,
stats, suggested revisions, learned triggers, blast-radius limits and circuit breaker of each.

Why this file is long: every route under `/runbooks/...` is on one router, in the path order
FastAPI matches them by; each handler is a few lines over the domain (ddoc/runbooks,
ddoc/trust), with the request and response models beside it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints, ValidationError
from sqlmodel import Session

from api.deps import (
    AdminDep,
    ApproverDep,
    AppState,
    OriginDep,
    ResponderDep,
    SessionDep,
    StateDep,
    ViewerDep,
)
from ddoc.alerts import learned
from ddoc.execution import breakpoints, limits
from ddoc.execution.limits import LimitsView
from ddoc.platform import tenancy
from ddoc.platform.tables import Runbook, RunbookVersion
from ddoc.platform.tenancy import Principal
from ddoc.runbooks import service
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.ingest import SourceDocument
from ddoc.runbooks.ingest.sync import archive_missing, import_documents
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.risk import tenant as tenant_rules
from ddoc.selfcheck import store as self_checks
from ddoc.trust import breaker, learning
from ddoc.trust import levels as trust
from ddoc.trust import outcomes as graded
from ddoc.trust.breaker import BreakerView

router = APIRouter(prefix="/runbooks", tags=["runbooks"])

RunbookFormat = Literal["markdown", "text", "html"]
RunbookUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]


class RunbookIn(BaseModel):
    content: str = Field(description="The runbook as written: markdown, plain text or HTML.")
    format: RunbookFormat = "markdown"
    source_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Relative path at the source; re-posting the same path makes a new version.",
    )
    urls: list[RunbookUrl] | None = Field(
        default=None,
        max_length=20,
        description="URLs its source shows it at (a wiki page, the git web URL of the file): an "
        "alert whose runbook_url is one of them matches it. Omitted: the stored ones are kept.",
    )


class LearnedTriggerOut(BaseModel):
    id: str
    fingerprint: str = Field(description="source · alert name · service · masked title")
    source: str
    alert_name: str | None
    service: str | None
    title_pattern: str
    created_by: str = Field(description="who picked the runbook (actor id)")
    created_by_name: str
    created_at: datetime
    incident_id: str | None = Field(description="the incident it was picked for")


class SelfCheckFindingOut(BaseModel):
    step_id: str | None
    kind: str = Field(
        description="program_missing | command_failed | dry_run_failed | timed_out | "
        "policy_denied | variable_unresolved | …"
    )
    message: str
    failing: bool = Field(description="whether it fails the check (others are informational)")


class SelfCheckOut(BaseModel):
    """A runbook's latest self-check (docs/decisions/0018-self-checks.md). A contract with
    outside tools: `last_run`, `status` and `findings` keep their names."""

    last_run: datetime
    status: Literal["passed", "failed", "drifted"]
    findings: list[SelfCheckFindingOut]
    failing_since: datetime | None = Field(
        description="the first failing run of the current streak (null once it passes)"
    )
    version: int = Field(description="the runbook version checked")
    run_id: str
    agent: str | None = Field(description="the agent host and queue that checked")


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
    urls: list[str] = Field(
        default_factory=list, description="URLs that show it (its source's and front-matter's)"
    )
    learned_triggers: list[LearnedTriggerOut] | None = Field(
        default=None,
        description="Alerts it was picked for, by fingerprint (GET /runbooks/{id} only)",
    )
    draft: bool = Field(
        default=False,
        description="A draft (from a session, a history, a postmortem, an execution) matches no "
        "alert until published (POST /runbooks/{id}/publish)",
    )
    origin: dict[str, Any] | None = Field(
        default=None, description="What a drafted runbook was drafted from (kind, incident)"
    )
    outcomes: graded.OutcomesView | None = Field(
        default=None,
        description="Graded alert-started runs: did the alert resolve and stay resolved "
        "(GET /runbooks/{id} only)",
    )
    # GET /runbooks/{id} only (docs/LIMITS.md): effective limits with usage now; the breaker.
    limits: LimitsView | None = None
    breaker: BreakerView | None = None
    breakpoints: dict[str, str] | None = Field(
        default=None,
        description="Steps every new execution pauses before, with who set them "
        "(GET /runbooks/{id} only; PUT /runbooks/{id}/breakpoints)",
    )
    self_check: SelfCheckOut | None = Field(
        default=None,
        description="The latest nightly self-check: last_run, status (passed | failed | "
        "drifted), findings, failing_since; null when never checked (GET /runbooks/{id} only)",
    )


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
        raise RequestValidationError(
            err.errors(include_url=False, include_input=False, include_context=False)
        ) from None


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


def runbook_out(
    runbook: Runbook,
    version: RunbookVersion | None,
    outcome: str | None = None,
    triggers: list[LearnedTriggerOut] | None = None,
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
        urls=list(runbook.urls),
        learned_triggers=triggers,
        draft=runbook.draft,
        origin=runbook.origin,
    )


def _parse(state: AppState, principal: Principal, body: RunbookIn) -> ParsedRunbook:
    return service.parse(
        state.engine,
        state.parse,
        tenant_id=principal.tenant_id,
        content=body.content,
        fmt=body.format,
        source_path=body.source_path,
    )


def _store(
    state: AppState, principal: Principal, body: RunbookIn, runbook_id: str | None = None
) -> runbooks.SavedRunbook:
    return service.add(
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        content=body.content,
        fmt=body.format,
        source_path=body.source_path,
        urls=body.urls,
        runbook_id=runbook_id,
    )


@router.post(
    "/parse",
    summary="Parse a runbook and show the structure and quality report; stores nothing",
    openapi_extra=_BODY_DOC,
)
def parse_preview(
    principal: ViewerDep, body: Annotated[RunbookIn, Depends(runbook_body)], state: StateDep
) -> dict[str, Any]:
    return _parse(state, principal, body).to_dict()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a runbook (or the next version of the one at the same source path)",
    openapi_extra=_BODY_DOC,
)
def create_runbook(
    principal: ResponderDep,  # first: a caller without the role learns nothing of the body
    body: Annotated[RunbookIn, Depends(runbook_body)],
    state: StateDep,
    response: Response,
) -> RunbookOut:
    saved = _store(state, principal, body)
    if saved.outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    return runbook_out(saved.runbook, saved.version, saved.outcome)


@router.put(
    "/{runbook_id}",
    summary="Store the next version of a runbook (unchanged content makes none)",
    openapi_extra=_BODY_DOC,
)
def update_runbook(
    runbook_id: str,
    principal: ResponderDep,
    body: Annotated[RunbookIn, Depends(runbook_body)],
    state: StateDep,
) -> RunbookOut:
    saved = _store(state, principal, body, runbook_id=runbook_id)
    return runbook_out(saved.runbook, saved.version, saved.outcome)


class ImportIn(BaseModel):
    documents: list[RunbookIn] = Field(max_length=500)


class ImportResultOut(BaseModel):
    source_path: str | None
    outcome: str
    runbook_id: str | None
    version: int | None
    steps: int | None
    error: str | None


@router.post(
    "/import",
    summary="Store a batch of documents, each in its own transaction; failures are reported",
)
def import_runbooks(
    body: ImportIn, principal: ResponderDep, state: StateDep
) -> list[ImportResultOut]:
    missing = [i for i, d in enumerate(body.documents) if not d.source_path]
    if missing:
        raise HTTPException(422, f"documents {missing} have no source_path; import needs one each")
    with Session(state.engine) as session:
        rules = tenant_rules.risk_rules(session, principal.tenant_id)
    report = import_documents(
        state.engine,
        tenant_id=principal.tenant_id,
        documents=[
            SourceDocument(
                source_path=d.source_path or "",
                content=d.content,
                format=d.format,
                urls=tuple(d.urls) if d.urls is not None else None,
            )
            for d in body.documents
        ],
        actor=principal.actor,
        embedder=state.matcher.embedder,
        parse=state.parse,
        rules=rules,
    )
    return [ImportResultOut(**r.__dict__) for r in report.results]


class ArchiveMissingIn(BaseModel):
    prefix: str = Field(description="Only runbooks whose source path starts with this.")
    present: list[str] = Field(description="Source paths the source still has.")


@router.post(
    "/archive-missing",
    summary="Archive the runbooks under a source prefix that the source no longer has",
)
def archive_missing_runbooks(
    body: ArchiveMissingIn, principal: ResponderDep, state: StateDep
) -> dict[str, list[str]]:
    archived = archive_missing(
        state.engine,
        tenant_id=principal.tenant_id,
        prefix=body.prefix,
        present=body.present,
        actor=principal.actor,
    )
    return {"archived": archived}


@router.get("", summary="List runbooks (drafts with include_drafts=true)")
def list_runbooks(
    principal: ViewerDep,
    session: SessionDep,
    include_archived: bool = False,
    include_drafts: bool = False,
) -> list[RunbookOut]:
    return [
        runbook_out(rb, None)
        for rb in runbooks.list_runbooks(
            session,
            tenant_id=principal.tenant_id,
            include_archived=include_archived,
            include_drafts=include_drafts,
        )
    ]


@router.get(
    "/{runbook_id}",
    summary="A runbook with its parsed structure (latest or ?version=N), URLs, learned triggers "
    "and graded outcomes",
)
def get_runbook(
    runbook_id: str,
    principal: ViewerDep,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> RunbookOut:
    runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    row = runbooks.version(
        session, tenant_id=principal.tenant_id, runbook_id=runbook_id, number=version
    )
    triggers = learned.for_runbook(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    out = runbook_out(
        runbook, row, triggers=[LearnedTriggerOut(**learned.view(t)) for t in triggers]
    )
    out.outcomes = graded.outcomes(session, runbook=runbook)
    out.limits = limits.view(
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        settings=tenancy.settings(session, principal.tenant_id),
    )
    out.breaker = breaker.view(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    out.breakpoints = {k: str(v) for k, v in (runbook.breakpoints or {}).items()}
    checked = self_checks.latest(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    out.self_check = SelfCheckOut(**checked) if checked else None
    # Its failing findings are quality flags of the version it checked (shown, not stored).
    out.parsed = self_checks.with_quality_flags(out.parsed, checked, out.version)
    return out


@router.delete(
    "/{runbook_id}/learned-triggers/{trigger_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a learned trigger: alerts like the one it was picked for match as before",
    responses={404: {"description": "No such learned trigger on this runbook"}},
)
def delete_learned_trigger(
    runbook_id: str, trigger_id: str, principal: ResponderDep, session: SessionDep
) -> Response:
    runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    learned.remove(
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        trigger_id=trigger_id,
        actor=principal.actor,
        reason="removed by a responder",
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class VersionOut(BaseModel):
    version: int
    format: str
    content_sha256: str
    created_by: str | None
    created_at: datetime
    steps: int


@router.get("/{runbook_id}/versions", summary="Every stored version of a runbook, oldest first")
def list_versions(runbook_id: str, principal: ViewerDep, session: SessionDep) -> list[VersionOut]:
    return [
        VersionOut(
            version=v.version,
            format=v.format,
            content_sha256=v.content_sha256,
            created_by=v.created_by,
            created_at=v.created_at,
            steps=len(v.parsed.get("steps", [])),
        )
        for v in runbooks.versions(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    ]


@router.post(
    "/{runbook_id}/publish",
    summary="Publish a draft: it matches alerts from now on (a published runbook is unchanged)",
)
def publish_runbook(runbook_id: str, principal: ResponderDep, session: SessionDep) -> RunbookOut:
    runbook = runbooks.publish(
        session, tenant_id=principal.tenant_id, runbook_id=runbook_id, actor=principal.actor
    )
    session.commit()
    session.refresh(runbook)
    return runbook_out(runbook, None)


@router.post("/{runbook_id}/archive", summary="Archive a runbook: it stops matching alerts")
def archive_runbook(runbook_id: str, principal: ResponderDep, session: SessionDep) -> RunbookOut:
    runbook = runbooks.archive(
        session, tenant_id=principal.tenant_id, runbook_id=runbook_id, actor=principal.actor
    )
    session.commit()
    session.refresh(runbook)
    return runbook_out(runbook, None)


class TrustIn(BaseModel):
    level: Literal["read_along", "copilot", "autopilot"]
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept in the history.")
    force: bool = Field(
        default=False, description="Override failed promotion guards (audited as forced)."
    )


class GuardOut(BaseModel):
    name: str
    level: str
    passed: bool
    detail: str
    evidence: dict[str, Any]


class TrustOut(BaseModel):
    id: str
    trust_level: str
    previous_level: str
    changed: bool
    kind: str | None = Field(description="promoted | demoted | forced (null when unchanged)")
    guards: list[GuardOut]


@router.post(
    "/{runbook_id}/trust",
    summary="Set a runbook's trust level (admin); 409 names the promotion guard that failed",
    responses={409: {"description": "A promotion guard failed; `guards` has the evidence"}},
)
def set_trust(
    runbook_id: str, body: TrustIn, origin: OriginDep, principal: AdminDep, session: SessionDep
) -> TrustOut:
    if not body.reason.strip():
        raise HTTPException(422, "reason: a reason is required")
    outcome = trust.change(  # a failed guard raises TrustRefused: 409 (api/app.py)
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        level=body.level,
        reason=body.reason,
        actor=principal.actor,
        policy=trust.trust_policy(tenancy.settings(session, principal.tenant_id)),
        force=body.force,
        origin=origin.audit(),
    )
    session.commit()
    return TrustOut(
        id=runbook_id,
        trust_level=outcome.runbook.trust_level,
        previous_level=outcome.previous,
        changed=outcome.changed,
        kind=outcome.kind,
        guards=[GuardOut(**asdict(g)) for g in outcome.guards],
    )


class BreakerIn(BaseModel):
    action: Literal["resume"]
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept in the audit.")


@router.post(
    "/{runbook_id}/breaker",
    summary="Resume a runbook whose circuit breaker opened (approver): autopilot runs again",
    responses={409: {"description": "The breaker is not open"}},
)
def set_breaker(
    runbook_id: str, body: BreakerIn, principal: ApproverDep, session: SessionDep
) -> BreakerView:
    if not body.reason.strip():
        raise HTTPException(422, "reason: a reason is required")
    runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    shown = breaker.resume(
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        actor=principal.actor,
        reason=body.reason.strip(),
    )
    session.commit()
    return shown


class BreakpointsIn(BaseModel):
    steps: list[Annotated[str, Field(max_length=200)]] = Field(
        max_length=500, description="Step ids to pause before; [] clears them"
    )


@router.put(
    "/{runbook_id}/breakpoints",
    summary="Pause every new execution of the runbook before these steps (any mode)",
    responses={422: {"description": "A step the runbook's current version does not have"}},
)
def set_runbook_breakpoints(
    runbook_id: str, body: BreakpointsIn, principal: ResponderDep, session: SessionDep
) -> dict[str, dict[str, str]]:
    shown = breakpoints.set_on_runbook(
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        steps=body.steps,
        actor=principal.actor,
    )
    session.commit()
    return {"breakpoints": shown}


class TrustStateOut(BaseModel):
    id: str
    trust_level: str
    next_level: str | None
    guards: list[GuardOut] = Field(description="What promotion to next_level needs, checked now")
    history: list[dict[str, Any]]


@router.get("/{runbook_id}/trust", summary="Trust level, what the next level needs, history")
def get_trust(runbook_id: str, principal: ViewerDep, session: SessionDep) -> TrustStateOut:
    runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    upcoming = trust.next_level(runbook.trust_level)
    checked = (
        trust.guards(
            session,
            runbook=runbook,
            target=upcoming,
            policy=trust.trust_policy(tenancy.settings(session, principal.tenant_id)),
        )
        if upcoming
        else []
    )
    return TrustStateOut(
        id=runbook.id,
        trust_level=runbook.trust_level,
        next_level=upcoming.value if upcoming else None,
        guards=[GuardOut(**asdict(g)) for g in checked],
        history=trust.history(session, tenant_id=principal.tenant_id, runbook_id=runbook_id),
    )


@router.get(
    "/{runbook_id}/stats",
    summary="Effectiveness, per-step skip/edit/failure rates, dead steps and confidence decay",
)
def runbook_stats(runbook_id: str, principal: ViewerDep, session: SessionDep) -> dict[str, Any]:
    runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    return learning.runbook_report(session, tenant_id=principal.tenant_id, runbook=runbook)


class SuggestionOut(BaseModel):
    id: str
    runbook_id: str
    base_version: int
    status: str = Field(description="open | accepted | dismissed | superseded")
    changes: list[dict[str, Any]] = Field(
        description="kind (edited | extended | skipped), step_id, original/edited or text, "
        "times (of reached), applied"
    )
    diff: str = Field(description="unified diff against base_version")
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    accepted_version: int | None


@router.get("/{runbook_id}/suggestions", summary="Suggested revisions, newest first")
def list_suggestions(
    runbook_id: str, principal: ViewerDep, session: SessionDep
) -> list[SuggestionOut]:
    rows = learning.suggestions(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    return [SuggestionOut(**learning.suggestion_view(r)) for r in rows]


class SuggestOut(BaseModel):
    suggestion: SuggestionOut | None
    message: str


@router.post(
    "/{runbook_id}/suggestions",
    summary="Make the suggested revision from the executions now (it is also refreshed "
    "whenever an execution finishes)",
)
def make_suggestion(runbook_id: str, principal: ResponderDep, session: SessionDep) -> SuggestOut:
    row = learning.suggest(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    session.commit()
    if row is None:
        return SuggestOut(
            suggestion=None,
            message="nothing to suggest: no successful edits or dead steps in the recent "
            "executions of the current version (or only changes already dismissed)",
        )
    return SuggestOut(
        suggestion=SuggestionOut(**learning.suggestion_view(row)), message="suggestion open"
    )


class DecideSuggestionIn(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class AcceptedOut(BaseModel):
    suggestion: SuggestionOut
    runbook: RunbookOut


@router.post(
    "/{runbook_id}/suggestions/{suggestion_id}/accept",
    summary="Accept a suggested revision: it becomes the runbook's next version",
    responses={409: {"description": "The suggestion is closed or the runbook changed since"}},
)
def accept_suggestion(
    runbook_id: str,
    suggestion_id: str,
    principal: ResponderDep,
    state: StateDep,
    body: DecideSuggestionIn | None = None,
) -> AcceptedOut:
    row, saved = learning.accept(
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        suggestion_id=suggestion_id,
        actor=principal.actor,
        reason=body.reason if body else None,
    )
    return AcceptedOut(
        suggestion=SuggestionOut(**learning.suggestion_view(row)),
        runbook=runbook_out(saved.runbook, saved.version, saved.outcome),
    )


@router.post(
    "/{runbook_id}/suggestions/{suggestion_id}/dismiss",
    summary="Dismiss a suggested revision (the same changes are not suggested again)",
    responses={409: {"description": "The suggestion is closed or the runbook changed since"}},
)
def dismiss_suggestion(
    runbook_id: str,
    suggestion_id: str,
    principal: ResponderDep,
    session: SessionDep,
    body: DecideSuggestionIn | None = None,
) -> SuggestionOut:
    row = learning.get_suggestion(
        session,
        tenant_id=principal.tenant_id,
        runbook_id=runbook_id,
        suggestion_id=suggestion_id,
        lock=True,
    )
    learning.dismiss(session, row, actor=principal.actor, reason=body.reason if body else None)
    session.commit()
    return SuggestionOut(**learning.suggestion_view(row))
