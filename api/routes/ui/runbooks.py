"""Console pages for runbooks: paste & preview, the list, a runbook (versions, diff, flowchart,
trust, suggested revisions, blast-radius limits and the circuit breaker)."""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session, col, func, select
from starlette.datastructures import UploadFile

from api.deps import StateDep
from api.routes.ui.common import FormDep, User, UserDep, back_to, field, page
from ddoc.alerts import learned
from ddoc.alerts import service as incidents_service
from ddoc.contracts.roles import Role
from ddoc.execution import limits
from ddoc.platform import tenancy
from ddoc.platform.errors import Invalid, Unavailable
from ddoc.platform.tables import Execution
from ddoc.runbooks import flowchart, service, templates
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.parsing import ParseError
from ddoc.selfcheck import store as self_checks
from ddoc.trust import breaker, learning, outcomes
from ddoc.trust import levels as trust

router = APIRouter(prefix="/ui/runbooks", include_in_schema=False)

FORMATS = ("markdown", "text", "html")
MAX_PASTE_BYTES = 1024 * 1024  # a pasted or uploaded runbook (the API takes up to 4 MiB)


@router.get("")
def runbook_list(
    request: Request,
    user: UserDep,
    state: StateDep,
    q: Annotated[str, Query(max_length=200)] = "",
    service_name: Annotated[str, Query(alias="service", max_length=200)] = "",
    trust_level: Annotated[str, Query(alias="trust", max_length=20)] = "",
) -> Response:
    with Session(state.engine) as session:
        report = learning.health(session, tenant_id=user.tenant_id)
        books = {b.id: b for b in runbooks.list_runbooks(session, tenant_id=user.tenant_id)}
        waiting = runbooks.drafts(session, tenant_id=user.tenant_id)
        last_used = dict(
            session.exec(
                select(Execution.runbook_id, func.max(Execution.created_at))
                .where(Execution.tenant_id == user.tenant_id)
                .group_by(col(Execution.runbook_id))
            ).all()
        )
    wanted = q.strip().lower()
    rows = []
    for row in report["ranking"]:
        book = books[row["runbook_id"]]
        haystack = " ".join([book.title, book.source_path or "", *book.alert_names]).lower()
        if wanted and wanted not in haystack:
            continue
        if service_name and service_name not in book.services:
            continue
        if trust_level and book.trust_level != trust_level:
            continue
        rows.append({**row, "book": book, "last_used": last_used.get(book.id)})
    services = sorted({s for b in books.values() for s in b.services})
    gaps = [
        {**gap, "templates": templates.for_alert(gap["alert"]) if gap["alert"] else []}
        for gap in report["coverage_gaps"]
    ]
    return page(
        request,
        "runbooks.html",
        user,
        nav="runbooks",
        title="Runbooks",
        rows=rows,
        drafts=waiting,
        total=len(books),
        gaps=gaps,
        q=q,
        service=service_name,
        trust=trust_level,
        services=services,
    )


@router.get("/new")
def paste_form(
    request: Request,
    user: UserDep,
    state: StateDep,
    runbook_id: Annotated[str | None, Query(alias="runbook", max_length=100)] = None,
) -> Response:
    content, fmt, source_path, title = "", "markdown", "", None
    if runbook_id:  # a new version of this runbook: start from the current text
        with Session(state.engine) as session:
            book = runbooks.get(session, tenant_id=user.tenant_id, runbook_id=runbook_id)
            current = runbooks.version(session, tenant_id=user.tenant_id, runbook_id=runbook_id)
        content, fmt, source_path, title = (
            current.content,
            current.format,
            book.source_path or "",
            book.title,
        )
    return _paste_page(
        request,
        user,
        content=content,
        fmt=fmt,
        source_path=source_path,
        runbook_id=runbook_id,
        title=title,
    )


def _paste_page(
    request: Request,
    user: User,
    *,
    content: str = "",
    fmt: str = "markdown",
    source_path: str = "",
    runbook_id: str | None = None,
    title: str | None = None,
    parsed: dict[str, Any] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "paste.html",
        user,
        status_code,
        nav="new",
        title=f"New version of {title}" if title else "Paste a runbook",
        content=content,
        fmt=fmt,
        source_path=source_path,
        runbook_id=runbook_id,
        parsed=parsed,
        error=error,
        formats=FORMATS,
    )


