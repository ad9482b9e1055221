"""Verified steps on Temporal's time-skipping server (issue 19): a precheck right before a change,
a verification after it, and what a failed one does in copilot and in autopilot.

The real workflow, the real control-plane worker and a real agent running real commands;
sentinel files prove what ran. A check's retry window is skipped, not waited for.
"""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts.execution import AwaitKind, DecisionKind, ExecutionMode, ExecutionStatus
from ddoc.contracts.execution import StepStatus as S
from ddoc.platform import tenancy
from ddoc.runbooks.model import Check, Mitigation
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.risk.tenant import RISK_RULES_KEY
from tests.engine_harness import APPROVER, RESPONDER, VIEWER, Harness, cmd, paged, set_levels
from tests.fakes.pagerduty import FakePagerDuty

D = DecisionKind
ROUTING_OWNER = "OWNERROUTINGKEY00000000000000000"


def _events(harness: Harness, execution_id: str) -> list[str]:
    return [e["type"] for e in harness.events(execution_id)]


async def test_a_failed_verification_offers_the_rollback_first_in_copilot(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        cmd(
            "s2",
            f"echo s2 >> {log}",
            "yellow",
            rollback=f"echo undo-s2 >> {log}",
            verify=Check(command=f"grep -c healthy {log}", expect={"output_pattern": "1"}),
        ),
        cmd("s3", f"echo s3 >> {log}", "yellow"),
    )
    for step in ("s1", "s2"):
        await run.awaiting(step)
        await run.decide(step, D.APPROVE, RESPONDER)
    waiting = await run.until(
        lambda s: (
            s.steps[1].awaiting is not None and s.steps[1].awaiting.kind == AwaitKind.VERIFICATION
        )
    )
    s2 = waiting.steps[1]
    assert s2.status == S.VERIFICATION_FAILED and s2.exit_code == 0
    assert s2.detail is not None and s2.detail.startswith("verify failed after 1 try")
    assert "expected output containing '1'" in s2.detail
    assert s2.awaiting is not None and s2.awaiting.allowed[0] == D.ROLLBACK
    assert "Roll back (recommended" in s2.awaiting.message
    assert log.read_text().split() == ["s1", "s2"]  # s3 waits: nothing goes on by itself
    # A viewer cannot decide; a responder rolls back: the undos run, last first, each approved.
    await run.decide("s2", D.DONE, VIEWER)
    await run.decide("", D.ROLLBACK, RESPONDER)
    for undo in ("s2-undo", "s1-undo"):
        await run.awaiting(undo)
        await run.decide(undo, D.APPROVE, RESPONDER)
    result = await run.result()
    assert result.status == ExecutionStatus.ROLLED_BACK
    status = {s.step_id: s.status for s in result.steps}
    assert status["s1"] == status["s2"] == S.ROLLED_BACK and status["s3"] == S.SKIPPED
    assert log.read_text().split() == ["s1", "s2", "undo-s2", "undo-s1"]
    trail = {s["id"]: s for s in harness.trail(run.execution_id)["steps"]}
    assert trail["s2"]["status"] == "rolled_back"
    assert "step.awaiting_verification" in [
        e["type"] for e in harness.events(run.execution_id) if e["step_id"] == "s2"
    ]


async def test_going_on_past_a_failed_verification_is_a_human_decision(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd(
            "s1",
            f"echo s1 >> {log}",
            "red",
            rollback=f"echo undo-s1 >> {log}",
            verify=Check(command=f"test -s {tmp_path / 'absent'}"),
        ),
        cmd("s2", f"echo s2 >> {log}", "green"),
    )
    await run.awaiting("s1")
    await run.decide("s1", D.APPROVE, APPROVER)
    await run.until(lambda s: s.steps[0].status == S.VERIFICATION_FAILED)
    await run.awaiting("s1")
    await run.decide("s1", D.RETRY, APPROVER)  # the check runs again, and fails again
    await run.until(
        lambda s: (
            s.steps[0].awaiting is not None
            and any(d.decision == "retry" for d in s.steps[0].decisions)
            and s.steps[0].status == S.VERIFICATION_FAILED
        )
    )
    await run.decide("s1", D.DONE, RESPONDER)  # red: a responder may not wave it through
    await run.until(lambda s: any(not d.accepted for d in s.steps[0].decisions))
    await run.decide("s1", D.DONE, APPROVER)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    s1 = result.steps[0]
    assert s1.status == S.SUCCEEDED and s1.detail is not None
    assert s1.detail.endswith("going on anyway, said Ana")
    refused = [d for d in s1.decisions if not d.accepted]
    assert refused and "needs the approver role" in (refused[0].reason or "")
    assert log.read_text().split() == ["s1", "s2"]


