"""Progressive trust over the API: each promotion guard refuses with its reason and accepts once
its evidence is there; `force` is audited; a failed autopilot execution demotes its runbook."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from ddoc.platform.tables import AuditEvent, Execution
from tests.conftest import Stack, eventually
from tests.test_executions_api import new_key

RED_RUNBOOK = """# Drop the session cache

1. Count the rows: `psql -c 'select count(*) from sessions_cache'`
2. Drop the table: `psql -c 'DROP TABLE sessions_cache'`
"""
# The same runbook, with a way back from its red step.
RED_RUNBOOK_WITH_ROLLBACK = (
    RED_RUNBOOK + "\n## Rollback\n\n- Undo step 2: `psql -f /backups/sessions_cache.sql`\n"
)


async def add(stack: Stack, content: str, source_path: str = "cache.md") -> str:
    response = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": source_path},
        headers=stack.api_headers(),
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def seed(engine: Engine, stack: Stack, runbook_id: str, mode: str, *statuses: str) -> None:
    """Past executions of the runbook, oldest first (as the engine leaves them when done)."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        for n, status in enumerate(statuses):
            at = now - timedelta(microseconds=len(statuses) - n)
            session.add(
                Execution(
                    id=f"ex_{uuid.uuid4().hex[:12]}",
                    tenant_id=stack.settings.tenant,
                    runbook_id=runbook_id,
                    runbook_version=1,
                    mode=mode,
                    status=status,
                    environment="test",
                    workflow_started=True,
                    created_at=at,
                    finished_at=at,
                )
            )
        session.commit()


async def set_trust(
    stack: Stack, runbook_id: str, level: str, headers: dict[str, str] | None = None, **body: Any
) -> Any:
    return await stack.http.post(
        f"/runbooks/{runbook_id}/trust",
        json={"level": level, "reason": "evidence reviewed", **body},
        headers=headers or stack.api_headers(),
    )


async def test_each_promotion_guard_refuses_with_its_reason_then_accepts(
    stack: Stack, engine: Engine
) -> None:
    runbook_id = await add(stack, RED_RUNBOOK)
    await set_trust(stack, runbook_id, "read_along")  # a demotion needs no evidence

    # read_along -> copilot: 3 completed rehearsals (read-along or dry run).
    seed(engine, stack, runbook_id, "read_along", "succeeded", "aborted")
    seed(engine, stack, runbook_id, "dry_run", "succeeded")
    refused = await set_trust(stack, runbook_id, "copilot")
    assert refused.status_code == 409
    assert "needs 3 completed read-along or dry-run executions, has 2" in refused.json()["detail"]
    assert [g["name"] for g in refused.json()["guards"] if not g["passed"]] == ["rehearsals"]
    seed(engine, stack, runbook_id, "dry_run", "succeeded")
    promoted = await set_trust(stack, runbook_id, "copilot")
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["trust_level"], promoted.json()["kind"]) == ("copilot", "promoted")

    # copilot -> autopilot: 10 successes, a clean last 10, a rollback for every red step.
    seed(engine, stack, runbook_id, "copilot", *["succeeded"] * 6, "rolled_back", "succeeded")
    refused = await set_trust(stack, runbook_id, "autopilot")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "needs 10 successful copilot executions, has 7" in detail
    assert "(rolled_back)" in detail and "may have failed or rolled back" in detail
    assert "has none for step(s) s2" in detail
    failed = {g["name"] for g in refused.json()["guards"] if not g["passed"]}
    assert failed == {"successes", "clean_window", "red_rollbacks"}

    seed(engine, stack, runbook_id, "copilot", *["succeeded"] * 9)  # pushes the rollback out
    refused = await set_trust(stack, runbook_id, "autopilot")
    assert [g["name"] for g in refused.json()["guards"] if not g["passed"]] == ["red_rollbacks"]
    await add(stack, RED_RUNBOOK_WITH_ROLLBACK)  # the next version, same source path
    promoted = await set_trust(stack, runbook_id, "autopilot")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["trust_level"] == "autopilot"
    shown = await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())
    assert shown.json()["trust_level"] == "autopilot"

    state = (
        await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
    ).json()
    assert state["next_level"] is None
    assert [(c["from"], c["to"], c["kind"]) for c in state["history"]] == [
        ("copilot", "read_along", "demoted"),
        ("read_along", "copilot", "promoted"),
        ("copilot", "autopilot", "promoted"),
    ]


