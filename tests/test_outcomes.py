"""Graded outcomes (ddoc/trust/outcomes.py) on real rows in the embedded Postgres, the
`resolves_alert` promotion guard they feed, and both through the real stack (API, control worker,
agent, Temporal dev server).

Incidents, executions and steps are inserted as the intake and the trail leave them, with their
timestamps set in the past: that is how these tests let the window and the 24 h go by.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.cli.runbooks import _print_outcomes
from ddoc.platform import tenancy
from ddoc.platform.tables import Execution, ExecutionStep, Incident
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import Mitigation
from ddoc.runbooks.parsing import parse_runbook
from ddoc.trust import levels as trust
from ddoc.trust import outcomes
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RUNBOOK = """# Disk filling up

1. Show the disks: `df -h`
2. Clean the build cache: `rm -rf /var/cache/build/*`
"""


def add_runbook(engine: Engine, tenant_id: str, window: int | None = None) -> str:
    tenancy.bootstrap(engine, tenant_id=tenant_id)
    parsed = parse_runbook(RUNBOOK, "markdown", source_path="disk.md")
    if window is not None:
        parsed = dataclasses.replace(parsed, mitigated_when=Mitigation(within_seconds=window))
    saved = runbooks.store(
        engine,
        tenant_id=tenant_id,
        content=RUNBOOK,
        fmt="markdown",
        parsed=parsed,
        source_path="disk.md",
        actor="test",
    )
    return saved.runbook.id


def incident(
    session: Session,
    tenant_id: str,
    *,
    opened: datetime,
    resolved: datetime | None = None,
    key: str = "disk-web-1",
    digest: str | None = "fp-disk",
) -> str:
    row = Incident(
        id=f"inc_{uuid.uuid4().hex[:12]}",
        tenant_id=tenant_id,
        dedup_key=key,
        source="alertmanager",
        status="resolved" if resolved else "open",
        title="Disk filling up on web-1",
        match_status="attached",
        fingerprint={"source": "alertmanager", "title": "Disk filling up", "digest": digest}
        if digest
        else None,
        opened_at=opened,
        last_seen_at=resolved or opened,
        resolved_at=resolved,
    )
    session.add(row)
    session.flush()  # before the executions that name it
    return row.id


def execution(
    session: Session,
    tenant_id: str,
    runbook_id: str,
    *,
    finished: datetime | None,
    incident_id: str | None,
    mode: str = "copilot",
    status: str = "succeeded",
    steps: list[dict[str, Any]] | None = None,
) -> str:
    row = Execution(
        id=f"ex_{uuid.uuid4().hex[:12]}",
        tenant_id=tenant_id,
        incident_id=incident_id,
        runbook_id=runbook_id,
        runbook_version=1,
        mode=mode,
        status=status,
        environment="test",
        workflow_started=True,
        created_at=(finished or NOW) - timedelta(minutes=2),
        finished_at=finished,
    )
    session.add(row)
    session.flush()
    for n, step in enumerate(steps or []):
        session.add(
            ExecutionStep(
                execution_id=row.id,
                step_id=f"s{n + 1}",
                tenant_id=tenant_id,
                position=n,
                kind="command",
                text=f"step {n + 1}",
                **{"status": "succeeded", **step},
            )
        )
    return row.id


def decision(kind: str, *, accepted: bool = True, source: str = "api") -> dict[str, Any]:
    return {
        "decision": kind,
        "user_id": "u_1" if source != "temporal" else "temporal",
        "display_name": "Dana",
        "source": source,
        "at": NOW.isoformat(),
        "accepted": accepted,
    }


def test_each_grade_from_the_stored_rows(engine: Engine, tenant_id: str) -> None:
    runbook_id = add_runbook(engine, tenant_id, window=600)
    other_tenant = f"{tenant_id}-other"
    tenancy.bootstrap(engine, tenant_id=other_tenant)
    hour, day = timedelta(hours=1), timedelta(hours=24)
    with Session(engine) as s:

        def run(opened: datetime, finished: datetime, resolved: datetime | None, **kw: Any) -> str:
            kw.setdefault("digest", f"fp-{kw['key']}")
            inc = incident(s, tenant_id, opened=opened, resolved=resolved, **kw)
            return execution(s, tenant_id, runbook_id, finished=finished, incident_id=inc)

        t0 = NOW - 10 * day
        # Resolved 5 min after the run, nothing since: mitigated (24 h long over).
        mitigated = run(t0, t0 + hour, t0 + hour + timedelta(minutes=5), key="a")
        # Resolved before the run finished, the same alert back 2 h later: recurred.
        t1 = t0 + day
        recurred = run(t1, t1 + hour, t1 + hour - timedelta(minutes=1), key="b")
        back = incident(
            s, tenant_id, opened=t1 + 3 * hour, resolved=t1 + 4 * hour, key="b", digest=None
        )
        # Another dedup key, the same fingerprint, 23 h later: recurred too.
        t2 = t0 + 3 * day
        by_fingerprint = run(t2, t2 + hour, t2 + hour + timedelta(minutes=5), key="c")
        twin = incident(s, tenant_id, opened=t2 + 25 * hour, key="c-other", digest="fp-c")
        # Resolved 20 min after: outside the 600 s window.
        t3 = t0 + 5 * day
        late = run(t3, t3 + hour, t3 + hour + timedelta(minutes=20), key="d")
        # Never resolved.
        never = run(t3, t3 + 2 * hour, None, key="e", digest=None)
        # The same key again, but 25 h after the resolution: still mitigated.
        t4 = t0 + 6 * day
        stayed = run(t4, t4 + hour, t4 + hour, key="f", digest=None)
        incident(s, tenant_id, opened=t4 + 26 * hour, key="f", digest=None)
        # Another tenant's incident with the same key, within 24 h: not ours.
        t5 = t0 + 7 * day
        isolated = run(t5, t5 + hour, t5 + hour, key="g", digest=None)
        incident(s, other_tenant, opened=t5 + 2 * hour, key="g", digest=None)
        # Finished a minute ago, not resolved yet: pending its resolution.
        waiting = run(NOW - hour, NOW - timedelta(minutes=1), None, key="h")
        # Resolved an hour ago: pending, watching for a recurrence.
        watching = run(NOW - 3 * hour, NOW - hour - timedelta(minutes=1), NOW - hour, key="i")
        # Not graded: started by hand, a rehearsal, still running.
        execution(s, tenant_id, runbook_id, finished=NOW - day, incident_id=None)
        rehearsal = incident(s, tenant_id, opened=t0, key="j")
        execution(s, tenant_id, runbook_id, finished=t0, incident_id=rehearsal, mode="read_along")
        execution(s, tenant_id, runbook_id, finished=None, incident_id=rehearsal, status="running")
        s.commit()

        runbook = runbooks.get(s, tenant_id=tenant_id, runbook_id=runbook_id)
        view = outcomes.outcomes(s, runbook=runbook, now=NOW)

    assert view.window_seconds == 600
    by_id = {o.execution_id: o for o in view.recent}
    assert [o.execution_id for o in view.recent] == [
        waiting,
        watching,
        isolated,
        stayed,
        never,
        late,
        by_fingerprint,
        recurred,
        mitigated,
    ]
    named = {
        "mitigated": mitigated,
        "recurred": recurred,
        "by_fingerprint": by_fingerprint,
        "late": late,
        "never": never,
        "stayed": stayed,
        "isolated": isolated,
        "waiting": waiting,
        "watching": watching,
    }
    grades = {name: by_id[e].grade for name, e in named.items()}
    assert grades == {
        "mitigated": "mitigated",
        "recurred": "recurred",
        "by_fingerprint": "recurred",
        "late": "not_resolved",
        "never": "not_resolved",
        "stayed": "mitigated",
        "isolated": "mitigated",
        "waiting": "pending",
        "watching": "pending",
    }
    assert by_id[recurred].recurred_incident_id == back and by_id[recurred].resolved
    assert by_id[by_fingerprint].recurred_incident_id == twin
    assert not by_id[late].resolved and by_id[late].resolved_at is not None
    assert (by_id[waiting].waiting_for, by_id[waiting].until) == (
        "resolution",
        NOW - timedelta(minutes=1) + timedelta(seconds=600),
    )
    assert (by_id[watching].waiting_for, by_id[watching].until) == ("recurrence", NOW - hour + day)
    assert by_id[watching].resolved and by_id[mitigated].waiting_for is None
    assert view.counts == {"mitigated": 3, "recurred": 2, "not_resolved": 2, "pending": 2}
    assert view.overridden == 0

    # Read again a day later: the pending ones are graded, nothing was stored in between.
    with Session(engine) as s:
        runbook = runbooks.get(s, tenant_id=tenant_id, runbook_id=runbook_id)
        later = outcomes.outcomes(s, runbook=runbook, now=NOW + day)
    assert {o.execution_id: o.grade for o in later.recent}[waiting] == "not_resolved"
    assert {o.execution_id: o.grade for o in later.recent}[watching] == "mitigated"


def test_overrides_read_from_decisions_edits_and_statuses(engine: Engine, tenant_id: str) -> None:
    runbook_id = add_runbook(engine, tenant_id)  # no mitigated_when: 1800 s
    at = NOW - timedelta(days=3)
    with Session(engine) as s:

        def run(status: str, steps: list[dict[str, Any]]) -> str:
            inc = incident(s, tenant_id, opened=at, resolved=at + timedelta(minutes=10))
            return execution(
                s, tenant_id, runbook_id, finished=at, incident_id=inc, status=status, steps=steps
            )

        clean = run("succeeded", [{"decisions": [decision("approve")]}, {}])
        edited = run(
            "succeeded",
            [
                {"edited_by": "u_1", "original_command": "df", "decisions": [decision("edit")]},
                {"status": "skipped", "decisions": [decision("skip")]},
            ],
        )
        refused = run(
            "succeeded",
            [{"decisions": [decision("reject", accepted=False), decision("approve")]}],
        )
        rolled_back = run(
            "rolled_back", [{"status": "rolled_back"}, {"decisions": [decision("rollback")]}]
        )
        # Cancelled through Temporal (no human decision on a step), still a stop.
        cancelled = run("aborted", [{"decisions": [decision("abort", source="temporal")]}])
        # Skipped by the walk ("branch not taken"), not by a person.
        walked = run("succeeded", [{}, {"status": "skipped"}])
        s.commit()
        runbook = runbooks.get(s, tenant_id=tenant_id, runbook_id=runbook_id)
        view = outcomes.outcomes(s, runbook=runbook, now=NOW)

    assert view.window_seconds == outcomes.DEFAULT_WINDOW == 1800
    reasons = {o.execution_id: o.reasons for o in view.recent}
    assert reasons == {
        clean: [],
        edited: ["edited s1", "skipped s2"],
        refused: [],
        rolled_back: ["rolled back at s2"],
        cancelled: ["aborted"],
        walked: [],
    }
    assert {o.execution_id for o in view.recent if o.overridden} == {
        edited,
        rolled_back,
        cancelled,
    }
    assert view.overridden == 3
    assert view.counts["mitigated"] == 6


def test_many_runs_list_the_recent_and_count_them_all(engine: Engine, tenant_id: str) -> None:
    runbook_id = add_runbook(engine, tenant_id)
    start = NOW - timedelta(days=30)
    with Session(engine) as s:
        for n in range(400):
            at = start + timedelta(minutes=n)
            resolved = at if n % 4 else None
            inc = incident(s, tenant_id, opened=at, resolved=resolved, key=f"k{n}", digest=None)
            steps = [{"edited_by": "u_1"}] if n % 10 == 0 else []
            execution(s, tenant_id, runbook_id, finished=at, incident_id=inc, steps=steps)
        s.commit()
        runbook = runbooks.get(s, tenant_id=tenant_id, runbook_id=runbook_id)
        view = outcomes.outcomes(s, runbook=runbook, now=NOW)
    assert len(view.recent) == outcomes.RECENT == 50
    assert view.recent[0].finished_at == start + timedelta(minutes=399)
    assert view.counts == {"mitigated": 300, "recurred": 0, "not_resolved": 100, "pending": 0}
    assert view.overridden == 40


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0.8, True), (0, True), (1, True), (0.0, True), (1.5, False), (-0.1, False), (True, False)],
)
def test_the_resolved_ratio_is_a_number_from_0_to_1(value: Any, ok: bool) -> None:
    if ok:
        assert trust.validate({"autopilot_min_resolved_ratio": value})
        assert trust.trust_policy({"trust_policy": {"autopilot_min_resolved_ratio": value}})
    else:
        with pytest.raises(trust.TrustError, match="between 0 and 1"):
            trust.validate({"autopilot_min_resolved_ratio": value})
    with pytest.raises(trust.TrustError, match="whole number"):
        trust.validate({"autopilot_min_successes": 0.5})


def _guard(engine: Engine, tenant_id: str, runbook_id: str, **policy: Any) -> trust.Guard:
    with Session(engine) as s:
        runbook = runbooks.get(s, tenant_id=tenant_id, runbook_id=runbook_id)
        found = trust.guards(
            s,
            runbook=runbook,
            target=trust.ExecutionMode.AUTOPILOT,
            policy=trust.TrustPolicy(**policy),
        )
    return next(g for g in found if g.name == "resolves_alert")


def test_the_guard_weighs_graded_runs_only(engine: Engine, tenant_id: str) -> None:
    runbook_id = add_runbook(engine, tenant_id)
    with Session(engine) as s:
        execution(s, tenant_id, runbook_id, finished=NOW, incident_id=None)  # by hand
        s.commit()
    nothing = _guard(engine, tenant_id, runbook_id)
    assert nothing.passed and nothing.detail == "no alert-started runs to grade"

    # Alert-started, resolved minutes ago: pending its 24 h, so not weighed yet, and refused.
    now = datetime.now(UTC)
    with Session(engine) as s:
        inc = incident(s, tenant_id, opened=now - timedelta(hours=1), resolved=now)
        execution(s, tenant_id, runbook_id, finished=now, incident_id=inc)
        s.commit()
    pending = _guard(engine, tenant_id, runbook_id)
    assert not pending.passed and "not graded yet" in pending.detail
    assert pending.evidence["pending"] == 1
    assert _guard(engine, tenant_id, runbook_id, autopilot_min_resolved_ratio=0).passed

    # Four mitigated, one not resolved: 80 % passes, 90 % does not.
    old = now - timedelta(days=5)
    with Session(engine) as s:
        for n in range(5):
            inc = incident(
                s, tenant_id, opened=old, resolved=old if n else None, key=f"x{n}", digest=None
            )
            execution(s, tenant_id, runbook_id, finished=old, incident_id=inc)
        s.commit()
    passed = _guard(engine, tenant_id, runbook_id)
    assert passed.passed, passed.detail
    assert passed.evidence["graded"] == 5 and passed.evidence["mitigated"] == 4
    strict = _guard(engine, tenant_id, runbook_id, autopilot_min_resolved_ratio=0.9)
    assert not strict.passed
    assert strict.detail == (
        "needs 90% of the graded alert-started runs to resolve their alert for 24 h, "
        "has 4 of 5 (1 not resolved, 0 recurred)"
    )


# --- through the real API, control worker, agent and Temporal ------------------------------

GREEN_RUNBOOK = """---
title: Queue backlog growing
alerts: [QueueBacklogGrowing]
---
# Queue backlog growing

