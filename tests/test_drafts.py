"""Draft runbooks over the real API: a draft matches no alert and cannot be picked until it is
published; what an execution's responders actually did becomes the runbook's next version."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from ddoc.runbooks import store as runbooks
from ddoc.runbooks.parsing import parse_runbook
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually


def _draft(engine: Engine, stack: Stack, alert: str) -> str:
    content = f"---\nalerts: [{alert}]\n---\n# Clear the spool\n\n1. Look: `df -h /`\n"
    saved = runbooks.store(
        engine,
        tenant_id=stack.settings.tenant,
        content=content,
        fmt="markdown",
        parsed=parse_runbook(content, "markdown"),
        source_path=None,
        actor="test",
        origin={"from": "history", "incident_id": None},
    )
    assert saved.outcome == "drafted" and saved.runbook.draft
    return saved.runbook.id


async def _fire(stack: Stack, alert: str) -> dict[str, Any]:
    posted = await stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(am_alert(alert, fingerprint=uuid.uuid4().hex[:12])),
        headers=stack.webhook_headers(),
    )
    assert posted.status_code in (200, 202), posted.text
    listed = await stack.http.get("/incidents?status=open", headers=stack.api_headers())
    found: dict[str, Any] = next(i for i in listed.json() if alert in i["title"])
    return found


async def test_a_draft_matches_nothing_until_published(stack: Stack, engine: Engine) -> None:
    alert = f"SpoolFull{uuid.uuid4().hex[:6]}"
    draft_id = _draft(engine, stack, alert)
    headers = stack.api_headers()
    listed = await stack.http.get("/runbooks", headers=headers)
    assert draft_id not in [r["id"] for r in listed.json()]
    with_drafts = await stack.http.get("/runbooks?include_drafts=true", headers=headers)
    [shown] = [r for r in with_drafts.json() if r["id"] == draft_id]
    assert shown["draft"] is True and shown["origin"]["from"] == "history"

    async def match() -> dict[str, Any]:
        body = alertmanager_v4(am_alert(alert, fingerprint=uuid.uuid4().hex[:12]))
        answer = await stack.http.post("/match/alertmanager", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()["alerts"][0]
        return found

    before = await match()
    assert before["attached"] is None
    assert draft_id not in [c["runbook_id"] for c in before["candidates"]]
    incident = await _fire(stack, alert)
    assert incident["match_status"] != "attached" and incident["runbook_id"] is None
    picked = await stack.http.post(
        f"/incidents/{incident['id']}/runbook", json={"runbook_id": draft_id}, headers=headers
    )
    assert picked.status_code == 409 and "draft" in picked.json()["detail"]

    published = await stack.http.post(f"/runbooks/{draft_id}/publish", headers=headers)
    assert published.status_code == 200 and published.json()["draft"] is False
    assert published.json()["origin"]["from"] == "history"  # kept
    again = await stack.http.post(f"/runbooks/{draft_id}/publish", headers=headers)
    assert again.status_code == 200  # publishing twice changes nothing
    after = await match()
    assert after["attached"]["runbook_id"] == draft_id
    picked = await stack.http.post(
        f"/incidents/{incident['id']}/runbook", json={"runbook_id": draft_id}, headers=headers
    )
    assert picked.status_code == 201, picked.text
    audit = await stack.http.get("/audit/export", headers=headers)
    actions = [line for line in audit.text.splitlines() if draft_id in line]
    assert any('"action": "runbook.drafted"' in line for line in actions)
    assert sum('"action": "runbook.published"' in line for line in actions) == 1


async def test_save_what_was_done_as_the_next_version(stack: Stack, tmp_path: Any) -> None:
    kept, edited, skipped = tmp_path / "kept", tmp_path / "edited", tmp_path / "skipped"
    content = (
        "# Rotate the spool\n\n"
        "1. Look: `df -h /`\n"
        f"2. Mark it: `touch {kept}`\n"
        f"3. Mark the old one: `touch {skipped}`\n"
    )
    headers = stack.api_headers()
    added = await stack.http.post(
        "/runbooks", json={"content": content, "source_path": "spool.md"}, headers=headers
    )
    runbook_id = added.json()["id"]
    started = await stack.http.post("/executions", json={"runbook_id": runbook_id}, headers=headers)
    execution_id = started.json()["id"]
    url = f"/executions/{execution_id}"

    async def awaiting(step: str) -> bool:
        view = (await stack.http.get(url, headers=headers)).json()
        current = next(s for s in view["steps"] if s["id"] == step)
        return current["status"] == "awaiting_approval"

    early = await stack.http.post(f"{url}/save-as-version", headers=headers)
    assert early.status_code == 409 and "wait until it ends" in early.json()["detail"]
    await eventually(lambda: awaiting("s2"))
    edit = {"step_id": "s2", "decision": "edit", "command": f"touch {edited}"}
    assert (await stack.http.post(f"{url}/decisions", json=edit, headers=headers)).is_success
    other = await stack.http.post(
        "/api-keys", json={"name": "second", "roles": ["responder"]}, headers=headers
    )
    second = {"Authorization": f"Bearer {other.json()['key']}"}

    async def edit_awaits() -> bool:
        view = (await stack.http.get(url, headers=headers)).json()
        return view["steps"][1]["command"] == f"touch {edited}" and await awaiting("s2")

    await eventually(edit_awaits)
    approve = {"step_id": "s2", "decision": "approve"}
    assert (await stack.http.post(f"{url}/decisions", json=approve, headers=second)).is_success
    await eventually(lambda: awaiting("s3"))
    skip = {"step_id": "s3", "decision": "skip"}
    assert (await stack.http.post(f"{url}/decisions", json=skip, headers=headers)).is_success

    async def finished() -> bool:
        return (await stack.http.get(url, headers=headers)).json()["status"] == "succeeded"

    await eventually(finished)
    assert edited.exists() and not kept.exists() and not skipped.exists()

    saved = await stack.http.post(f"{url}/save-as-version", headers=headers)
    assert saved.status_code == 201, saved.text
    body = saved.json()
    assert body["version"] == 2
    kinds = {(c["kind"], c["step_id"]) for c in body["changes"] if c["applied"]}
    assert kinds == {("edited", "s2"), ("skipped", "s3")}
    latest = (await stack.http.get(f"/runbooks/{runbook_id}", headers=headers)).json()
    commands = [s["command"] for s in latest["parsed"]["steps"]]
    assert commands == ["df -h /", f"touch {edited}"]
    page = await stack.http.get(f"/ui/executions/{execution_id}", headers=headers)
    assert 'id="save-as-version-button"' in page.text  # the console offers it too
    twice = await stack.http.post(f"{url}/save-as-version", headers=headers)
    assert twice.status_code == 409 and "version 2 now" in twice.json()["detail"]
