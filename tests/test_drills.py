"""Fire drills on Temporal's time-skipping server (issue 21): a drill runs like copilot in its
sandbox, escalates on its timers without paging anyone, and ends with a score card compared
with the team's previous drills."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts.execution import DecisionKind, ExecutionMode, ExecutionStatus
from ddoc.execution import drills
from tests.engine_harness import RESPONDER, Harness, cmd, set_levels
from tests.fakes.pagerduty import FakePagerDuty

D = DecisionKind
ROUTING = "DRILLROUTINGKEY00000000000000000"


def _record(harness: Harness, execution_id: str, runbook_id: str, team: str) -> None:
    with Session(harness.engine) as session:
        drills.record(
            session,
            tenant_id=harness.tenant_id,
            execution_id=execution_id,
            runbook_id=runbook_id,
            team=team,
            environment="test",
            alert_title="DRILL: disk full",
            started_by="api_key:rita",
        )
        session.commit()


async def test_a_drill_pages_no_one_and_scores_the_team(
    harness: Harness,
    pagerduty: FakePagerDuty,
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    set_levels(harness, ("L2 platform", ROUTING), ("L3 SRE leads", ROUTING))
    log = tmp_path / "log"
    steps = (
        cmd("s1", f"echo s1 >> {log}", "green"),
        cmd("s2", f"echo s2 >> {log}", "yellow"),
        cmd("s3", f"echo s3 >> {log}; exit 3", "yellow"),
        cmd("s4", f"echo s4 >> {log}", "yellow"),
    )
    alert = drills.simulated_alert("ex-drill", "DRILL: disk full", "web")
    run = await harness.start(*steps, mode=ExecutionMode.DRILL, alert_context=alert)
    runbook_id = harness.trail(run.execution_id)["runbook_id"]
    _record(harness, run.execution_id, runbook_id, "platform")
    # Nobody answers s2: both levels' timers fire (skipped time), and nobody is paged.
    await run.awaiting("s2")
    await time_skipping_env.sleep(timedelta(seconds=2 * 1800 + 10))  # the policy's default wait
    escalated = await run.until(lambda s: len(s.escalations) == 2)
    assert [e["paged"] for e in escalated.escalations] == [False, False]
    assert escalated.escalations[0]["detail"] == "drill: nobody paged (would page L2 platform)"
    await run.decide("s2", D.APPROVE, RESPONDER)
    await run.awaiting("s3")
    await run.decide("s3", D.APPROVE, RESPONDER)  # it fails in the sandbox: the drill ends
    result = await run.result()
    assert result.status == ExecutionStatus.FAILED
    assert log.read_text().split() == ["s1", "s2", "s3"]
    assert pagerduty.events == []  # the PagerDuty fake saw nothing, ever
    with Session(harness.engine) as session:
        (shown,) = drills.list_drills(session, tenant_id=harness.tenant_id)
    card = shown.score
    assert (shown.team, shown.runbook_id, card.status) == ("platform", runbook_id, "failed")
    assert [a.step_id for a in card.approvals] == ["s2", "s3"]
    # s2 waited through both escalation deadlines (skipped time), s3 was approved at once.
    assert card.approvals[0].seconds >= 2 * 1800 and card.approvals[1].seconds < 60
    assert card.time_to_first_action_seconds is not None
    assert card.time_to_first_action_seconds >= card.approvals[0].seconds
    assert (card.failed_steps, card.skipped_steps, card.edited_steps) == (["s3"], [], [])
    assert card.escalations == 2 and card.previous_drills == 0 and card.vs_previous is None
    # The team's second drill of the runbook, answered at once: compared with the first.
    again = await harness.start(*steps[:2], mode=ExecutionMode.DRILL, alert_context=alert)
    _record(harness, again.execution_id, runbook_id, "platform")
    await again.awaiting("s2")
    await again.decide("s2", D.APPROVE, RESPONDER)
    assert (await again.result()).status == ExecutionStatus.SUCCEEDED
    with Session(harness.engine) as session:
        latest, first = drills.list_drills(session, tenant_id=harness.tenant_id)
    assert (latest.execution_id, first.execution_id) == (again.execution_id, run.execution_id)
    assert latest.score.previous_drills == 1 and latest.score.vs_previous is not None
    faster = latest.score.vs_previous["median_approval_seconds"]
    assert faster is not None and faster < -1800
    assert latest.score.vs_previous["failed_steps"] == -1.0
    assert pagerduty.events == []
