"""API basics over real HTTP: health, authentication, and clear 4xx answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from ddoc.contracts.settings import Settings, TemporalSettings
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, free_port, serve_api

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


async def test_health_reports_each_dependency(stack: Stack) -> None:
    response = await stack.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "temporal": "ok", "database": "ok"}


async def test_health_is_503_and_names_temporal_when_it_is_down(settings: Settings) -> None:
    unreachable = settings.replace(temporal=TemporalSettings(address=f"127.0.0.1:{free_port()}"))
    async with serve_api(unreachable) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["temporal"].startswith("error: ")


async def test_health_shows_the_supervisors_view_when_there_is_one(
    settings: Settings, tmp_path: Path
) -> None:
    state_file = tmp_path / "supervisor.json"
    supervised = settings.replace(supervisor_state=state_file)
    worker = {
        "state": "restarting",
        "pid": None,
        "restarts": 2,
        "last_exit": "signal 9, SIGKILL",
        "last_exit_at": "2026-01-02T03:04:05+00:00",
        "since": "2026-01-02T03:04:05+00:00",
    }
    async with serve_api(supervised) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        # No file (yet): no field, as where nothing supervises the API.
        assert "supervisor" not in (await http.get("/health")).json()
        state_file.write_text(json.dumps({"pid": 1, "children": {"worker": worker}}))
        response = await http.get("/health")
    assert response.status_code == 200  # a restarting worker is not an API outage
    shown = response.json()["supervisor"]["children"]["worker"]
    assert shown == {key: value for key, value in worker.items() if key != "pid"}


async def test_api_key_is_required_and_checked(stack: Stack) -> None:
    missing = await stack.http.get("/runbooks")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing API key: send `Authorization: Bearer <api key>`"}
    wrong = await stack.http.get("/runbooks", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "invalid or revoked API key"}
    # A webhook token is not an API key, and an API key is not a webhook token.
    assert (await stack.http.get("/runbooks", headers=stack.webhook_headers())).status_code == 401
    body = alertmanager_v4(am_alert("X", fingerprint="1"))
    hook = await stack.http.post("/webhooks/alertmanager", json=body, headers=stack.api_headers())
    assert hook.status_code == 401
    assert hook.json() == {"detail": "invalid webhook token"}
    assert (await stack.http.get("/runbooks", headers=stack.api_headers())).status_code == 200


async def test_bad_webhook_bodies_get_4xx_and_store_nothing(stack: Stack, engine: Engine) -> None:
    headers = {**stack.webhook_headers(), "Content-Type": "application/json"}
    not_json = await stack.http.post(
        "/webhooks/alertmanager", content=b"{not json", headers=headers
    )
    assert not_json.status_code == 422
    no_alerts = await stack.http.post(
        "/webhooks/alertmanager", json={"version": "4"}, headers=headers
    )
    assert no_alerts.status_code == 422
    assert no_alerts.json()["detail"][0]["loc"] == ["body", "alerts"]
    huge = {"alerts": [], "padding": "x" * (5 * 1024 * 1024)}
    too_large = await stack.http.post(
        "/webhooks/alertmanager", content=json.dumps(huge).encode(), headers=headers
    )
    assert too_large.status_code == 413
    assert "larger than the limit" in too_large.json()["detail"]
    assert count(engine, "alerts") == 0 and count(engine, "incidents") == 0


async def test_runbook_as_raw_markdown_and_versions_by_source_path(stack: Stack) -> None:
    content = (FIXTURES / "crashloop.md").read_text()
    headers = {**stack.api_headers(), "Content-Type": "text/markdown"}
    url = "/runbooks?source_path=k8s/crashloop.md"
    first = await stack.http.post(url, content=content.encode(), headers=headers)
    assert first.status_code == 201
    assert (first.json()["version"], first.json()["outcome"]) == (1, "created")
    assert first.json()["alert_names"] == ["KubePodCrashLooping"]

    same = await stack.http.post(url, content=content.encode(), headers=headers)
    assert same.status_code == 200
    assert (same.json()["id"], same.json()["version"], same.json()["outcome"]) == (
        first.json()["id"],
        1,
        "unchanged",
    )

    changed = await stack.http.post(
        url, content=(content + "\n4. Tell the team.\n").encode(), headers=headers
    )
    assert changed.status_code == 201
    assert (changed.json()["id"], changed.json()["version"]) == (first.json()["id"], 2)

    v1 = await stack.http.get(
        f"/runbooks/{first.json()['id']}?version=1", headers=stack.api_headers()
    )
    assert v1.json()["version"] == 1
    assert v1.json()["parsed"]["title"] == "Checkout pod crash-looping"
    listed = await stack.http.get("/runbooks", headers=stack.api_headers())
    assert [(r["id"], r["version"]) for r in listed.json()] == [(first.json()["id"], 2)]


async def test_unsupported_content_and_unknown_ids(stack: Stack) -> None:
    xml = await stack.http.post(
        "/runbooks",
        content=b"<a/>",
        headers={**stack.api_headers(), "Content-Type": "application/xml"},
    )
    assert xml.status_code == 415
    assert "unsupported content type 'application/xml'" in xml.json()["detail"]
    latin1 = await stack.http.post(
        "/runbooks",
        content="# Caf\u00e9\n\n1. `df -h`\n".encode("latin-1"),
        headers={**stack.api_headers(), "Content-Type": "text/markdown"},
    )
    assert latin1.status_code == 422
    assert latin1.json() == {"detail": "the runbook is not valid UTF-8 text"}
    missing = await stack.http.get("/executions/ex-nope", headers=stack.api_headers())
    assert missing.status_code == 404
    assert missing.json() == {"detail": "execution ex-nope not found"}
    runbook = await stack.http.get("/runbooks/rb_nope", headers=stack.api_headers())
    assert runbook.status_code == 404