async def test_a_failed_verification_in_autopilot_undoes_and_pages(
    harness: Harness, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    set_levels(harness, ("Service owner", ROUTING_OWNER))
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        cmd(
            "s2",
            f"echo s2 >> {log}",
            "yellow",
            rollback=f"echo undo-s2 >> {log}",
            verify=Check(
                command=f"cat {log}",
                expect={"output_pattern": "ready"},
                within_seconds=120,
                interval_seconds=30,
            ),
        ),
        cmd("s3", f"echo s3 >> {log}", "yellow"),
        mode=ExecutionMode.AUTOPILOT,
    )
    result = await run.result()
    assert log.read_text().split() == ["s1", "s2", "undo-s2", "undo-s1"]
    assert result.status == ExecutionStatus.ROLLED_BACK
    status = {s.step_id: s.status for s in result.steps}
    assert status == {
        "s1": S.ROLLED_BACK,
        "s2": S.ROLLED_BACK,
        "s3": S.SKIPPED,
        "s2-undo": S.SUCCEEDED,
        "s1-undo": S.SUCCEEDED,
    }
    page = (await paged(pagerduty, 1))[0]
    assert page["routing_key"] == ROUTING_OWNER
    assert "verification failed" in page["payload"]["summary"]
    assert "rolling back" in page["payload"]["summary"]
    assert result.escalations[0]["step_id"] == "s2"
    events = _events(harness, run.execution_id)
    assert "step.verification_failed" in events and "escalated" in events
    trail = {s["id"]: s for s in harness.trail(run.execution_id)["steps"]}
    # Tried every 30 s for 2 min: 5 tries (0, 30, 60, 90, 120 s), then given up.
    converter = harness.client.data_converter
    summaries = [
        (await converter.decode([e.user_metadata.summary], [str]))[0]
        async for e in run.handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert [s for s in summaries if s.startswith("s2 · verify")] == [
        f"s2 · verify (try {n}): cat {log}" for n in range(1, 6)
    ]
    assert trail["s2"]["status"] == "rolled_back"


async def test_a_failed_precheck_never_runs_the_change(harness: Harness, tmp_path: Path) -> None:
    sentinel = tmp_path / "changed"
    run = await harness.start(
        cmd(
            "s1",
            f"touch {sentinel}",
            "yellow",
            precheck=Check(
                command=f"ls {tmp_path}", expect={"output_pattern": "maintenance-window"}
            ),
        ),
        mode=ExecutionMode.AUTOPILOT,
    )
    result = await run.result()
    assert not sentinel.exists()
    assert result.status == ExecutionStatus.FAILED
    s1 = result.steps[0]
    assert s1.status == S.FAILED and s1.exit_code is None
    assert s1.detail is not None and s1.detail.startswith("precheck failed after 1 try")
    assert s1.detail.endswith("the change did not run")
    assert "step.precheck_failed" in _events(harness, run.execution_id)
    assert harness.trail(run.execution_id)["steps"][0]["status"] == "failed"


async def test_a_verification_that_passes_on_its_third_try_passes(
    harness: Harness, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The probe counts its calls and is ready on the third: a tenant rule says it is read-only
    # (a tenant's rule has the last word), so it may be a check.
    counter = tmp_path / "calls"
    probe = tmp_path / "probe.sh"
    probe.write_text(
        f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}\n"
        'if [ "$n" -ge 3 ]; then echo "replicas ready: 0 restarts"; else echo "waiting: 7"; fi\n'
    )
    with Session(harness.engine) as session:
        tenancy.update_settings(
            session,
            tenant_id=harness.tenant_id,
            changes={
                RISK_RULES_KEY: "rules:\n  - id: probe\n    match: probe\\.sh\n"
                "    risk: green\n    reason: it only reads\n"
            },
            actor="test",
        )
        session.commit()
    sentinel = tmp_path / "changed"
    before = await time_skipping_env.get_current_time()
    run = await harness.start(
        cmd(
            "s1",
            f"touch {sentinel}",
            "yellow",
            precheck=Check(command=f"ls {tmp_path}", expect={"output_pattern": "probe.sh"}),
            verify=Check(
                command=f"sh {probe}",
                expect={"threshold": {"op": "<=", "value": 0}},
                within_seconds=300,
                interval_seconds=60,
            ),
        ),
        mode=ExecutionMode.AUTOPILOT,
    )
    result = await run.result()
    assert sentinel.exists() and counter.read_text().strip() == "3"
    assert result.status == ExecutionStatus.SUCCEEDED
    s1 = result.steps[0]
    assert s1.status == S.SUCCEEDED and s1.detail == "verify passed after 3 tries: a number <= 0"
    elapsed = (await time_skipping_env.get_current_time()) - before
    assert elapsed.total_seconds() >= 120  # two pauses of a minute, skipped


async def test_a_runbook_that_goes_through_but_does_not_mitigate_says_so_and_pages(
    harness: Harness, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    set_levels(harness, ("Service owner", ROUTING_OWNER))
    health = tmp_path / "health"
    health.write_text("error rate: 12\n")
    checked = Mitigation(
        check=Check(command=f"cat {health}", expect={"threshold": {"op": "<", "value": 1}})
    )
    run = await harness.start(
        cmd("s1", f"echo restarted >> {tmp_path / 'log'}", "green"), mitigated_when=checked
    )
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED  # every step went through
    [event] = [e for e in harness.events(run.execution_id) if e["type"] == "mitigation_checked"]
    assert event["data"]["passed"] is False
    assert event["data"]["detail"].startswith("mitigated_when failed after 1 try")
    page = (await paged(pagerduty, 1))[0]
    assert "did not mitigate" in page["payload"]["summary"]

    health.write_text("error rate: 0\n")
    again = await harness.start(cmd("s1", "true", "green"), mitigated_when=checked)
    assert (await again.result()).status == ExecutionStatus.SUCCEEDED
    [event] = [e for e in harness.events(again.execution_id) if e["type"] == "mitigation_checked"]
    assert event["data"] == {
        "passed": True,
        "detail": "mitigated_when passed after 1 try: a number < 1",
    }
    assert len(pagerduty.events) == 1


async def test_a_pasted_runbook_s_checks_run_around_its_change(
    harness: Harness, tmp_path: Path
) -> None:
    """From prose to the agent: the parser's precheck and verification, snapshotted into the
    execution, run around the change (docs/RUNBOOK_SCHEMA.md)."""
    state = tmp_path / "state"
    state.write_text("mode=degraded\n")
    document = (
        "# Flip the cache back\n\n"
        f"1. First make sure the node is degraded: `grep -c degraded {state}`\n"
        f"2. Switch it back: `sed -i s/degraded/normal/ {state}`\n"
        f"3. Confirm it worked with `grep normal {state}` - you should see mode=normal\n"
    )
    parsed = parse_runbook(document, "markdown")
    [change] = parsed.steps
    assert change.precheck is not None and change.verify is not None
    assert change.verify.expect == {"output_pattern": "mode=normal"}
    run = await harness.start(*parsed.steps, mode=ExecutionMode.AUTOPILOT)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED and state.read_text() == "mode=normal\n"
    assert result.steps[0].detail == "verify passed after 1 try: output containing 'mode=normal'"
