"""Blast-radius limits and the circuit breaker (docs/LIMITS.md) without Temporal's time skipping:
the settings' validation, the pure start rule, the counts and the breaker on the real
PostgreSQL, the API and the Slack rendering. End to end through intake: tests/test_blast_radius.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from ddoc.execution import limits
from ddoc.platform import tenancy
from ddoc.platform.tables import AuditEvent, Execution
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.slack import render
from ddoc.trust import breaker
from tests.conftest import Stack
from tests.engine_harness import cmd
from tests.test_executions_api import new_key
from tests.test_slack_render import buttons, event, incident, mrkdwn_texts, waiting_execution

A, C = ExecutionMode.AUTOPILOT, ExecutionMode.COPILOT


# --- settings -------------------------------------------------------------------------------------


def test_defaults_and_overrides() -> None:
    assert limits.effective({}).shown() == {
        "max_concurrent_per_runbook": 5,
        "max_concurrent_per_service": 10,
        "max_runs_per_hour": {"autopilot": 6, "copilot": 20},
        "production_environments": ["production", "prod", "prd"],
        "breaker": {"failures": 3, "window_minutes": 60},
        "owner_level": 1,
    }
    settings = {
        "blast_radius": {
            "max_runs_per_hour": {"autopilot": 2},
            "breaker": {"failures": 5},
            "runbooks": {"rb_1": {"max_runs_per_hour": {"copilot": 1}, "owner_level": 2}},
        }
    }
    tenant = limits.effective(settings, "rb_other")
    assert tenant.max_runs_per_hour == {"autopilot": 2, "copilot": 20}
    assert (tenant.breaker_failures, tenant.breaker_window_minutes) == (5, 60)
    one = limits.effective(settings, "rb_1")
    assert one.max_runs_per_hour == {"autopilot": 2, "copilot": 1}  # merged, key by key
    assert one.owner_level == 2 and one.breaker_failures == 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_concurrent": 3}, "unknown blast_radius keys: max_concurrent"),
        ({"max_concurrent_per_runbook": -1}, "max_concurrent_per_runbook must be a whole number"),
        ({"max_concurrent_per_service": True}, "max_concurrent_per_service must be a whole"),
        ({"max_runs_per_hour": {"yolo": 3}}, "unknown mode 'yolo'"),
        ({"max_runs_per_hour": {"autopilot": 1.5}}, "max_runs_per_hour.autopilot must be"),
        ({"production_environments": "prod"}, "must be a list of environment names"),
        ({"breaker": {"failures": 0}}, "breaker.failures must be a whole number between 1"),
        ({"breaker": {"minutes": 5}}, "breaker takes failures and window_minutes"),
        ({"owner_level": 0}, "owner_level must be a whole number between 1"),
        ({"runbooks": {"rb_1": {"nope": 1}}}, "unknown blast_radius.runbooks.rb_1 keys: nope"),
        ({"runbooks": {"rb_1": {"runbooks": {}}}}, "unknown blast_radius.runbooks.rb_1 keys"),
        ({"runbooks": []}, "blast_radius.runbooks must be an object"),
    ],
)
def test_validation_names_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(limits.LimitsError) as err:
        limits.validate(raw)
    assert message in str(err.value)


def test_a_full_setting_validates() -> None:
    raw = {
        "max_concurrent_per_runbook": 2,
        "max_concurrent_per_service": 4,
        "max_runs_per_hour": {"autopilot": 0, "copilot": 5},
        "production_environments": ["live"],
        "breaker": {"failures": 2, "window_minutes": 30},
        "owner_level": 2,
        "runbooks": {"rb_1": {"max_concurrent_per_runbook": 1}},
    }
    assert limits.validate(raw) is raw


# --- the start rule (pure) ------------------------------------------------------------------------


def usage(runbook: int = 0, service: int = 0, **hourly: int) -> limits.Usage:
    return limits.Usage(running_runbook=runbook, running_service=service, runs_last_hour=hourly)


def test_production_and_the_breaker_turn_autopilot_into_copilot() -> None:
    rules = limits.Limits()
    prod = limits.decide(rules, mode=A, environment="Prod", usage=None, breaker_open=False)
    assert prod.mode == C and prod.reasons == [
        "production requires a human: environment 'Prod' runs copilot"
    ]
    staging = limits.decide(rules, mode=A, environment="staging", usage=None, breaker_open=False)
    assert staging.mode == A and not staging.downgraded
    opened = limits.decide(rules, mode=A, environment="staging", usage=None, breaker_open=True)
    assert opened.mode == C and "circuit breaker open" in opened.reasons[0]
    # Copilot and read-along are left as they are.
    assert limits.decide(rules, mode=C, environment="prod", usage=None, breaker_open=True).mode == C


def test_count_limits_refuse_with_the_limit() -> None:
    rules = limits.Limits(max_runs_per_hour={"autopilot": 2, "copilot": 3})
    ok = limits.decide(
        rules, mode=A, environment="s", usage=usage(4, 9, autopilot=1), breaker_open=False
    )
    assert ok.refused is None
    busy = limits.decide(rules, mode=A, environment="s", usage=usage(5), breaker_open=False)
    assert busy.refused == "limit reached: 5 executions of this runbook running (limit 5)"
    assert busy.limit == "max_concurrent_per_runbook" and busy.limit_value == 5
    service = limits.decide(
        rules, mode=A, environment="s", usage=usage(0, 10), breaker_open=False, service="web"
    )
    assert service.refused == "limit reached: 10 executions for service 'web' running (limit 10)"
    hourly = limits.decide(
        rules, mode=A, environment="s", usage=usage(autopilot=2), breaker_open=False
    )
    assert (
        hourly.refused
        == "limit reached: 2 autopilot runs of this runbook in the last hour (limit 2)"
    )
    # Downgraded to copilot: the copilot count applies.
    prod = limits.decide(
        rules, mode=A, environment="prod", usage=usage(autopilot=2, copilot=2), breaker_open=False
    )
    assert prod.mode == C and prod.refused is None
    prod_full = limits.decide(
        rules, mode=A, environment="prod", usage=usage(copilot=3), breaker_open=False
    )
    assert prod_full.refused is not None and prod_full.limit == "max_runs_per_hour.copilot"
    # A mode without an hourly limit is not counted.
    assert (
        limits.decide(
            rules,
            mode=ExecutionMode.READ_ALONG,
            environment="s",
            usage=usage(read_along=99),
            breaker_open=False,
        ).refused
        is None
    )


# --- counts and the breaker on the database -------------------------------------------------------


def a_runbook(engine: Engine, tenant_id: str) -> str:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        saved = runbooks.save(
            session,
            tenant_id=tenant_id,
            content=f"# r {uuid.uuid4().hex}",
            fmt="markdown",
            parsed=ParsedRunbook(title="R", summary="", steps=[cmd("s1", "true", "green")]),
            source_path=None,
            actor="test",
        )
        session.commit()
        return saved.runbook.id


def seed(
    engine: Engine,
    tenant_id: str,
    runbook_id: str,
    mode: str,
    status: str,
    *,
    ago: timedelta = timedelta(0),
    incident_service: str | None = None,
) -> str:
    at = datetime.now(UTC) - ago
    execution_id = f"ex_{uuid.uuid4().hex[:12]}"
    with Session(engine) as session:
        incident_id = None
        if incident_service:
            incident_id = f"inc_{uuid.uuid4().hex[:10]}"
            session.execute(
                text(
                    "INSERT INTO incidents (id, tenant_id, dedup_key, source, status, title,"
                    " service, match_status) VALUES (:id, :tenant, :key, 'test', 'open', 't',"
                    " :service, 'attached')"
                ),
                {
                    "id": incident_id,
                    "tenant": tenant_id,
                    "key": incident_id,
                    "service": incident_service,
                },
            )
        session.add(
            Execution(
                id=execution_id,
                tenant_id=tenant_id,
                incident_id=incident_id,
                runbook_id=runbook_id,
                runbook_version=1,
                mode=mode,
                status=status,
                environment="test",
                workflow_started=True,
                created_at=at,
                finished_at=None if status in limits.ACTIVE_STATUSES else at,
            )
        )
        session.commit()
    return execution_id


def test_usage_counts_active_executions_and_the_last_hour_by_mode(
    engine: Engine, tenant_id: str
) -> None:
    runbook_id = a_runbook(engine, tenant_id)
    other = a_runbook(engine, tenant_id)
    seed(engine, tenant_id, runbook_id, "autopilot", "running", incident_service="web")
    seed(engine, tenant_id, runbook_id, "autopilot", "awaiting_human")
    seed(engine, tenant_id, runbook_id, "copilot", "stalled")
    seed(engine, tenant_id, runbook_id, "copilot", "succeeded")
    seed(engine, tenant_id, runbook_id, "autopilot", "failed", ago=timedelta(minutes=61))
    seed(engine, tenant_id, other, "copilot", "running", incident_service="web")
    with Session(engine) as session:
        found = limits.usage(session, tenant_id=tenant_id, runbook_id=runbook_id, service="web")
        shown = limits.view(session, tenant_id=tenant_id, runbook_id=runbook_id, settings={})
    assert found.running_runbook == 3
    assert found.running_service == 2  # both runbooks' executions for incidents of "web"
    assert found.runs_last_hour == {"autopilot": 2, "copilot": 2}
    assert shown.running_now == 3 and shown.runs_last_hour == {"autopilot": 2, "copilot": 2}


def ending(engine: Engine, tenant_id: str, execution_id: str) -> Any:
    with Session(engine) as session:
        row = session.get(Execution, execution_id)
        assert row is not None
        opened = breaker.record_ending(
            session,
            execution=row,
            status=ExecutionStatus(row.status),
            limits=limits.effective({}, row.runbook_id),
        )
        session.commit()
        return opened.id if opened else None


def test_the_breaker_opens_at_the_threshold_once_and_counts_after_a_resume(
    engine: Engine, tenant_id: str
) -> None:
    runbook_id = a_runbook(engine, tenant_id)
    old = seed(engine, tenant_id, runbook_id, "autopilot", "failed", ago=timedelta(minutes=90))
    assert ending(engine, tenant_id, old) is None
    first = seed(engine, tenant_id, runbook_id, "copilot", "rolled_back")
    ok = seed(engine, tenant_id, runbook_id, "autopilot", "succeeded")
    assert ending(engine, tenant_id, first) is None
    assert ending(engine, tenant_id, ok) is None
    dry = seed(engine, tenant_id, runbook_id, "dry_run", "failed")  # not counted
    assert ending(engine, tenant_id, dry) is None
    second = seed(engine, tenant_id, runbook_id, "autopilot", "failed")
    assert ending(engine, tenant_id, second) is None
    third = seed(engine, tenant_id, runbook_id, "autopilot", "failed")
    opened = ending(engine, tenant_id, third)
    assert opened is not None
    assert ending(engine, tenant_id, third) is None  # a retry: already open
    with Session(engine) as session:
        shown = breaker.view(session, tenant_id=tenant_id, runbook_id=runbook_id)
        assert breaker.is_open(session, tenant_id=tenant_id, runbook_id=runbook_id)
        due = breaker.page_due(session, tenant_id=tenant_id, execution_id=third)
        assert due is not None and due.id == opened
        assert breaker.mark_paged(session, breaker_id=opened, detail="L1: no pager configured")
        assert not breaker.mark_paged(session, breaker_id=opened, detail="again")
        session.commit()
        assert breaker.page_due(session, tenant_id=tenant_id, execution_id=third) is None
    assert shown.state == "open" and sorted(shown.executions) == sorted([first, second, third])
    assert "3 executions failed or rolled back within 60 min (threshold 3)" in (shown.reason or "")

    with Session(engine) as session:
        resumed = breaker.resume(
            session, tenant_id=tenant_id, runbook_id=runbook_id, actor="api_key:ana", reason="ok"
        )
        session.commit()
        with pytest.raises(breaker.BreakerNotOpen):
            breaker.resume(
                session, tenant_id=tenant_id, runbook_id=runbook_id, actor="x", reason="again"
            )
        actions = [
            a.action
            for a in session.exec(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id))
        ]
    assert resumed.state == "closed" and resumed.resume_reason == "ok"
    assert resumed.page == "L1: no pager configured"
    assert actions.count("runbook.breaker_opened") == 1
    assert actions.count("runbook.breaker_resumed") == 1
    # Failures before the resume no longer count: it takes three new ones.
    for n in range(3):
        again = seed(engine, tenant_id, runbook_id, "autopilot", "failed")
        assert (ending(engine, tenant_id, again) is not None) == (n == 2)


# --- the API --------------------------------------------------------------------------------------

RUNBOOK = "# Restart web\n\n1. Restart it: `systemctl restart web`\n"


async def test_settings_runbook_view_and_resume_over_the_api(stack: Stack, engine: Engine) -> None:
    headers = stack.api_headers()
    bad = await stack.http.patch(
        "/settings", json={"blast_radius": {"breaker": {"failures": 0}}}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["detail"].startswith("invalid blast_radius: ")
    good = await stack.http.patch(
        "/settings", json={"blast_radius": {"max_runs_per_hour": {"autopilot": 2}}}, headers=headers
    )
    assert good.status_code == 200 and good.json()["blast_radius"]["max_runs_per_hour"] == {
        "autopilot": 2
    }
    created = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK, "source_path": "web.md"}, headers=headers
    )
    runbook_id = created.json()["id"]
    seed(engine, stack.settings.tenant, runbook_id, "autopilot", "running")

    shown = (await stack.http.get(f"/runbooks/{runbook_id}", headers=headers)).json()
    assert shown["breaker"] == {
        "state": "closed",
        "opened_at": None,
        "reason": None,
        "executions": [],
        "resumed_at": None,
        "resumed_by": None,
        "resume_reason": None,
        "page": None,
    }
    assert shown["limits"]["running_now"] == 1
    assert shown["limits"]["runs_last_hour"] == {"autopilot": 1, "copilot": 0}
    assert shown["limits"]["effective"]["max_runs_per_hour"] == {"autopilot": 2, "copilot": 20}
    assert shown["trust_level"] and shown["id"] == runbook_id  # the old fields are kept

    path = f"/runbooks/{runbook_id}/breaker"
    closed = await stack.http.post(path, json={"action": "resume", "reason": "x"}, headers=headers)
    assert closed.status_code == 409 and "is not open" in closed.json()["detail"]
    unknown = await stack.http.post(path, json={"action": "open", "reason": "x"}, headers=headers)
    assert unknown.status_code == 422
    blank = await stack.http.post(path, json={"action": "resume", "reason": " "}, headers=headers)
    assert blank.status_code == 422

    for _ in range(3):
        ending(
            engine,
            stack.settings.tenant,
            seed(engine, stack.settings.tenant, runbook_id, "autopilot", "failed"),
        )
    opened = (await stack.http.get(f"/runbooks/{runbook_id}", headers=headers)).json()["breaker"]
    assert opened["state"] == "open" and len(opened["executions"]) == 3

    responder = new_key(engine, stack, "responder")
    refused = await stack.http.post(
        path, json={"action": "resume", "reason": "x"}, headers=responder
    )
    assert refused.status_code == 403
    approver = new_key(engine, stack, "approver")
    resumed = await stack.http.post(
        path, json={"action": "resume", "reason": "image fixed"}, headers=approver
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "closed" and resumed.json()["resume_reason"] == "image fixed"

    # The console shows it.
    page = await stack.http.get(f"/ui/runbooks/{runbook_id}", headers=headers)
    assert page.status_code == 200
    assert 'id="breaker" data-state="closed"' in page.text and "Running now: 1 of 5" in page.text


# --- Slack ----------------------------------------------------------------------------------------


def test_breaker_opened_notice() -> None:
    message = render.escalation_message(
        waiting_execution(),
        event(
            "breaker_opened",
            None,
            {
                "runbook_id": "rb_disk",
                "reason": "3 executions failed or rolled back within 60 min (threshold 3)",
                "level": 1,
                "name": "web owners",
                "paged": False,
                "detail": "web owners: no pager configured",
            },
        ),
    )
    assert "circuit breaker opened" in message and "copilot" in message
    assert (
        "threshold 3" in message and "Owner not paged: web owners: no pager configured" in message
    )


def test_a_held_start_is_posted_with_its_runbook_to_run() -> None:
    reason = "limit reached: 6 autopilot runs of this runbook in the last hour (limit 6)"
    held = incident(
        match_status="limit_reached",
        match={
            "status": "limit_reached",
            "attached": None,
            "candidates": [
                {"runbook_id": "rb_disk", "title": "Disk full", "score": 1.0, "reasons": [reason]}
            ],
            "limit": {"name": "max_runs_per_hour.autopilot", "value": 6, "reason": reason},
        },
    )
    _, blocks = render.incident_message(None, incident=held)
    texts = "\n".join(mrkdwn_texts(blocks))
    assert "Runbook not started" in texts and "(limit 6)" in texts and "rb_disk" in texts
    assert [b["text"]["text"] for b in buttons(blocks)] == ["Run 1: Disk full"]


async def test_cli_shows_and_resumes_the_breaker(stack: Stack, engine: Engine) -> None:
    from tests.test_cli import ddoc

    created = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK, "source_path": "web.md"}, headers=stack.api_headers()
    )
    runbook_id = created.json()["id"]
    code, out, err = await ddoc(stack, "runbook", "breaker", runbook_id)
    assert code == 0, err
    assert "circuit breaker: closed" in out and "running now: 0 (limit 5)" in out
    code, out, err = await ddoc(stack, "runbook", "breaker", runbook_id, "resume")
    assert code == 2 and "--reason is required" in err
    code, out, err = await ddoc(stack, "runbook", "breaker", runbook_id, "resume", "--reason", "x")
    assert code == 1 and "409" in err and "is not open" in err and "Traceback" not in err
    tenant = stack.settings.tenant
    for _ in range(3):
        ending(engine, tenant, seed(engine, tenant, runbook_id, "autopilot", "failed"))
    code, out, err = await ddoc(stack, "runbook", "breaker", runbook_id)
    assert "circuit breaker: open" in out and "threshold 3" in out
    code, out, err = await ddoc(
        stack, "runbook", "breaker", runbook_id, "resume", "--reason", "image fixed"
    )
    assert code == 0, err
    assert f"{runbook_id}: circuit breaker closed (resumed by api_key:" in out
