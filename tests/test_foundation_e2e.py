"""The foundation path on the real stack: runbook → Alertmanager webhook → execution workflow →
commands on the agent → results in Postgres and in Temporal's visibility."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"


async def add_runbook(stack: Stack, name: str = "crashloop.md") -> dict[str, Any]:
    response = await stack.http.post(
        "/runbooks",
        json={"content": (FIXTURES / name).read_text(), "source_path": f"k8s/{name}"},
        headers=stack.api_headers(),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def execution_when_done(stack: Stack, execution_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        response = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] not in ("running", "awaiting_human") else None

    result: dict[str, Any] = await eventually(finished, within=30)
    return result


async def test_alert_to_execution_end_to_end(stack: Stack, engine: Engine) -> None:
    runbook = await add_runbook(stack)
    assert runbook["version"] == 1
    assert runbook["title"] == "Checkout pod crash-looping"
    assert runbook["source_path"] == "k8s/crashloop.md"

    def crashloop(status: str = "firing") -> dict[str, Any]:
        alert = am_alert(
            "KubePodCrashLooping",
            fingerprint="a1b2c3d4e5f60718",
            namespace="shop",
            pod="checkout-7d9f-x2v",
            severity="critical",
            service="checkout",
            status=status,
        )
        return dict(alertmanager_v4(alert, status=status))

    body = crashloop()
    first = await stack.http.post(
        "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
    )
    assert first.status_code == 202, first.text
    [outcome] = first.json()["alerts"]
    assert outcome["status"] == "started"
    assert outcome["dedup_key"] == "a1b2c3d4e5f60718"
    execution_id = outcome["execution_id"]

    # Alertmanager re-sends a firing group on every group_interval: still one execution.
    again = await stack.http.post(
        "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
    )
    assert again.status_code == 202
    [repeat] = again.json()["alerts"]
    assert repeat == {**outcome, "status": "duplicate"}

    # The read-only steps ran by themselves; the restart (yellow) waits for a human.
    async def awaiting() -> dict[str, Any] | None:
        response = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        body: dict[str, Any] = response.json()
        return body if body["status"] == "awaiting_human" else None

    execution = await eventually(awaiting, within=30)
    assert execution["runbook_id"] == runbook["id"]
    assert execution["mode"] == "copilot" and execution["current_step"] == "s3"
    steps = {step["id"]: step for step in execution["steps"]}
    say, disk, restart = (steps[s] for s in ("s1", "s2", "s3"))
    assert say["risk"] == "green" and say["status"] == "succeeded" and say["exit_code"] == 0
    assert say["output"] == "pod=checkout-7d9f-x2v namespace=shop\n"
    assert disk["status"] == "succeeded" and disk["exit_code"] == 0
    assert disk["output"].startswith("Filesystem")
    assert restart["risk"] == "yellow" and restart["status"] == "awaiting_approval"
    assert restart["exit_code"] is None

    live = (
        f'TenantId = "{stack.settings.tenant}" AND DdocExecutionStatus = "awaiting_human"'
        ' AND CurrentStep = "s3" AND ExecutionStatus = "Running"'
    )
    assert await eventually(lambda: _ids(stack, live)) == [execution_id]
    # What the Temporal UI shows: the summary and details given at start, and the workflow's
    # current details (its metadata query), updated on every transition.
    handle = stack.client.get_workflow_handle(execution_id)
    described = await handle.describe()
    assert await described.static_summary() == (
        "Checkout pod crash-looping · copilot · for KubePodCrashLooping is firing"
        f" · incident {outcome['incident_id']}"
    )
    assert "mode copilot" in (await described.static_details() or "")
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "- `s3` ⏸ awaiting approval (yellow) · " in metadata.current_details
    skipped = await stack.http.post(
        f"/executions/{execution_id}/decisions",
        json={"step_id": "s3", "decision": "skip", "comment": "pod recovered"},
        headers=stack.api_headers(),
    )
    assert skipped.status_code == 202, skipped.text
    # The incident resolves: the execution, already succeeded, closes.
    closed = await stack.http.post(
        "/webhooks/alertmanager", json=crashloop("resolved"), headers=stack.webhook_headers()
    )
    assert closed.status_code == 202, closed.text
    execution = await execution_when_done(stack, execution_id)
    assert execution["status"] == "succeeded"
    assert execution["steps"][2]["status"] == "skipped"

    with engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM executions) AS executions,"
                " (SELECT count(*) FROM incidents) AS incidents,"
                " (SELECT alert_count FROM incidents) AS repeats,"
                " (SELECT count(*) FROM alerts) AS alerts"
            )
        ).one()
    assert tuple(counts) == (1, 1, 2, 3)  # two firing deliveries, one resolution

    query = (
        f'TenantId = "{stack.settings.tenant}" AND RunbookId = "{runbook["id"]}"'
        ' AND DdocExecutionStatus = "succeeded" AND ExecutionStatus = "Completed"'
        ' AND Service = "checkout" AND Severity = "critical"'
    )

    assert await eventually(lambda: _ids(stack, query)) == [execution_id]

    listed = await stack.http.get("/executions?status=succeeded", headers=stack.api_headers())
    assert [e["id"] for e in listed.json()] == [execution_id]
    running = await stack.http.get("/executions?status=running", headers=stack.api_headers())
    assert running.json() == []
    bad = await stack.http.get("/executions?status=exploded", headers=stack.api_headers())
    assert bad.status_code == 422


async def test_concurrent_deliveries_of_one_alert_start_one_execution(stack: Stack) -> None:
    await add_runbook(stack)
    body = alertmanager_v4(
        am_alert("KubePodCrashLooping", fingerprint="feedfacecafebeef", namespace="shop", pod="p")
    )
    responses = await asyncio.gather(
        *(
            stack.http.post("/webhooks/alertmanager", json=body, headers=stack.webhook_headers())
            for _ in range(12)
        )
    )
    assert [r.status_code for r in responses] == [202] * 12
    outcomes = [r.json()["alerts"][0] for r in responses]
    assert sorted(o["status"] for o in outcomes) == ["duplicate"] * 11 + ["started"]
    assert len({o["execution_id"] for o in outcomes}) == 1
    assert len({o["incident_id"] for o in outcomes}) == 1

    async def count() -> int:
        result = await stack.client.count_workflows(f'TenantId = "{stack.settings.tenant}"')
        return result.count

    assert await eventually(count) == 1


async def test_unmatched_and_resolved_alerts(stack: Stack) -> None:
    await add_runbook(stack)
    unknown = alertmanager_v4(am_alert("SomethingNobodyWroteAbout", fingerprint="0000000000000001"))
    response = await stack.http.post(
        "/webhooks/alertmanager", json=unknown, headers=stack.webhook_headers()
    )
    [outcome] = response.json()["alerts"]
    assert outcome["status"] == "unmatched"
    assert outcome["execution_id"] is None

    resolved = alertmanager_v4(
        am_alert("SomethingNobodyWroteAbout", fingerprint="0000000000000001", status="resolved"),
        status="resolved",
    )
    response = await stack.http.post(
        "/webhooks/alertmanager", json=resolved, headers=stack.webhook_headers()
    )
    [closed] = response.json()["alerts"]
    assert closed == {**outcome, "status": "resolved"}


async def test_hostile_label_value_stays_literal(stack: Stack, tmp_path: Path) -> None:
    await add_runbook(stack)
    sentinel = tmp_path / "pwned"
    hostile = f'x"; touch {sentinel}; echo "$(touch {sentinel})'
    body = alertmanager_v4(
        am_alert(
            "KubePodCrashLooping", fingerprint="badc0ffee0ddf00d", namespace="shop", pod=hostile
        )
    )
    response = await stack.http.post(
        "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
    )
    execution_id = response.json()["alerts"][0]["execution_id"]

    async def first_step() -> dict[str, Any] | None:
        response = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        step: dict[str, Any] = response.json()["steps"][0]
        return step if step["status"] == "succeeded" else None

    first = await eventually(first_step, within=30)
    assert first["output"] == f"pod={hostile} namespace=shop\n"
    assert not sentinel.exists()


async def _ids(stack: Stack, query: str) -> list[str]:
    return [wf.id async for wf in stack.client.list_workflows(query)]
