"""Starting a runbook by hand through the API, and deciding on its steps."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.contracts.settings import Settings, TemporalSettings
from ddoc.platform import audit, tenancy
from tests.conftest import Stack, eventually, free_port, serve_api

RUNBOOK = """---
title: Say hello to a service
---
# Say hello to a service

1. Greet it: `echo "hello $SERVICE"`
2. Restart it: `touch {marker}`
"""


async def add(stack: Stack, marker: str = "/nonexistent/marker") -> str:
    response = await stack.http.post(
        "/runbooks",
        json={"content": RUNBOOK.format(marker=marker)},
        headers=stack.api_headers(),
    )
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_start_by_hand_with_variables_and_decide(
    stack: Stack, engine: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    runbook_id = await add(stack, str(marker))
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
    url = f"/executions/{started['id']}"

    async def current(status: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=stack.api_headers())).json()
        return body if body["status"] == status else None

    async def awaiting_with_deadline() -> dict[str, Any] | None:
        # The step awaits a human first, then its deadline is set: wait for both.
        body = await current("awaiting_human")
        steps = body["steps"] if body else []
        awaiting = steps[1].get("awaiting") if len(steps) > 1 else None
        return body if awaiting and awaiting.get("deadline") else None

    waiting = await eventually(awaiting_with_deadline)
    assert waiting["live"] is True and waiting["current_step"] == "s2"
    greet, restart = waiting["steps"]
    assert greet["output"] == "hello cart; rm -rf /tmp/x\n"
    assert (restart["risk"], restart["status"]) == ("yellow", "awaiting_approval")
    assert restart["awaiting"]["allowed"] == ["approve", "reject", "skip", "edit"]
    assert restart["awaiting"]["deadline"] is not None

    viewer = new_key(engine, stack, "viewer")
    decisions = f"{url}/decisions"
    refused = await stack.http.post(
        decisions, json={"step_id": "s2", "decision": "approve"}, headers=viewer
    )
    assert refused.status_code == 403 and "needs the responder role" in refused.json()["detail"]
    done = await stack.http.post(
        decisions, json={"step_id": "s1", "decision": "approve"}, headers=stack.api_headers()
    )
    assert done.status_code == 409 and "not awaiting" in done.json()["detail"]
    unknown = await stack.http.post(
        decisions, json={"step_id": "s9", "decision": "approve"}, headers=stack.api_headers()
    )
    assert unknown.status_code == 404
    bogus = await stack.http.post(
        decisions, json={"step_id": "s2", "decision": "yolo"}, headers=stack.api_headers()
    )
    assert bogus.status_code == 422
    assert not marker.exists()
    approved = await stack.http.post(
        decisions,
        json={"step_id": "s2", "decision": "approve", "comment": "go"},
        headers={**stack.api_headers(), "X-Ddoc-Client": "cli"},
    )
    assert approved.status_code == 202, approved.text
    assert approved.json()["accepted"] is True

    execution = await eventually(lambda: current("succeeded"))
    assert marker.exists()
    decision = execution["steps"][1]["decisions"][0]
    assert (decision["decision"], decision["source"], decision["comment"]) == (
        "approve",
        "cli",
        "go",
    )
    assert execution["started_by"].startswith("api_key:")
    late = await stack.http.post(f"{url}/abort", headers=stack.api_headers())
    assert late.status_code == 409
    events = (await stack.http.get(f"{url}/events", headers=stack.api_headers())).json()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "execution.started" and kinds[-1] == "execution.succeeded"
    assert "step.awaiting_approval" in kinds
    # Everything above went to the audit trail, and the chain holds.
    with Session(engine) as session:
        checked = audit.verify(session, tenant_id=stack.settings.tenant)
        trail = {
            (e["action"], e["subject"]): e
            for e in audit.export(session, tenant_id=stack.settings.tenant)
        }
    assert checked.ok and checked.checked > 5, checked
    # Who, from where, and which exact text ran and came out (hashes, not the output).
    approval = trail[("decision.approve", f"{started['id']}/s2")]
    assert approval["data"]["source"] == "cli" and approval["data"]["address"] == "127.0.0.1"
    greeted = trail[("step.succeeded", f"{started['id']}/s1")]["data"]
    assert greeted["risk"] == "green"
    assert greeted["command_sha256"] == hashlib.sha256(greet["command"].encode()).hexdigest()
    assert greeted["output_sha256"] == hashlib.sha256(greet["output"].encode()).hexdigest()


async def test_abort_and_every_mode_by_hand(stack: Stack, tmp_path: Path) -> None:
    runbook_id = await add(stack, str(tmp_path / "never"))
    for mode in ("read_along", "copilot", "autopilot", "dry_run"):
        response = await stack.http.post(
            "/executions",
            json={"runbook_id": runbook_id, "mode": mode, "variables": {"service": "x"}},
            headers=stack.api_headers(),
        )
        assert response.status_code == 201, response.text
        assert response.json()["mode"] == mode
    started = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "variables": {"service": "x"}},
        headers=stack.api_headers(),
    )
    url = f"/executions/{started.json()['id']}"

    async def status(wanted: str) -> bool:
        body = (await stack.http.get(url, headers=stack.api_headers())).json()
        return bool(body["status"] == wanted)

    await eventually(lambda: status("awaiting_human"))
    aborted = await stack.http.post(
        f"{url}/abort", json={"comment": "wrong runbook"}, headers=stack.api_headers()
    )
    assert aborted.status_code == 202, aborted.text
    await eventually(lambda: status("aborted"))
    body = (await stack.http.get(url, headers=stack.api_headers())).json()
    assert body["live"] is False
    assert body["steps"][1]["status"] == "skipped"
    assert body["steps"][1]["detail"].startswith("aborted by")


def new_key(engine: Engine, stack: Stack, *roles: str) -> dict[str, str]:
    with Session(engine) as session:
        _, key = tenancy.create_api_key(
            session, tenant_id=stack.settings.tenant, name="-".join(roles), roles=list(roles)
        )
        session.commit()
    return {"Authorization": f"Bearer {key}"}


async def test_start_refusals(stack: Stack, engine: Engine) -> None:
    runbook_id = await add(stack)
    missing = await stack.http.post(
        "/executions", json={"runbook_id": "rb_nope"}, headers=stack.api_headers()
    )
    assert missing.status_code == 404
    bad_mode = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "yolo"},
        headers=stack.api_headers(),
    )
    assert bad_mode.status_code == 422
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


async def test_the_tenant_execution_policy_applies_to_new_executions(
    stack: Stack, tmp_path: Path
) -> None:
    headers = stack.api_headers()
    bad = await stack.http.patch(
        "/settings", json={"execution_policy": {"red_approvals": 3}}, headers=headers
    )
    assert bad.status_code == 422 and "red_approvals must be 1 or 2" in bad.json()["detail"]
    key = "R" * 32
    policy = {
        "red_approvals": 2,
        "wait_minutes": {"critical": 5},
        "escalation_levels": [{"name": "L2 platform", "pagerduty_routing_key": key}],
    }
    ok = await stack.http.patch("/settings", json={"execution_policy": policy}, headers=headers)
    assert ok.status_code == 200, ok.text
    shown = ok.json()["execution_policy"]
    assert shown["escalation_levels"] == [{"name": "L2 platform", "pagerduty_routing_key": True}]
    assert key not in ok.text

    content = f"# Drop the cache\n\n1. Drop it: `rm -rf {tmp_path}/cache`\n"
    runbook = await stack.http.post("/runbooks", json={"content": content}, headers=headers)
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook.json()["id"]}, headers=headers
    )
    url = f"/executions/{started.json()['id']}"

    async def awaiting() -> dict[str, Any] | None:
        step: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()["steps"][0]
        return step["awaiting"] if step.get("awaiting") else None

    waiting = await eventually(awaiting)
    assert (waiting["role"], waiting["approvals_needed"]) == ("approver", 2)


async def test_breakpoints_by_hand_on_the_runbook_and_on_a_running_execution(
    stack: Stack, engine: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    runbook_id = await add(stack, str(marker))
    headers = stack.api_headers()
    # A step the runbook does not have: 422 on the start and on the runbook, nothing started.
    bad = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "autopilot", "breakpoints": ["s9"]},
        headers=headers,
    )
    assert bad.status_code == 422 and "no step 's9'" in bad.json()["detail"]
    assert "(s1, s2)" in bad.json()["detail"]
    listed = await stack.http.get(f"/executions?runbook_id={runbook_id}", headers=headers)
    assert listed.json() == []
    bad_rb = await stack.http.put(
        f"/runbooks/{runbook_id}/breakpoints", json={"steps": ["s1", "nope"]}, headers=headers
    )
    assert bad_rb.status_code == 422 and "no step 'nope'" in bad_rb.json()["detail"]
    # On the runbook: autopilot pauses before s2, and continue resumes.
    put = await stack.http.put(
        f"/runbooks/{runbook_id}/breakpoints", json={"steps": ["s2"]}, headers=headers
    )
    assert put.status_code == 200 and list(put.json()["breakpoints"]) == ["s2"]
    shown = (await stack.http.get(f"/runbooks/{runbook_id}", headers=headers)).json()
    assert list(shown["breakpoints"]) == ["s2"]
    started = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "autopilot", "variables": {"service": "x"}},
        headers=headers,
    )
    assert started.status_code == 201, started.text
    url = f"/executions/{started.json()['id']}"

    async def paused() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()
        awaiting = body["steps"][1].get("awaiting")
        return body if awaiting and awaiting["kind"] == "breakpoint" else None

    body = await eventually(paused)
    assert body["steps"][1]["awaiting"]["allowed"] == ["continue", "skip"]
    assert not marker.exists()  # autopilot stopped before the yellow step
    wrong = await stack.http.post(
        f"{url}/decisions", json={"step_id": "s2", "decision": "approve"}, headers=headers
    )
    assert wrong.status_code == 409 and "one of continue, skip" in wrong.json()["detail"]
    # A breakpoint on a step that started, or does not exist, on the running execution.
    started_step = await stack.http.post(
        f"{url}/breakpoints", json={"step_id": "s1"}, headers=headers
    )
    assert started_step.status_code == 409 and "succeeded" in started_step.json()["detail"]
    missing = await stack.http.post(f"{url}/breakpoints", json={"step_id": "s7"}, headers=headers)
    assert missing.status_code == 422
    go = await stack.http.post(
        f"{url}/decisions", json={"step_id": "s2", "decision": "continue"}, headers=headers
    )
    assert go.status_code == 202, go.text

    async def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()
        return body if body["status"] == "succeeded" else None

    done = await eventually(finished)
    assert marker.exists()
    # The approve was refused by the API (409): it never reached the workflow.
    assert [d["decision"] for d in done["steps"][1]["decisions"]] == ["continue"]
    # Cleared on the runbook: the next execution runs straight through.
    await stack.http.put(f"/runbooks/{runbook_id}/breakpoints", json={"steps": []}, headers=headers)
    marker.unlink()
    again = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "autopilot", "variables": {"service": "x"}},
        headers=headers,
    )
    url = f"/executions/{again.json()['id']}"
    await eventually(finished)
    assert marker.exists()
    with Session(engine) as session:
        actions = [e["action"] for e in audit.export(session, tenant_id=stack.settings.tenant)]
    assert actions.count("runbook.breakpoints_set") == 2


async def test_a_drill_by_hand_runs_in_its_sandbox_and_is_scored(
    stack: Stack, tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    runbook_id = await add(stack, str(marker))
    headers = stack.api_headers()
    mixed = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "copilot", "drill": {"team": "payments"}},
        headers=headers,
    )
    assert mixed.status_code == 422 and 'only with mode "drill"' in mixed.json()["detail"]
    bad_env = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "mode": "drill", "drill": {"environment": "a b"}},
        headers=headers,
    )
    assert bad_env.status_code == 422
    # The sandbox here is the test stack's agent environment (its own task queue).
    started = await stack.http.post(
        "/executions",
        json={
            "runbook_id": runbook_id,
            "mode": "drill",
            "variables": {"service": "cart"},
            "drill": {"team": "payments", "environment": stack.settings.environment},
        },
        headers=headers,
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert (body["mode"], body["environment"]) == ("drill", stack.settings.environment)
    url = f"/executions/{body['id']}"

    async def awaiting() -> dict[str, Any] | None:
        view: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()
        return view if view["steps"][1].get("awaiting") else None

    await eventually(awaiting)
    approved = await stack.http.post(
        f"{url}/decisions", json={"step_id": "s2", "decision": "approve"}, headers=headers
    )
    assert approved.status_code == 202

    async def scored() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = (
            await stack.http.get("/drills?team=payments", headers=headers)
        ).json()
        return found if found and found[0]["score"]["finished"] else None

    (drill,) = await eventually(scored)
    assert marker.exists()
    assert (drill["execution_id"], drill["team"], drill["runbook_id"]) == (
        body["id"],
        "payments",
        runbook_id,
    )
    assert drill["alert_title"] == "DRILL: Say hello to a service"
    card = drill["score"]
    assert card["status"] == "succeeded" and [a["step_id"] for a in card["approvals"]] == ["s2"]
    assert card["time_to_first_action_seconds"] >= 0 and card["previous_drills"] == 0
    other = await stack.http.get("/drills?team=nobody", headers=headers)
    assert other.status_code == 200 and other.json() == []


async def test_a_replay_rechecks_recorded_decisions_against_a_new_version(
    stack: Stack, tmp_path: Path
) -> None:
    headers = stack.api_headers()
    first, second = tmp_path / "first", tmp_path / "second"
    runbook_id = await add(stack, str(first))
    started = await stack.http.post(
        "/executions",
        json={"runbook_id": runbook_id, "variables": {"service": "cart"}},
        headers=headers,
    )
    url = f"/executions/{started.json()['id']}"

    async def status_of(where: str, status: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(where, headers=headers)).json()
        return body if body["status"] == status else None

    async def awaiting() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=headers)).json()
        return body if body["steps"][1].get("awaiting") else None

    await eventually(awaiting)
    await stack.http.post(
        f"{url}/decisions",
        json={"step_id": "s2", "decision": "approve", "comment": "go"},
        headers=headers,
    )
    await eventually(lambda: status_of(url, "succeeded"))
    first.unlink()
    # Version 2 adds a state change nobody decided on in the past execution.
    v2 = RUNBOOK.format(marker=first) + f"3. Then: `touch {second}`\n"
    updated = await stack.http.put(f"/runbooks/{runbook_id}", json={"content": v2}, headers=headers)
    assert updated.status_code == 200 and updated.json()["version"] == 2
    sandbox = stack.settings.environment
    replayed = await stack.http.post(
        f"{url}/replay", json={"environment": sandbox}, headers=headers
    )
    assert replayed.status_code == 201, replayed.text
    new = replayed.json()
    assert (new["mode"], new["runbook_version"], new["environment"]) == ("drill", 2, sandbox)
    replay_url = f"/executions/{new['id']}"
    diverged = await eventually(lambda: status_of(replay_url, "aborted"))
    _, s2, s3 = diverged["steps"]
    assert s2["status"] == "succeeded" and first.exists()
    (approval,) = s2["decisions"]
    assert (approval["display_name"].endswith("(replayed)"), approval["source"]) == (True, "replay")
    assert approval["comment"] == "go"
    assert s3["status"] == "skipped" and "no recorded decision for step s3" in s3["detail"]
    assert not second.exists()
    events = (await stack.http.get(f"{replay_url}/events", headers=headers)).json()
    assert [e["step_id"] for e in events if e["type"] == "replay.diverged"] == ["s3"]
    # Against version 1 it goes through, every recorded decision used.
    first.unlink()
    again = await stack.http.post(
        f"{url}/replay", json={"environment": sandbox, "version": 1}, headers=headers
    )
    again_url = f"/executions/{again.json()['id']}"
    await eventually(lambda: status_of(again_url, "succeeded"))
    assert first.exists()
    events = (await stack.http.get(f"{again_url}/events", headers=headers)).json()
    (finished,) = [e for e in events if e["type"] == "replay.finished"]
    assert finished["data"]["unused_decisions"] == []
    missing = await stack.http.post(f"{url}/replay", json={"version": 9}, headers=headers)
    assert missing.status_code == 404
    teams = (await stack.http.get("/drills?team=replay", headers=headers)).json()
    assert {d["execution_id"] for d in teams} == {new["id"], again.json()["id"]}
