"""The learning loop on the real stack: an edited command becomes a suggested revision whose
acceptance is the next version; dead steps are found and a dismissal sticks; confidence decays;
incidents report time to first action and time to resolve."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.platform.tables import Execution, ExecutionStep, Incident
from ddoc.trust import learning
from tests.conftest import Stack, eventually
from tests.test_executions_api import new_key

RUNBOOK = """# Rotate the ingest spool

Prerequisite: shell on the ingest host.

1. Check the spool: `ls {spool}`
2. Mark the rotation: `touch {spool}/rotate-now`
3. Flush the old marker: `touch {spool}/flushed`
"""


async def add(stack: Stack, content: str, source_path: str) -> dict[str, Any]:
    response = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": source_path},
        headers=stack.api_headers(),
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_edited_command_becomes_a_revision_whose_acceptance_is_the_next_version(
    stack: Stack, engine: Engine, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    runbook = await add(stack, RUNBOOK.format(spool=spool), "spool.md")
    runbook_id = runbook["id"]
    approver = new_key(engine, stack, "approver")
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
    )
    execution_id = started.json()["id"]
    url = f"/executions/{execution_id}"

    async def awaiting(step_id: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=stack.api_headers())).json()
        step = next(s for s in body["steps"] if s["id"] == step_id)
        return body if step["status"] == "awaiting_approval" else None

    async def decide(step_id: str, decision: str, headers: dict[str, str], **extra: Any) -> None:
        await eventually(lambda: awaiting(step_id))
        response = await stack.http.post(
            f"{url}/decisions",
            json={"step_id": step_id, "decision": decision, **extra},
            headers=headers,
        )
        assert response.status_code == 202 and response.json()["accepted"], response.text

    # The responder finds the runbook's command wrong and fixes it; someone else approves.
    fixed = f"touch {spool}/rotate-now {spool}/rotate.ack"
    await decide("s2", "edit", stack.api_headers(), command=fixed)
    await decide("s2", "approve", approver)
    await decide("s3", "skip", stack.api_headers())

    async def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(url, headers=stack.api_headers())).json()
        return body if body["status"] == "succeeded" else None

    done = await eventually(finished)
    edited = done["steps"][1]
    assert edited["command"] == fixed and edited["original_command"] == f"touch {spool}/rotate-now"
    assert edited["duration_seconds"] is not None and edited["edited_by"]
    assert (spool / "rotate.ack").exists() and not (spool / "flushed").exists()

    # Finishing the execution made the suggestion: a diff of the command, nothing else. (The
    # live view can say "succeeded" a moment before the trail records the end, which makes it.)
    async def suggested() -> list[dict[str, Any]]:
        url = f"/runbooks/{runbook_id}/suggestions"
        response = await stack.http.get(url, headers=stack.api_headers())
        found: list[dict[str, Any]] = response.json()
        return found

    listed = await eventually(suggested)
    assert [s["status"] for s in listed] == ["open"]
    suggestion = listed[0]
    (change,) = suggestion["changes"]
    assert (change["kind"], change["step_id"], change["applied"]) == ("extended", "s2", True)
    assert (change["original"], change["edited"], change["times"]) == (
        f"touch {spool}/rotate-now",
        fixed,
        1,
    )
    assert f"-2. Mark the rotation: `touch {spool}/rotate-now`" in suggestion["diff"]
    assert f"+2. Mark the rotation: `{fixed}`" in suggestion["diff"]
    stats = (
        await stack.http.get(f"/runbooks/{runbook_id}/stats", headers=stack.api_headers())
    ).json()
    assert stats["effectiveness"]["success_rate"] == 1.0
    by_step = {s["step_id"]: s for s in stats["steps"]}
    assert (by_step["s2"]["edited"], by_step["s3"]["skipped"]) == (1, 1)
    assert stats["dead_steps"] == []  # one skip is not yet a pattern

    viewer = new_key(engine, stack, "viewer")
    accept_url = f"/runbooks/{runbook_id}/suggestions/{suggestion['id']}/accept"
    assert (await stack.http.post(accept_url, headers=viewer)).status_code == 403
    accepted = await stack.http.post(
        accept_url, json={"reason": "the ack file is needed"}, headers=stack.api_headers()
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["runbook"]["version"] == 2
    assert accepted.json()["suggestion"]["accepted_version"] == 2
    current = (await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())).json()
    assert current["version"] == 2
    assert [s["command"] for s in current["parsed"]["steps"]][1] == fixed
    again = await stack.http.post(accept_url, headers=stack.api_headers())
    assert again.status_code == 409 and "accepted, not open" in again.json()["detail"]


def seed_runs(
    engine: Engine,
    stack: Stack,
    runbook_id: str,
    steps_by_run: list[dict[str, str]],
    *,
    status: str = "succeeded",
) -> list[str]:
    """Finished executions of version 1 with the given step outcomes, oldest first."""
    ids = []
    now = datetime.now(UTC)
    with Session(engine) as session:
        for n, outcomes in enumerate(steps_by_run):
            at = now - timedelta(minutes=len(steps_by_run) - n)
            execution_id = f"ex_{uuid.uuid4().hex[:12]}"
            ids.append(execution_id)
            session.add(
                Execution(
                    id=execution_id,
                    tenant_id=stack.settings.tenant,
                    runbook_id=runbook_id,
                    runbook_version=1,
                    mode="copilot",
                    status=status,
                    environment="test",
                    workflow_started=True,
                    created_at=at,
                    finished_at=at + timedelta(seconds=40),
                )
            )
            session.flush()
            for position, (step_id, outcome) in enumerate(outcomes.items()):
                session.add(
                    ExecutionStep(
                        execution_id=execution_id,
                        step_id=step_id,
                        tenant_id=stack.settings.tenant,
                        position=position,
                        kind="command",
                        text=step_id,
                        status=outcome,
                        started_at=at if outcome == "succeeded" else None,
                        finished_at=at + timedelta(seconds=2 + position),
                    )
                )
        session.commit()
    return ids


async def test_dead_steps_are_found_and_a_dismissed_revision_is_not_suggested_again(
    stack: Stack, engine: Engine
) -> None:
    runbook = await add(stack, RUNBOOK.format(spool="/var/spool/ingest"), "ingest.md")
    runbook_id = runbook["id"]
    ok, skip = "succeeded", "skipped"
    seed_runs(
        engine,
        stack,
        runbook_id,
        [
            {"s1": ok, "s2": ok, "s3": skip},
            {"s1": ok, "s2": skip, "s3": skip},
            {"s1": ok, "s2": ok, "s3": ok},
            {"s1": ok, "s2": ok, "s3": skip},
        ],
    )
    stats = (
        await stack.http.get(f"/runbooks/{runbook_id}/stats", headers=stack.api_headers())
    ).json()
    by_step = {s["step_id"]: s for s in stats["steps"]}
    assert (by_step["s3"]["skip_rate"], by_step["s2"]["skip_rate"]) == (0.75, 0.25)
    assert stats["dead_steps"] == ["s3"]
    assert stats["effectiveness"]["executions"] == 4
    # 100 x success rate 1.0 x (1 - half the mean skip rate (0 + .25 + .75) / 3)
    assert stats["effectiveness"]["score"] == round(100 * (1 - 0.5 * (1 / 3)), 1)

    made = await stack.http.post(f"/runbooks/{runbook_id}/suggestions", headers=stack.api_headers())
    suggestion = made.json()["suggestion"]
    assert [(c["kind"], c["step_id"], c["times"], c["of"]) for c in suggestion["changes"]] == [
        ("skipped", "s3", 3, 4)
    ]
    assert "-3. Flush the old marker: `touch /var/spool/ingest/flushed`" in suggestion["diff"]
    dismissed = await stack.http.post(
        f"/runbooks/{runbook_id}/suggestions/{suggestion['id']}/dismiss",
        json={"reason": "needed after disk swaps"},
        headers=stack.api_headers(),
    )
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    remade = await stack.http.post(
        f"/runbooks/{runbook_id}/suggestions", headers=stack.api_headers()
    )
    assert remade.json()["suggestion"] is None and "nothing to suggest" in remade.json()["message"]


def test_confidence_decays_with_idle_time_failures_and_age() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    policy = learning.LearningPolicy(stale_after_days=90, review_below=0.5)

    def run(status: str) -> Execution:
        return Execution(
            id=status, tenant_id="t", runbook_id="r", runbook_version=1, mode="copilot",
            status=status, environment="e",
        )  # fmt: skip

    fresh = learning.Evidence(executions=[run("succeeded")], last_success_at=now)
    assert (
        learning.confidence(
            evidence=fresh, version_created_at=now - timedelta(days=10), policy=policy, now=now
        )["confidence"]
        == 1.0
    )

    idle = learning.Evidence(
        executions=[run("succeeded")], last_success_at=now - timedelta(days=90)
    )
    decayed = learning.confidence(
        evidence=idle, version_created_at=now - timedelta(days=100), policy=policy, now=now
    )
    assert decayed["confidence"] == 0.5 and not decayed["stale"]
    assert decayed["reasons"] == ["last success 90 days ago"]

    failing = learning.Evidence(
        executions=[run("failed"), run("rolled_back"), run("succeeded")],
        last_success_at=now - timedelta(days=90),
    )
    flagged = learning.confidence(
        evidence=failing, version_created_at=now - timedelta(days=400), policy=policy, now=now
    )
    assert flagged["confidence"] == round(0.5 * 0.8**2 * 0.8, 3) and flagged["stale"]
    assert "2 of the last 3 execution(s) failed or rolled back" in flagged["reasons"]
    assert "current version is 400 days old" in flagged["reasons"]

    never = learning.confidence(
        evidence=learning.Evidence(),
        version_created_at=now - timedelta(days=200),
        policy=policy,
        now=now,
    )
    assert never["stale"] and never["reasons"] == ["never executed successfully in 200 days"]


async def test_an_incident_reports_time_to_first_action_and_to_resolve(
    stack: Stack, engine: Engine
) -> None:
    runbook = await add(stack, RUNBOOK.format(spool="/var/spool/ingest"), "ingest.md")
    (execution_id,) = seed_runs(engine, stack, runbook["id"], [{"s1": "succeeded"}])
    with Session(engine) as session:
        execution = session.get(Execution, execution_id)
        assert execution is not None
        step = session.get(ExecutionStep, (execution_id, "s1"))
        assert step is not None and step.started_at is not None
        opened = step.started_at - timedelta(seconds=45)
        session.add(
            Incident(
                id="inc_resolution",
                tenant_id=stack.settings.tenant,
                dedup_key="k",
                source="generic",
                status="resolved",
                title="Ingest spool full",
                match_status="attached",
                runbook_id=runbook["id"],
                runbook_version=1,
                execution_id=execution_id,
                opened_at=opened,
                last_seen_at=opened,
                resolved_at=opened + timedelta(minutes=12),
            )
        )
        session.commit()
    body = (await stack.http.get("/incidents/inc_resolution", headers=stack.api_headers())).json()
    assert body["resolution"] == {
        "outcome": "succeeded",
        "resolved": True,
        "execution_id": execution_id,
        "first_action_at": body["resolution"]["first_action_at"],
        "time_to_first_action_seconds": 45.0,
        "time_to_resolve_seconds": 720.0,
    }