async def _document(form: Any) -> tuple[str, str, str]:
    """The pasted (or uploaded) document, its format and source path, checked."""
    fmt = field(form, "format", "markdown")
    if fmt not in FORMATS:
        raise Invalid(f"format must be one of {', '.join(FORMATS)}")
    source_path = field(form, "source_path").strip()
    content = field(form, "content")
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_PASTE_BYTES + 1)
        if len(raw) > MAX_PASTE_BYTES:
            raise Invalid(f"the file is larger than {MAX_PASTE_BYTES // 1024} KiB")
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("the file is not UTF-8 text") from None
        name = upload.filename.lower()
        if "format" not in form or not field(form, "content").strip():
            fmt = (
                "html"
                if name.endswith((".html", ".htm"))
                else ("markdown" if name.endswith((".md", ".markdown")) else "text")
            )
        source_path = source_path or upload.filename
    if len(content.encode()) > MAX_PASTE_BYTES:
        raise Invalid(f"the runbook is larger than {MAX_PASTE_BYTES // 1024} KiB")
    if len(source_path) > 1024:
        raise Invalid("the source path is longer than 1024 characters")
    return content, fmt, source_path


@router.post("/preview")
async def preview(
    request: Request,
    user: UserDep,
    state: StateDep,
    form: FormDep,
    full: Annotated[bool, Query()] = False,
) -> Response:
    """The parsed runbook as a fragment (the paste page's live preview); stores nothing. With
    `?full=1` (the Preview button, for a browser without the script) the whole paste page."""
    content, fmt, source_path = await _document(form)
    parsed, error = None, None
    if content.strip():
        try:
            found = await asyncio.to_thread(
                service.parse,
                state.engine,
                state.parse,
                tenant_id=user.tenant_id,
                content=content,
                fmt=fmt,
                source_path=source_path or None,
            )
            parsed = found.to_dict()
        except ParseError as err:
            error = str(err)
    if full:
        return _paste_page(
            request,
            user,
            content=content,
            fmt=fmt,
            source_path=source_path,
            runbook_id=field(form, "runbook_id").strip() or None,
            parsed=parsed,
            error=error,
            status_code=422 if error else 200,
        )
    status_code = 422 if error else 200
    return page(request, "_preview.html", user, status_code, parsed=parsed, error=error)


@router.post("")
async def save(request: Request, user: UserDep, state: StateDep, form: FormDep) -> Response:
    """Save the pasted runbook: a new one, or the next version of `runbook_id`."""
    user.require(Role.RESPONDER)
    content, fmt, source_path = await _document(form)
    runbook_id = field(form, "runbook_id").strip() or None
    if not content.strip():
        return _paste_page(
            request,
            user,
            fmt=fmt,
            source_path=source_path,
            runbook_id=runbook_id,
            error="Paste a runbook first: the text is empty.",
            status_code=422,
        )
    try:
        saved = await asyncio.to_thread(
            service.add,
            state.engine,
            state.parse,
            state.matcher.embedder,
            tenant_id=user.tenant_id,
            actor=user.principal.actor,
            content=content,
            fmt=fmt,
            source_path=source_path or None,
            runbook_id=runbook_id,
        )
    except ParseError as err:
        return _paste_page(
            request,
            user,
            content=content,
            fmt=fmt,
            source_path=source_path,
            runbook_id=runbook_id,
            error=str(err),
            status_code=422,
        )
    notice = {
        "created": "Saved as a new runbook.",
        "unchanged": "Nothing changed: the text is the current version's.",
    }.get(saved.outcome, f"Saved as version {saved.version.version}.")
    return back_to(f"/ui/runbooks/{saved.runbook.id}", notice=notice)


@router.get("/templates")
def template_list(request: Request, user: UserDep, state: StateDep) -> Response:
    with Session(state.engine) as session:
        installed = {
            b.source_path: b.id
            for b in runbooks.list_runbooks(session, tenant_id=user.tenant_id)
            if b.source_path and b.source_path.startswith("templates/")
        }
    return page(
        request,
        "templates.html",
        user,
        nav="runbooks",
        title="Template library",
        templates=templates.templates(),
        installed=installed,
    )


