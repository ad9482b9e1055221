"""Starting a runbook by hand through the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from ddoc import tenancy
from ddoc.settings import Settings, TemporalSettings
from tests.conftest import Stack, eventually, free_port, serve_api

RUNBOOK = """---
title: Say hello to a service
---
# Say hello to a service

1. Greet it: `echo "hello $SERVICE"`
2. Restart it: `systemctl restart $SERVICE`
"""


async def add(stack: Stack) -> str:
    response = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK}, headers=stack.api_headers()
    )
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_start_by_hand_with_variables(stack: Stack) -> None:
    runbook_id = await add(stack)
    response = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "variables": {"service": "cart; rm -rf /tmp/x"}},
        headers=stack.api_headers(),
    )
    assert response.status_code == 201, response.text
    started = response.json()
    assert started["id"] == started["workflow_id"]
    assert (started["mode"], started["runbook_id"], started["incident_id"]) == (
        "copilot",
        runbook_id,
        None,
    )

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await stack.http.get(f"/executions/{started['id']}", headers=stack.api_headers())
        ).json()
        return body if body["status"] == "succeeded" else None

    execution = await eventually(done)
    greet, restart = execution["steps"]
    assert greet["output"] == "hello cart; rm -rf /tmp/x\n"
    assert (restart["risk"], restart["status"]) == ("yellow", "skipped")
    assert execution["started_by"].startswith("api_key:")


async def test_start_refusals(stack: Stack, engine: Engine) -> None:
    runbook_id = await add(stack)
    missing = await stack.http.post(
        "/executions", json={"runbook_id": "rb_nope"}, headers=stack.api_headers()
    )
    assert missing.status_code == 404
    read_along = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "read_along"},
        headers=stack.api_headers(),
    )
    assert read_along.status_code == 422
    assert "not available yet" in read_along.json()["detail"]
    with Session(engine) as session:
        _, viewer = tenancy.create_api_key(
            session, tenant_id=stack.settings.tenant, name="viewer", roles=["viewer"]
        )
        session.commit()
    forbidden = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id},
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert forbidden.status_code == 403
    await stack.http.post(f"/runbooks/{runbook_id}/archive", headers=stack.api_headers())
    archived = await stack.http.post(
        "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
    )
    assert archived.status_code == 409


async def test_start_with_temporal_down_fails_the_execution_visibly(
    stack: Stack, settings: Settings
) -> None:
    import httpx

    runbook_id = await add(stack)
    down = settings.replace(temporal=TemporalSettings(address=f"127.0.0.1:{free_port()}"))
    async with serve_api(down) as url, httpx.AsyncClient(base_url=url, timeout=120) as http:
        response = await http.post(
            "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
        )
    assert response.status_code == 503
    listed = await stack.http.get("/executions", headers=stack.api_headers())
    assert [e["status"] for e in listed.json()] == ["failed"]