1. Show the queue depth: `echo depth=42`
"""


def backlog(status: str = "firing") -> dict[str, Any]:
    alert = am_alert(
        "QueueBacklogGrowing", fingerprint="9f8e7d6c5b4a3921", queue="orders", status=status
    )
    return dict(alertmanager_v4(alert, status=status))


async def graded_run(stack: Stack, runbook_id: str, execution_id: str) -> dict[str, Any]:
    response = await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())
    assert response.status_code == 200, response.text
    runs = {o["execution_id"]: o for o in response.json()["outcomes"]["recent"]}
    return runs.get(execution_id) or {}


async def test_an_alert_run_is_graded_as_it_resolves_and_recurs(
    stack: Stack, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    added = await stack.http.post(
        "/runbooks",
        json={"content": GREEN_RUNBOOK, "source_path": "queues/backlog.md"},
        headers=stack.api_headers(),
    )
    assert added.status_code == 201, added.text
    runbook_id = added.json()["id"]
    assert added.json()["outcomes"] is None  # only GET /runbooks/{id} grades

    fired = await stack.http.post(
        "/webhooks/alertmanager", json=backlog(), headers=stack.webhook_headers()
    )
    assert fired.status_code == 202, fired.text
    [first] = fired.json()["alerts"]
    assert first["status"] == "started"
    execution_id = first["execution_id"]

    # The green step runs by itself; the run is over, the alert still firing: pending.
    async def finished() -> dict[str, Any] | None:
        run = await graded_run(stack, runbook_id, execution_id)
        return run if run.get("waiting_for") == "resolution" else None

    run = await eventually(finished, within=30)
    assert (run["grade"], run["resolved"], run["mode"], run["status"]) == (
        "pending",
        False,
        "copilot",
        "succeeded",
    )
    assert run["incident_id"] == first["incident_id"] and not run["overridden"]

    # The resolved alert arrives: resolved in the window, watched 24 h for a recurrence.
    resolved = await stack.http.post(
        "/webhooks/alertmanager", json=backlog("resolved"), headers=stack.webhook_headers()
    )
    assert resolved.status_code == 202, resolved.text
    run = await graded_run(stack, runbook_id, execution_id)
    assert (run["grade"], run["waiting_for"], run["resolved"]) == ("pending", "recurrence", True)
    assert run["resolved_at"] is not None
    shown = (await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())).json()
    assert shown["outcomes"]["window_seconds"] == 1800  # no mitigated_when: the default
    assert shown["outcomes"]["counts"] == {
        "mitigated": 0,
        "recurred": 0,
        "not_resolved": 0,
        "pending": 1,
    }

    # The same alert fires again after the resolution: a new incident, and the first run
    # recurred.
    again = await stack.http.post(
        "/webhooks/alertmanager", json=backlog(), headers=stack.webhook_headers()
    )
    [second] = again.json()["alerts"]
    assert second["status"] == "started" and second["incident_id"] != first["incident_id"]
    run = await graded_run(stack, runbook_id, execution_id)
    assert run["grade"] == "recurred"
    assert run["recurred_incident_id"] == second["incident_id"]

    # The trust page and the console show it; the CLI prints it.
    trust_state = (
        await stack.http.get(f"/runbooks/{runbook_id}/trust", headers=stack.api_headers())
    ).json()
    guard = next(g for g in trust_state["guards"] if g["name"] == "resolves_alert")
    assert not guard["passed"] and guard["evidence"]["recurred"] == 1
    page = await stack.http.get(f"/ui/runbooks/{runbook_id}", headers=stack.api_headers())
    assert page.status_code == 200
    assert 'id="outcomes"' in page.text and f'href="/ui/incidents/{second["incident_id"]}"' in (
        page.text
    )
    shown = (await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())).json()
    _print_outcomes(shown["outcomes"])
    printed = capsys.readouterr().out
    assert "1 recurred" in printed and f"recurred as {second['incident_id']}" in printed

    # Simulated time: move the first run and its incident a day and an hour into the past, so
    # the second firing came 25 h after the resolution, outside the 24 h: mitigated.
    with engine.begin() as conn:
        shift = {"by": timedelta(hours=25), "incident": first["incident_id"]}
        conn.execute(
            text(
                "UPDATE incidents SET opened_at = opened_at - :by, resolved_at = resolved_at - :by,"
                " last_seen_at = last_seen_at - :by WHERE id = :incident"
            ),
            shift,
        )
        conn.execute(
            text(
                "UPDATE executions SET created_at = created_at - :by,"
                " finished_at = finished_at - :by WHERE incident_id = :incident"
            ),
            shift,
        )
    run = await graded_run(stack, runbook_id, execution_id)
    assert (run["grade"], run["recurred_incident_id"], run["waiting_for"]) == (
        "mitigated",
        None,
        None,
    )


async def test_successful_runs_that_do_not_resolve_their_alert_stay_off_autopilot(
    stack: Stack, engine: Engine
) -> None:
    added = await stack.http.post(
        "/runbooks",
        json={"content": GREEN_RUNBOOK, "source_path": "queues/backlog.md"},
        headers=stack.api_headers(),
    )
    runbook_id = added.json()["id"]
    tenant_id = stack.settings.tenant
    # Ten successful copilot runs, two days ago, for alerts that kept firing.
    opened = datetime.now(UTC) - timedelta(days=2)
    incidents = []
    with Session(engine) as s:
        for n in range(10):
            inc = incident(s, tenant_id, opened=opened, key=f"backlog-{n}", digest=None)
            execution(s, tenant_id, runbook_id, finished=opened, incident_id=inc)
            incidents.append(inc)
        s.commit()

    refused = await stack.http.post(
        f"/runbooks/{runbook_id}/trust",
        json={"level": "autopilot", "reason": "ten green runs"},
        headers=stack.api_headers(),
    )
    assert refused.status_code == 409, refused.text
    assert [g["name"] for g in refused.json()["guards"] if not g["passed"]] == ["resolves_alert"]
    assert "has 0 of 10 (10 not resolved, 0 recurred)" in refused.json()["detail"]

    # The alerts had in fact resolved within minutes (recorded late, say): 8 of 10 is enough.
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE incidents SET status = 'resolved', resolved_at = opened_at"
                " + interval '5 minutes' WHERE id = ANY(:ids)"
            ),
            {"ids": incidents[:8]},
        )
    promoted = await stack.http.post(
        f"/runbooks/{runbook_id}/trust",
        json={"level": "autopilot", "reason": "they resolve their alert"},
        headers=stack.api_headers(),
    )
    assert promoted.status_code == 200, promoted.text
    guard = next(g for g in promoted.json()["guards"] if g["name"] == "resolves_alert")
    assert guard["passed"] and guard["evidence"]["mitigated"] == 8