@router.post("/templates/{name}")
async def install_template(name: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    user.require(Role.RESPONDER)
    saved = await asyncio.to_thread(
        service.add_template,
        state.engine,
        state.parse,
        state.matcher.embedder,
        tenant_id=user.tenant_id,
        actor=user.principal.actor,
        name=name,
    )
    said = "Installed." if saved.outcome == "created" else f"Template {saved.outcome}."
    return back_to(f"/ui/runbooks/{saved.runbook.id}", notice=said)


@router.get("/drafts/new")
def draft_form(
    request: Request,
    user: UserDep,
    incident: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    return page(
        request,
        "draft.html",
        user,
        nav="new",
        title="Draft a runbook from what you did",
        incident=incident,
        kinds=DRAFT_KINDS,
        kind="postmortem",
        content="",
    )


DRAFT_KINDS = {
    "postmortem": "a postmortem (markdown, text, or a Confluence / Google Docs page)",
    "history": "a shell history (bash or zsh, with or without timestamps)",
    "cast": "an asciinema recording (.cast)",
    "script": "a `script` recording (typescript)",
}


@router.post("/drafts")
async def create_draft(request: Request, user: UserDep, state: StateDep, form: FormDep) -> Response:
    user.require(Role.RESPONDER)
    kind = field(form, "kind", "postmortem")
    if kind not in DRAFT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(DRAFT_KINDS)}")
    content, fmt, _ = await _document(form)
    incident_id = field(form, "incident").strip() or None
    try:
        saved, _ = await asyncio.to_thread(
            incidents_service.draft_runbook,
            state.engine,
            state.parse,
            state.matcher.embedder,
            tenant_id=user.tenant_id,
            actor=user.principal.actor,
            kind=kind,
            content=content,
            fmt=fmt,
            incident_id=incident_id,
            title=field(form, "title").strip()[:200] or None,
        )
    except Invalid as err:  # shown again with what was pasted, to fix and retry
        return page(
            request,
            "draft.html",
            user,
            422,
            nav="new",
            title="Draft a runbook",
            incident=incident_id or "",
            kinds=DRAFT_KINDS,
            kind=kind,
            content=content,
            error=str(err),
        )
    return back_to(
        f"/ui/runbooks/{saved.runbook.id}",
        notice="Drafted: review every step, then publish it.",
    )


@router.post("/{runbook_id}/publish")
def publish(runbook_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    user.require(Role.RESPONDER)
    with Session(state.engine) as session:
        runbooks.publish(
            session, tenant_id=user.tenant_id, runbook_id=runbook_id, actor=user.principal.actor
        )
        session.commit()
    return back_to(f"/ui/runbooks/{runbook_id}", notice="Published: it matches its alerts now.")


@router.get("/{runbook_id}")
async def runbook_page(
    request: Request,
    runbook_id: str,
    user: UserDep,
    state: StateDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    diff_from: Annotated[int | None, Query(alias="from", ge=1)] = None,
    diff_to: Annotated[int | None, Query(alias="to", ge=1)] = None,
    notice: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    context = await asyncio.to_thread(
        _runbook_context, state, user, runbook_id, version, diff_from, diff_to
    )
    try:
        svg = await asyncio.to_thread(flowchart.render_svg, context["shown"].parsed)
        context["flowchart"], context["flowchart_error"] = svg, None
    except Unavailable as err:
        context["flowchart"], context["flowchart_error"] = None, str(err)
    return page(request, "runbook.html", user, nav="runbooks", notice=notice, **context)


def _runbook_context(
    state: Any,
    user: User,
    runbook_id: str,
    number: int | None,
    diff_from: int | None,
    diff_to: int | None,
    *,
    trust_error: str | None = None,
    refused_guards: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    tenant_id = user.tenant_id
    with Session(state.engine) as session:
        book = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
        shown = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook_id, number=number)
        versions = runbooks.versions(session, tenant_id=tenant_id, runbook_id=runbook_id)
        upcoming = trust.next_level(book.trust_level)
        policy = trust.trust_policy(tenancy.settings(session, tenant_id))
        guards = (
            [asdict(g) for g in trust.guards(session, runbook=book, target=upcoming, policy=policy)]
            if upcoming
            else []
        )
        history = trust.history(session, tenant_id=tenant_id, runbook_id=runbook_id)
        suggestions = [
            learning.suggestion_view(r)
            for r in learning.suggestions(session, tenant_id=tenant_id, runbook_id=runbook_id)
        ]
        triggers = [
            learned.view(t)
            for t in learned.for_runbook(session, tenant_id=tenant_id, runbook_id=runbook_id)
        ]
        stats = learning.runbook_report(session, tenant_id=tenant_id, runbook=book)
        graded = outcomes.outcomes(session, runbook=book, recent=10)
        blast = {
            "limits": limits.view(
                session,
                tenant_id=tenant_id,
                runbook_id=runbook_id,
                settings=tenancy.settings(session, tenant_id),
            ),
            "breaker": breaker.view(session, tenant_id=tenant_id, runbook_id=runbook_id),
        }
        checked = self_checks.latest(session, tenant_id=tenant_id, runbook_id=runbook_id)
        by_number = {v.version: v for v in versions}
        diff = None
        if diff_from and diff_to:
            old, new = by_number.get(diff_from), by_number.get(diff_to)
            if old is None or new is None:
                raise Invalid(f"{runbook_id} has versions 1 to {book.current_version}")
            diff = list(
                difflib.unified_diff(
                    old.content.splitlines(),
                    new.content.splitlines(),
                    f"version {diff_from}",
                    f"version {diff_to}",
                    lineterm="",
                )
            )
        session.expunge_all()
    return {
        "title": book.title,
        "book": book,
        "shown": shown,
        # The shown version's structure, with the flags of its latest self-check (not stored).
        "parsed": self_checks.with_quality_flags(shown.parsed, checked, shown.version),
        "self_check": checked,
        "versions": versions,
        "next_level": upcoming.value if upcoming else None,
        "guards": guards,
        "history": history,
        "suggestions": suggestions,
        "triggers": triggers,
        "stats": stats,
        "outcomes": graded,
        "blast": blast,
        "diff": diff,
        "diff_from": diff_from or (versions[-2].version if len(versions) > 1 else None),
        "diff_to": diff_to or (versions[-1].version if versions else None),
        "trust_error": trust_error,
        "refused_guards": refused_guards,
        "levels": [level.value for level in trust.LEVELS],
    }


@router.post("/{runbook_id}/trust")
async def set_trust(
    request: Request, runbook_id: str, user: UserDep, state: StateDep, form: FormDep
) -> Response:
    """Promote or demote: the admin role, and the same guards as the API."""
    user.require(Role.ADMIN)
    level, reason = field(form, "level"), field(form, "reason").strip()
    force = field(form, "force") == "yes"
    error, refused = None, None
    if level not in [lv.value for lv in trust.LEVELS]:
        error = f"level must be one of {', '.join(lv.value for lv in trust.LEVELS)}"
    elif not reason:
        error = "Say why: a reason is required (it is kept in the history)."
    else:
        try:
            with Session(state.engine) as session:
                outcome = trust.change(
                    session,
                    tenant_id=user.tenant_id,
                    runbook_id=runbook_id,
                    level=level,
                    reason=reason,
                    actor=user.principal.actor,
                    policy=trust.trust_policy(tenancy.settings(session, user.tenant_id)),
                    force=force,
                    origin={"source": "console"},
                )
                session.commit()
                level_now = outcome.runbook.trust_level
            return back_to(
                f"/ui/runbooks/{runbook_id}",
                notice=f"Trust level {level_now}"
                + (f" ({outcome.kind})" if outcome.kind else " (unchanged)"),
            )
        except trust.TrustRefused as err:
            error, refused = str(err), [asdict(g) for g in err.guards]
        except trust.TrustError as err:
            error = str(err)
    context = await asyncio.to_thread(
        _runbook_context,
        state,
        user,
        runbook_id,
        None,
        None,
        None,
        trust_error=error,
        refused_guards=refused,
    )
    context["flowchart"], context["flowchart_error"] = None, "not drawn with this answer"
    return page(request, "runbook.html", user, 409 if refused else 422, nav="runbooks", **context)


@router.post("/{runbook_id}/breaker")
def resume_breaker(runbook_id: str, user: UserDep, state: StateDep, form: FormDep) -> Response:
    """Resume a runbook whose circuit breaker opened: an approver, with a reason (as the API)."""
    user.require(Role.APPROVER)
    reason = field(form, "reason").strip()
    if not reason:
        raise Invalid("Say why: a reason is required to resume (it is audited).")
    with Session(state.engine) as session:
        runbooks.get(session, tenant_id=user.tenant_id, runbook_id=runbook_id)
        breaker.resume(
            session,
            tenant_id=user.tenant_id,
            runbook_id=runbook_id,
            actor=user.principal.actor,
            reason=reason,
        )
        session.commit()
    return back_to(f"/ui/runbooks/{runbook_id}", notice="Circuit breaker resumed: autopilot runs.")


@router.post("/{runbook_id}/suggestions/{suggestion_id}/{verb}")
async def decide_suggestion(
    runbook_id: str,
    suggestion_id: str,
    verb: str,
    user: UserDep,
    state: StateDep,
    form: FormDep,
) -> Response:
    user.require(Role.RESPONDER)
    reason = field(form, "reason").strip() or None
    if verb == "accept":
        _, saved = await asyncio.to_thread(
            learning.accept,
            state.engine,
            state.parse,
            state.matcher.embedder,
            tenant_id=user.tenant_id,
            runbook_id=runbook_id,
            suggestion_id=suggestion_id,
            actor=user.principal.actor,
            reason=reason,
        )
        notice = f"Suggestion accepted: version {saved.version.version}."
    elif verb == "dismiss":
        with Session(state.engine) as session:
            row = learning.get_suggestion(
                session,
                tenant_id=user.tenant_id,
                runbook_id=runbook_id,
                suggestion_id=suggestion_id,
                lock=True,
            )
            learning.dismiss(session, row, actor=user.principal.actor, reason=reason)
            session.commit()
        notice = "Suggestion dismissed."
    else:
        raise Invalid("a suggestion is accepted or dismissed")
    return back_to(f"/ui/runbooks/{runbook_id}", notice=notice)
