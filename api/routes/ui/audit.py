"""The console's audit page: the newest events that match a filter, and the export (admin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session

from api.deps import StateDep
from api.routes.ui.common import UserDep, confined, page
from ddoc.contracts.roles import Role
from ddoc.platform import audit
from ddoc.platform.errors import Invalid

router = APIRouter(prefix="/ui/audit", include_in_schema=False)

Text = Annotated[str, Query(max_length=200)]


def _moment(value: str, name: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid(f"{name}: a date and time like 2026-12-04 or 2026-12-04T17:30") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


@router.get("")
def audit_page(
    request: Request,
    user: UserDep,
    state: StateDep,
    action: Text = "",
    actor: Text = "",
    subject: Text = "",
    since: Text = "",
    until: Text = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    start, end = _moment(since, "since"), _moment(until, "until")
    if start and end and start >= end:
        raise Invalid("since must be before until")
    with Session(state.engine) as session:
        events = audit.search(
            session,
            tenant_id=user.tenant_id,
            action=action.strip() or None,
            actor=actor.strip() or None,
            subject=subject.strip() or None,
            since=start,
            until=end,
            limit=limit,
        )
    return page(
        request,
        "audit.html",
        user,
        nav="audit",
        title="Audit trail",
        events=events,
        filters={
            "action": action,
            "actor": actor,
            "subject": subject,
            "since": since,
            "until": until,
        },
        limit=limit,
    )


@router.get("/export")
def audit_export(
    user: UserDep,
    state: StateDep,
    since: Text = "",
    until: Text = "",
    format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl",
) -> Response:
    """The whole hash chain of a time range, for auditors: the admin role, as in the API."""
    user.require(Role.ADMIN)
    start, end = _moment(since, "since"), _moment(until, "until")

    def lines() -> Iterator[str]:
        with Session(state.engine) as session:
            events = audit.export(session, tenant_id=user.tenant_id, since=start, until=end)
            yield from audit.export_lines(events, format)

    name = f"audit-{user.tenant_id}.{format}"
    return confined(
        StreamingResponse(
            lines(),
            media_type="application/x-ndjson" if format == "jsonl" else "text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    )
