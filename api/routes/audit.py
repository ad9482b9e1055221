"""The audit trail out: an export for auditors (admin role)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from api.deps import AdminDep, StateDep
from ddoc.platform import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/export", summary="The audit events of a time range, as JSON Lines or CSV (admin)")
def export(
    principal: AdminDep,
    state: StateDep,
    since: datetime | None = None,
    until: datetime | None = None,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    if since and until and since >= until:
        raise HTTPException(422, "since must be before until")

    def rows() -> Iterator[str]:
        with Session(state.engine) as session:
            events = audit.export(session, tenant_id=principal.tenant_id, since=since, until=until)
            yield from audit.export_lines(events, format)

    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    name = f"audit-{principal.tenant_id}.{format}"
    return StreamingResponse(
        rows(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
