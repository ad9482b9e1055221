"""Blast-radius limits and the circuit breaker end to end (docs/LIMITS.md), on Temporal's
time-skipping server: alerts through the real Intake (explicit match by alert name), the real
control-plane worker (after_execution: the breaker, the owner's page) and a real agent running
the commands, a fake PagerDuty over HTTP.

scripts/test runs each test of this file in a process of its own (time-skipping tests).
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.store import ExecutionStore
from ddoc.alerts import service as incidents_service
from ddoc.alerts.intake import INCIDENTS_CHANNEL, AlertOutcome, Intake
from ddoc.alerts.matching import Matcher
from ddoc.alerts.paging import PagerDutyEvents
from ddoc.alerts.sources import NormalizedAlert
from ddoc.contracts.execution import ExecutionFinished, ExecutionStatus
from ddoc.contracts.settings import Settings
from ddoc.execution import store as executions
from ddoc.platform import tenancy
from ddoc.platform.tables import Alert, AuditEvent, Execution, Incident, Runbook
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook, Triggers
from ddoc.trust import breaker
from tests.conftest import eventually
from tests.engine_harness import ENVIRONMENT, Harness, cmd
from tests.fakes.pagerduty import FakePagerDuty

OWNER_KEY = "OWNERROUTINGKEY00000000000000000"
ALERT_NAME = "WebDown"


def intake_settings(harness: Harness) -> Settings:
    return Settings(
        control_task_queue=harness.control_queue,
        tenant=harness.tenant_id,
        environment=ENVIRONMENT,
        command_timeout_seconds=30,
        agent_offline_timeout_seconds=20,
        correlation_window_seconds=0,  # every alert opens its own incident
    )


def make_intake(harness: Harness, engine: Engine) -> Intake:
    return Intake(
        engine=engine,
        client=harness.client,
        settings=intake_settings(harness),
        matcher=Matcher(None),  # the alert-name trigger matches: no embeddings needed
    )


def setup_tenant(engine: Engine, tenant_id: str, **settings: Any) -> None:
    with Session(engine) as session:
        tenancy.update_settings(session, tenant_id=tenant_id, changes=settings, actor="test")
        session.commit()


def autopilot_runbook(engine: Engine, tenant_id: str, command: str) -> str:
    """A runbook for the alert WebDown, one green command, at autopilot."""
    parsed = ParsedRunbook(
        title="Restart web",
        summary="",
        steps=[cmd("s1", command, "green")],
        triggers=Triggers(alerts=[ALERT_NAME]),
    )
    with Session(engine) as session:
        saved = runbooks.save(
            session,
            tenant_id=tenant_id,
            content=f"# Restart web {uuid.uuid4().hex}",
            fmt="markdown",
            parsed=parsed,
            source_path=None,
            actor="test",
        )
        row = session.get(Runbook, saved.runbook.id)
        assert row is not None
        row.trust_level = "autopilot"
        session.add(row)
        session.commit()
        return saved.runbook.id


def firing(environment: str = ENVIRONMENT) -> NormalizedAlert:
    return NormalizedAlert(
        source="alertmanager",
        dedup_key=f"dk-{uuid.uuid4().hex[:10]}",
        status="firing",
        title=f"{ALERT_NAME} on web-1",
        description=None,
        service="web",
        severity="critical",
        environment=environment,
        labels={"alertname": ALERT_NAME},
        annotations={},
        links=[],
        raw={},
        alert_name=ALERT_NAME,
    )


async def alert_in(intake: Intake, harness: Harness, **kw: Any) -> AlertOutcome:
    (outcome,) = await intake.handle(harness.tenant_id, [firing(**kw)])
    return outcome


async def finished(harness: Harness, intake: Intake, outcome: AlertOutcome) -> Execution:
    """The execution the alert started, once its steps ended: then its alert resolves (an
    execution for an incident stays open until it does) and the workflow completes, its
    after_execution included."""
    assert outcome.status == "started", outcome
    assert outcome.execution_id is not None
    execution_id = outcome.execution_id

    async def ended() -> bool:
        with Session(harness.engine) as session:
            row = session.get(Execution, execution_id)
            return row is not None and row.finished_at is not None

    await eventually(ended, within=30)
    resolved = dataclasses.replace(firing(), dedup_key=outcome.dedup_key, status="resolved")
    await intake.handle(harness.tenant_id, [resolved])
    await harness.client.get_workflow_handle(execution_id).result()
    with Session(harness.engine) as session:
        row = session.get(Execution, execution_id)
        assert row is not None
        return row


def incident(engine: Engine, incident_id: str | None) -> Incident:
    with Session(engine) as session:
        row = session.get(Incident, incident_id)
        assert row is not None
        session.expunge(row)
        return row


def attached_reasons(engine: Engine, outcome: AlertOutcome) -> list[str]:
    match = incident(engine, outcome.incident_id).match
    assert match is not None and match["attached"] is not None
    return list(match["attached"]["reasons"])


def audit_actions(engine: Engine, tenant_id: str) -> list[AuditEvent]:
    with Session(engine) as session:
        rows = list(session.exec(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)))
        session.expunge_all()
        return rows


async def test_breaker_opens_after_three_failures_pages_the_owner_and_resume_restores_autopilot(
    harness: Harness, engine: Engine, pagerduty: FakePagerDuty
) -> None:
    setup_tenant(
        engine,
        harness.tenant_id,
        trust_policy={"demote_on_failure": False},  # the runbook stays at autopilot
        execution_policy={
            "escalation_levels": [{"name": "web owners", "pagerduty_routing_key": OWNER_KEY}]
        },
    )
    runbook_id = autopilot_runbook(engine, harness.tenant_id, "exit 3")
    intake = make_intake(harness, engine)

    failed = []
    for _ in range(3):
        run = await finished(harness, intake, await alert_in(intake, harness))
        assert (run.mode, run.status) == ("autopilot", "failed")
        failed.append(run.id)

    # The third failure opened the breaker and paged the owner (level 1) once.
    assert len(pagerduty.events) == 1
    page = pagerduty.events[0]
    assert page["routing_key"] == OWNER_KEY and page["event_action"] == "trigger"
    assert "circuit breaker opened" in page["payload"]["summary"]
    with Session(engine) as session:
        shown = breaker.view(session, tenant_id=harness.tenant_id, runbook_id=runbook_id)
    assert shown.state == "open" and sorted(shown.executions) == sorted(failed)
    assert shown.page is not None and shown.page.startswith("paged web owners")
    opened = [e for e in harness.events(failed[-1]) if e["type"] == "breaker_opened"]
    assert len(opened) == 1 and opened[0]["data"]["paged"] is True
    assert "runbook.breaker_opened" in {a.action for a in audit_actions(engine, harness.tenant_id)}

    # A retried after_execution (the activity ran again) pages nobody twice.
    store = ExecutionStore(engine, PagerDutyEvents(url=pagerduty.url))
    store.after_execution(
        ExecutionFinished(
            execution_id=failed[-1], tenant_id=harness.tenant_id, status=ExecutionStatus.FAILED
        )
    )
    assert len(pagerduty.events) == 1
    assert len([e for e in harness.events(failed[-1]) if e["type"] == "breaker_opened"]) == 1

    # While it is open, the runbook's alerts run in copilot, and the incident says why.
    fourth = await alert_in(intake, harness)
    run = await finished(harness, intake, fourth)
    assert run.mode == "copilot"
    reasons = attached_reasons(engine, fourth)
    assert any("circuit breaker open" in r for r in reasons)
    assert len(pagerduty.events) == 1  # already open: no second page

    # An approver resumes it: autopilot again, and only failures from now on count.
    with Session(engine) as session:
        resumed = breaker.resume(
            session,
            tenant_id=harness.tenant_id,
            runbook_id=runbook_id,
            actor="api_key:ana",
            reason="fixed the image",
        )
        session.commit()
    assert resumed.state == "closed" and resumed.resumed_by == "api_key:ana"
    fifth = await finished(harness, intake, await alert_in(intake, harness))
    assert fifth.mode == "autopilot" and fifth.status == "failed"
    with Session(engine) as session:
        assert breaker.view(session, tenant_id=harness.tenant_id, runbook_id=runbook_id).state == (
            "closed"
        )
    assert len(pagerduty.events) == 1


async def test_past_the_hourly_limit_the_alert_is_recorded_and_a_human_is_told(
    harness: Harness, engine: Engine, database_url: str
) -> None:
    setup_tenant(engine, harness.tenant_id, blast_radius={"max_runs_per_hour": {"autopilot": 1}})
    runbook_id = autopilot_runbook(engine, harness.tenant_id, "true")
    intake = make_intake(harness, engine)

    first = await finished(harness, intake, await alert_in(intake, harness))
    assert (first.mode, first.status) == ("autopilot", "succeeded")

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {INCIDENTS_CHANNEL}")
        held = await alert_in(intake, harness)
        told = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]

    assert held.status == "limit_reached" and held.execution_id is None
    assert told == [held.incident_id]  # the notifier posts it to Slack
    row = incident(engine, held.incident_id)
    assert row.execution_id is None and row.match_status == "limit_reached"
    assert row.match is not None
    reason = "limit reached: 1 autopilot runs of this runbook in the last hour (limit 1)"
    assert row.match["limit"]["reason"] == reason
    assert row.match["candidates"][0]["runbook_id"] == runbook_id
    assert row.match["candidates"][0]["reasons"][0] == reason
    with Session(engine) as session:
        stored = session.exec(select(Alert).where(Alert.incident_id == held.incident_id)).all()
        assert len(stored) == 1
    limited = [
        a for a in audit_actions(engine, harness.tenant_id) if a.action == "incident.limit_reached"
    ]
    assert len(limited) == 1 and limited[0].subject == held.incident_id
    assert limited[0].data["limit"] == "max_runs_per_hour.autopilot"

    # A human may still run it: a pick is not counted out.
    assert held.incident_id is not None
    picked = await incidents_service.pick(
        engine,
        harness.client,
        intake_settings(harness),
        tenant_id=harness.tenant_id,
        incident_id=held.incident_id,
        runbook_id=runbook_id,
        actor="api_key:rita",
    )
    assert picked.mode == "autopilot"

    async def succeeded() -> bool:
        with Session(engine) as session:
            row = executions.get(session, tenant_id=harness.tenant_id, execution_id=picked.id)
            return row.status == "succeeded"

    await eventually(succeeded, within=30)


async def test_a_production_alert_never_runs_autopilot(harness: Harness, engine: Engine) -> None:
    # The agent's environment is a production one for this tenant.
    setup_tenant(engine, harness.tenant_id, blast_radius={"production_environments": [ENVIRONMENT]})
    runbook_id = autopilot_runbook(engine, harness.tenant_id, "true")
    intake = make_intake(harness, engine)

    outcome = await alert_in(intake, harness)
    run = await finished(harness, intake, outcome)
    assert (run.mode, run.status) == ("copilot", "succeeded")
    reasons = attached_reasons(engine, outcome)
    assert f"production requires a human: environment {ENVIRONMENT!r} runs copilot" in reasons
    downgraded = [
        a
        for a in audit_actions(engine, harness.tenant_id)
        if a.action == "execution.mode_downgraded"
    ]
    assert len(downgraded) == 1 and downgraded[0].data["to"] == "copilot"
    assert downgraded[0].data["runbook_id"] == runbook_id