async def test_force_overrides_and_is_audited_and_only_admins_change_trust(
    stack: Stack, engine: Engine
) -> None:
    runbook_id = await add(stack, RED_RUNBOOK)
    approver = new_key(engine, stack, "approver")
    denied = await set_trust(stack, runbook_id, "autopilot", approver, force=True)
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    blank = await stack.http.post(
        f"/runbooks/{runbook_id}/trust",
        json={"level": "autopilot", "force": True},
        headers=stack.api_headers(),
    )
    assert blank.status_code == 422
    spaces = await set_trust(stack, runbook_id, "autopilot", reason="   ", force=True)
    assert spaces.status_code == 422 and "reason" in spaces.json()["detail"]
    unknown = await set_trust(stack, runbook_id, "yolo")
    assert unknown.status_code == 422
    missing = await set_trust(stack, "rb_nope", "copilot")
    assert missing.status_code == 404

    forced = await set_trust(
        stack, runbook_id, "autopilot", force=True, reason="SRE lead signed off, INC-42"
    )
    assert forced.status_code == 200, forced.text
    assert (forced.json()["trust_level"], forced.json()["kind"]) == ("autopilot", "forced")
    same = await set_trust(stack, runbook_id, "autopilot")
    assert (same.status_code, same.json()["changed"]) == (200, False)
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(
                AuditEvent.tenant_id == stack.settings.tenant, AuditEvent.action == "trust.forced"
            )
        ).one()
    assert event.subject == runbook_id
    assert event.data["reason"] == "SRE lead signed off, INC-42"
    assert set(event.data["overridden_guards"]) == {"successes", "red_rollbacks"}
    assert (event.data["from"], event.data["to"]) == ("copilot", "autopilot")
    assert event.data["origin"]["source"] == "api" and event.data["origin"]["ip"] == "127.0.0.1"
    history = (
        await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
    ).json()["history"]
    assert history[-1]["kind"] == "forced"
    assert set(history[-1]["overridden_guards"]) == {"successes", "red_rollbacks"}


async def test_tenant_guards_are_configurable(stack: Stack, engine: Engine) -> None:
    runbook_id = await add(stack, RED_RUNBOOK)
    bad = await stack.http.patch(
        "/settings",
        json={"trust_policy": {"autopilot_min_successes": "ten"}},
        headers=stack.api_headers(),
    )
    assert bad.status_code == 422 and "autopilot_min_successes" in bad.json()["detail"]
    changed = await stack.http.patch(
        "/settings",
        json={
            "trust_policy": {
                "autopilot_min_successes": 2,
                "autopilot_clean_window": 3,
                "autopilot_requires_red_rollbacks": False,
            }
        },
        headers=stack.api_headers(),
    )
    assert changed.status_code == 200, changed.text
    seed(engine, stack, runbook_id, "copilot", "succeeded")
    refused = await set_trust(stack, runbook_id, "autopilot")
    assert "needs 2 successful copilot executions, has 1" in refused.json()["detail"]
    seed(engine, stack, runbook_id, "copilot", "succeeded")
    assert (await set_trust(stack, runbook_id, "autopilot")).status_code == 200


FAILING_RUNBOOK = """# Restart the exporter

1. Write the restart marker: `touch {missing}/restart-marker`
"""


async def test_a_failed_autopilot_execution_demotes_its_runbook(
    stack: Stack, engine: Engine, tmp_path: Path
) -> None:
    runbook_id = await add(
        stack, FAILING_RUNBOOK.format(missing=tmp_path / "no-such-dir"), "exporter.md"
    )
    forced = await set_trust(stack, runbook_id, "autopilot", force=True, reason="trial")
    assert forced.status_code == 200
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
    )
    assert started.status_code == 201, started.text
    assert started.json()["mode"] == "autopilot"  # the runbook's trust level
    execution_id = started.json()["id"]

    async def demoted() -> dict[str, Any] | None:
        response = await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())
        body: dict[str, Any] = response.json()
        return body if body["trust_level"] == "copilot" else None

    await eventually(demoted)
    execution = (
        await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
    ).json()
    assert execution["status"] == "failed"
    state = (
        await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
    ).json()
    last = state["history"][-1]
    assert (last["from"], last["to"], last["kind"], last["actor"]) == (
        "autopilot",
        "copilot",
        "auto_demoted",
        "workflow",
    )
    assert last["execution_id"] == execution_id and "failed" in last["reason"]
    events = (
        await stack.http.get(f"/executions/{execution_id}/events", headers=stack.api_headers())
    ).json()
    notice = next(e for e in events if e["type"] == "trust_demoted")
    assert notice["data"]["runbook_id"] == runbook_id and notice["data"]["to"] == "copilot"
    # The next execution of the runbook asks before it runs.
    again = await stack.http.post(
        "/executions", json={"runbook_id": runbook_id}, headers=stack.api_headers()
    )
    assert again.json()["mode"] == "copilot"
