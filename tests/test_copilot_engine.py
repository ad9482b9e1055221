"""The copilot engine on Temporal's time-skipping server: every path of item 1-8 of the design.

Each test runs the real workflow, the real control-plane worker (its own database) and a real
agent running real commands; sentinel files prove what ran and what did not. Timers are skipped
with `env.sleep`, so a 30-minute escalation deadline takes milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.api.enums.v1 import RetryState
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from agent_worker.commands import CommandActivities
from agent_worker.policy import AgentPolicy
from ddoc.contracts.execution import (
    AlertResolved,
    AwaitKind,
    DecisionKind,
    ExecutionMode,
    ExecutionStatus,
    StepStatus,
)
from ddoc.runbooks.model import Branch, Variable, VariableSource
from tests.engine_harness import (
    APPROVER,
    APPROVER_2,
    RESPONDER,
    RESPONDER_2,
    VIEWER,
    Harness,
    alert,
    cmd,
    decision,
    manual,
    paged,
    policy,
    record_histories,
    running,
    set_levels,
)
from tests.fakes.pagerduty import FakePagerDuty
from workflows.execution import RunbookExecutionWorkflow

D = DecisionKind
ROUTING_L2 = "L2ROUTINGKEY00000000000000000000"
ROUTING_L3 = "L3ROUTINGKEY00000000000000000000"


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_green_steps_run_by_themselves(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("")
    run = await harness.start(
        cmd("s1", f"echo first; cat {log}", "green"),
        cmd("s2", "echo second", "green"),
    )
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert [s.status for s in result.steps] == [StepStatus.SUCCEEDED] * 2
    trail = harness.trail(run.execution_id)
    assert trail["status"] == "succeeded"
    assert trail["steps"][0]["output"].strip() == "first"
    assert trail["steps"][1]["exit_code"] == 0
    kinds = [e["type"] for e in harness.events(run.execution_id)]
    assert kinds[0] == "execution.started" and kinds[-1] == "execution.succeeded"
    assert kinds.count("step.running") == 2 and kinds.count("step.succeeded") == 2


async def test_yellow_step_waits_for_a_responder_then_runs(
    harness: Harness, tmp_path: Path
) -> None:
    sentinel = tmp_path / "restarted"
    run = await harness.start(cmd("s1", f"touch {sentinel}", "yellow"))
    waiting = await run.awaiting("s1")
    assert waiting.status == StepStatus.AWAITING_APPROVAL
    assert waiting.awaiting is not None and waiting.awaiting.kind == AwaitKind.APPROVAL
    assert waiting.awaiting.role == "responder" and waiting.awaiting.approvals_needed == 1
    assert (await run.state()).status == ExecutionStatus.AWAITING_HUMAN

    await run.decide("s1", D.APPROVE, VIEWER)  # a viewer only watches
    await run.until(lambda s: len(s.steps[0].decisions) == 1)
    assert not sentinel.exists()
    await run.decide("s1", D.APPROVE, RESPONDER)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED and sentinel.exists()
    refused, accepted = result.steps[0].decisions
    assert (refused.user_id, refused.accepted) == (VIEWER.user_id, False)
    assert refused.reason is not None and "no responder" in refused.reason
    assert (accepted.user_id, accepted.accepted, accepted.source) == (
        RESPONDER.user_id,
        True,
        "api",
    )
    stored = harness.trail(run.execution_id)["steps"][0]["decisions"]
    assert [d["accepted"] for d in stored] == [False, True]


async def test_rejected_step_does_not_run_and_stops_the_execution(
    harness: Harness, tmp_path: Path
) -> None:
    sentinel = tmp_path / "ran"
    run = await harness.start(
        cmd("s1", f"touch {sentinel}", "yellow"), cmd("s2", "echo after", "green")
    )
    await run.awaiting("s1")
    await run.decide("s1", D.REJECT, RESPONDER, comment="not during the sale")
    result = await run.result()
    assert not sentinel.exists()
    assert result.status == ExecutionStatus.ABORTED
    s1, s2 = result.steps
    assert s1.status == StepStatus.SKIPPED and s1.detail == "rejected by Rita"
    assert s1.decisions[0].comment == "not during the sale"
    assert s2.status == StepStatus.SKIPPED and s2.detail is not None
    assert s2.detail.startswith("not reached")


async def test_red_step_needs_two_distinct_approvers(harness: Harness, tmp_path: Path) -> None:
    sentinel = tmp_path / "dropped"
    run = await harness.start(
        cmd("s1", f"touch {sentinel}", "red"), execution_policy=policy(red_approvals=2)
    )
    waiting = await run.awaiting("s1")
    assert waiting.awaiting is not None
    assert (waiting.awaiting.role, waiting.awaiting.approvals_needed) == ("approver", 2)
    await run.decide("s1", D.APPROVE, RESPONDER)  # responders cannot approve red steps
    await run.decide("s1", D.APPROVE, APPROVER)
    await run.decide("s1", D.APPROVE, APPROVER)  # the same person twice
    state = await run.until(lambda s: len(s.steps[0].decisions) == 3)
    assert not sentinel.exists()
    assert [d.accepted for d in state.steps[0].decisions] == [False, True, False]
    assert "approver role" in (state.steps[0].decisions[0].reason or "")
    assert "already approved" in (state.steps[0].decisions[2].reason or "")
    assert state.steps[0].awaiting is not None
    assert state.steps[0].awaiting.approved_by == [APPROVER.user_id]
    await run.decide("s1", D.APPROVE, APPROVER_2)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED and sentinel.exists()


async def test_who_started_a_run_is_never_the_only_approver_of_a_red_step(
    harness: Harness, tmp_path: Path
) -> None:
    sentinel = tmp_path / "dropped"
    run = await harness.start(cmd("s1", f"touch {sentinel}", "red"), started_by=APPROVER.user_id)
    await run.awaiting("s1")
    await run.decide("s1", D.APPROVE, APPROVER)
    state = await run.until(lambda s: bool(s.steps[0].decisions))
    assert state.steps[0].awaiting is not None and "four-eyes" in state.steps[0].awaiting.message
    assert state.steps[0].status == StepStatus.AWAITING_APPROVAL and not sentinel.exists()
    await run.decide("s1", D.APPROVE, APPROVER_2)
    assert (await run.result()).status == ExecutionStatus.SUCCEEDED and sentinel.exists()


async def test_an_edit_is_reclassified_and_needs_approval_at_its_new_risk(
    harness: Harness, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("data")
    run = await harness.start(cmd("s1", f"cat {victim}", "yellow"))
    await run.awaiting("s1")
    await run.decide("s1", D.EDIT, APPROVER, command=f"rm -f {victim}")
    state = await run.until(
        lambda s: s.steps[0].awaiting is not None and s.steps[0].awaiting.role == "approver"
    )
    step = state.steps[0]
    assert step.risk == "red" and step.command == f"rm -f {victim}"
    assert step.edited_by == APPROVER.user_id
    assert "re-classified red" in (step.decisions[0].reason or "")
    await run.decide("s1", D.APPROVE, APPROVER)  # not their own edit
    await run.decide("s1", D.APPROVE, RESPONDER)  # a responder may not approve red
    state = await run.until(lambda s: len(s.steps[0].decisions) == 3)
    assert [d.accepted for d in state.steps[0].decisions] == [True, False, False]
    assert "own edit" in (state.steps[0].decisions[1].reason or "")
    assert victim.exists()
    await run.decide("s1", D.APPROVE, APPROVER_2)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED and not victim.exists()
    assert harness.trail(run.execution_id)["steps"][0]["command"] == f"rm -f {victim}"


async def test_escalation_pages_each_level_at_its_deadline_and_never_approves(
    harness: Harness,
    time_skipping_env: WorkflowEnvironment,
    pagerduty: FakePagerDuty,
    tmp_path: Path,
) -> None:
    set_levels(harness, ("L2 platform", ROUTING_L2), ("L3 SRE leads", ROUTING_L3))
    sentinel = tmp_path / "ran"
    run = await harness.start(
        cmd("s1", f"touch {sentinel}", "yellow"), alert_context=alert(severity="critical")
    )
    await run.awaiting("s1")
    await time_skipping_env.sleep(timedelta(seconds=290))
    assert pagerduty.events == []  # not before the deadline (5 min for critical)
    await time_skipping_env.sleep(timedelta(seconds=20))
    first = (await paged(pagerduty, 1))[0]
    assert first["routing_key"] == ROUTING_L2 and first["event_action"] == "trigger"
    assert first["dedup_key"] == f"ddoc:{run.execution_id}:s1"
    assert first["payload"]["severity"] == "critical"
    assert first["payload"]["custom_details"]["escalation_level"] == 1
    await time_skipping_env.sleep(timedelta(seconds=300))
    second = (await paged(pagerduty, 2))[1]
    assert second["routing_key"] == ROUTING_L3
    await time_skipping_env.sleep(timedelta(seconds=300))
    state = await run.until(lambda s: s.status == ExecutionStatus.STALLED)
    assert len(pagerduty.events) == 2  # no third level: stalled, visibly
    step = state.steps[0]
    assert step.status == StepStatus.AWAITING_APPROVAL and not sentinel.exists()
    assert step.awaiting is not None and step.awaiting.deadline is None
    assert [e["level"] for e in state.escalations] == [1, 2]
    await time_skipping_env.sleep(timedelta(hours=6))
    assert not sentinel.exists() and (await run.state()).status == ExecutionStatus.STALLED
    assert harness.trail(run.execution_id)["status"] == "stalled"
    events = [e["type"] for e in harness.events(run.execution_id)]
    assert events.count("escalated") == 2 and "stalled" in events
    await run.decide("s1", D.APPROVE, RESPONDER)
    await run.until(lambda s: s.steps[0].status == StepStatus.SUCCEEDED)
    assert sentinel.exists()


async def test_an_unresolved_incident_escalates_and_a_resolved_one_stops_paging(
    harness: Harness,
    time_skipping_env: WorkflowEnvironment,
    pagerduty: FakePagerDuty,
) -> None:
    set_levels(harness, ("L2 platform", ROUTING_L2))
    unresolved = await harness.start(
        cmd("s1", "echo looked", "green"),
        alert_context=alert(),
        execution_policy=policy(incident_timeout_seconds=1200),
    )
    await unresolved.until(lambda s: s.status == ExecutionStatus.SUCCEEDED)
    result = await unresolved.result()  # skips to the incident timer
    assert result.incident_escalated and not result.alert_resolved
    page = (await paged(pagerduty, 1))[0]
    assert page["dedup_key"] == f"ddoc:{unresolved.execution_id}:incident"
    assert "not resolved after 20 min" in page["payload"]["summary"]
    assert page["payload"]["custom_details"]["steps"] == ["s1 succeeded"]

    resolved = await harness.start(
        cmd("s1", "touch /nonexistent-dir/x", "yellow"),
        alert_context=alert(),
        execution_policy=policy(incident_timeout_seconds=1200),
    )
    await resolved.awaiting("s1")
    await resolved.handle.signal(
        RunbookExecutionWorkflow.alert_resolved, AlertResolved(dedup_key="dk", source="test")
    )
    await resolved.until(lambda s: s.alert_resolved)
    await time_skipping_env.sleep(timedelta(seconds=1300))
    state = await resolved.until(lambda s: s.status == ExecutionStatus.STALLED)
    assert [e["paged"] for e in state.escalations] == [False, False]  # both levels, no page
    assert not state.incident_escalated and len(pagerduty.events) == 1
    assert "alert_resolved" in [e["type"] for e in harness.events(resolved.execution_id)]
    await resolved.decide("s1", D.SKIP, RESPONDER)
    final = await resolved.result()
    assert final.status == ExecutionStatus.SUCCEEDED
    assert final.steps[0].status == StepStatus.SKIPPED


async def test_failure_runs_the_compensations_in_reverse_order(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    steps = [
        cmd(f"s{i}", f"echo s{i} >> {log}", "yellow", rollback=f"echo undo-s{i} >> {log}")
        for i in (1, 2, 3)
    ]
    run = await harness.start(
        *steps,
        cmd("s4", "echo s4 >&2; exit 3", "yellow", rollback=f"echo undo-s4 >> {log}"),
        cmd("s5", f"echo s5 >> {log}", "yellow"),
        mode=ExecutionMode.AUTOPILOT,
    )
    result = await run.result()
    assert lines(log) == ["s1", "s2", "s3", "undo-s3", "undo-s2", "undo-s1"]
    assert result.status == ExecutionStatus.FAILED
    status = {s.step_id: s.status for s in result.steps}
    assert status == {
        "s1": StepStatus.ROLLED_BACK,
        "s2": StepStatus.ROLLED_BACK,
        "s3": StepStatus.ROLLED_BACK,
        "s4": StepStatus.FAILED,
        "s5": StepStatus.SKIPPED,
        "s3-undo": StepStatus.SUCCEEDED,
        "s2-undo": StepStatus.SUCCEEDED,
        "s1-undo": StepStatus.SUCCEEDED,
    }
    trail = harness.trail(run.execution_id)["steps"]
    undo = [(s["id"], s["undoes"]) for s in trail if s["undoes"]]
    assert undo == [("s3-undo", "s3"), ("s2-undo", "s2"), ("s1-undo", "s1")]
    assert next(s for s in trail if s["id"] == "s4")["exit_code"] == 3


async def test_compensations_are_gated_by_their_own_risk(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"rm -f {log}.gone; echo undo >> {log}"),
        cmd("s2", "exit 1", "yellow"),
        mode=ExecutionMode.AUTOPILOT,
    )
    undo = await run.awaiting("s1-undo")  # a red undo waits for an approver, even in autopilot
    assert undo.risk == "red" and undo.undoes == "s1"
    assert undo.awaiting is not None and undo.awaiting.role == "approver"
    assert lines(log) == ["s1"]
    await run.decide("s1-undo", D.APPROVE, APPROVER)
    result = await run.result()
    assert lines(log) == ["s1", "undo"] and result.status == ExecutionStatus.FAILED


async def test_cancellation_runs_the_compensations(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        manual("s2", "Watch the graphs for ten minutes"),
        mode=ExecutionMode.AUTOPILOT,
    )
    await run.awaiting("s2")
    await run.handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await run.result()
    assert lines(log) == ["s1", "undo-s1"]
    trail = harness.trail(run.execution_id)
    assert trail["status"] == "aborted"
    status = {s["id"]: s["status"] for s in trail["steps"]}
    assert status == {"s1": "rolled_back", "s2": "skipped", "s1-undo": "succeeded"}


async def test_rollback_decision_undoes_the_completed_steps(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        cmd("s2", f"echo s2 >> {log}", "yellow", rollback=f"echo undo-s2 >> {log}"),
        cmd("s3", f"echo s3 >> {log}", "yellow"),
    )
    for step in ("s1", "s2"):
        await run.awaiting(step)
        await run.decide(step, D.APPROVE, RESPONDER)
    await run.awaiting("s3")
    await run.decide("s3", D.ROLLBACK, RESPONDER_2, comment="made it worse")
    for undo in ("s2-undo", "s1-undo"):  # yellow undos in copilot: approved one by one
        await run.awaiting(undo)
        await run.decide(undo, D.APPROVE, RESPONDER)
    result = await run.result()
    assert lines(log) == ["s1", "s2", "undo-s2", "undo-s1"]
    assert result.status == ExecutionStatus.ROLLED_BACK
    assert [s.status for s in result.steps[:3]] == [
        StepStatus.ROLLED_BACK,
        StepStatus.ROLLED_BACK,
        StepStatus.SKIPPED,
    ]


async def test_abort_stops_without_undoing(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        cmd("s2", f"echo s2 >> {log}", "yellow"),
        mode=ExecutionMode.AUTOPILOT,
        started_by=RESPONDER.user_id,
    )
    await run.until(lambda s: s.steps[0].status == StepStatus.SUCCEEDED)
    # s2 runs by itself in autopilot; abort targets whatever is current
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    run2 = await harness.start(
        cmd("s1", f"echo r2 >> {log}", "yellow", rollback=f"echo undo-r2 >> {log}"),
        manual("s2", "Check the dashboards"),
        mode=ExecutionMode.AUTOPILOT,
    )
    await run2.awaiting("s2")
    await run2.decide("s2", D.ABORT, VIEWER)  # refused: viewers cannot stop it either
    await run2.decide("s2", D.ABORT, RESPONDER)
    result2 = await run2.result()
    assert result2.status == ExecutionStatus.ABORTED
    assert lines(log) == ["s1", "s2", "r2"]
    assert [d.accepted for d in result2.steps[1].decisions] == [False, True]


async def test_a_hostile_label_value_stays_one_literal_argument(
    harness: Harness, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    hostile = f"x; touch {sentinel}; echo $(touch {sentinel})"
    run = await harness.start(
        cmd("s1", "printf '%s|' $HOST", "green"),
        variables=[Variable("host", "$HOST", VariableSource.LABEL, key="host")],
        alert_context=alert(host=hostile),
        execution_policy=policy(incident_timeout_seconds=None),
    )
    await run.until(lambda s: s.status == ExecutionStatus.SUCCEEDED)
    await run.handle.signal(
        RunbookExecutionWorkflow.alert_resolved, AlertResolved(dedup_key="dk", source="test")
    )
    await run.result()
    assert harness.trail(run.execution_id)["steps"][0]["output"] == f"{hostile}|"
    assert not sentinel.exists()


async def test_a_variable_without_value_is_asked_before_the_step(
    harness: Harness, tmp_path: Path
) -> None:
    run = await harness.start(
        cmd("s1", "echo checking $NAMESPACE", "green"),
        variables=[Variable("namespace", "$NAMESPACE", VariableSource.ASK)],
    )
    waiting = await run.awaiting("s1")
    assert waiting.awaiting is not None and waiting.awaiting.kind == AwaitKind.VALUES
    assert waiting.awaiting.missing == ["namespace"]
    await run.decide("s1", D.PROVIDE, RESPONDER, values={"other": "x"})  # not awaited
    await run.decide("s1", D.PROVIDE, RESPONDER, values={"namespace": "payments; id"})
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert [d.accepted for d in result.steps[0].decisions] == [False, True]
    output = harness.trail(run.execution_id)["steps"][0]["output"]
    assert output.strip() == "checking payments; id"


async def test_dry_run_changes_nothing(harness: Harness, tmp_path: Path) -> None:
    sentinel = tmp_path / "changed"
    calls = tmp_path / "kubectl-calls"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "kubectl"
    # A stand-in kubectl: records its arguments; only a real (non dry-run) call changes state.
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *--dry-run=server*) echo "deployment.apps/api scaled (server dry run)";;\n'
        f"  *) touch {sentinel};; esac\n"
    )
    fake.chmod(0o755)
    async with running(
        harness.client,
        harness.engine,
        pagerduty_url="http://127.0.0.1:9/v2/enqueue",
        commands=CommandActivities(
            base_env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
        ),
    ) as h:
        run = await h.start(
            cmd("s1", "kubectl scale deploy/api --replicas=5", "yellow"),
            cmd("s2", f"touch {sentinel}", "yellow"),
            cmd("s3", f"touch {sentinel} && echo green-but-not-run", "green"),
            mode=ExecutionMode.DRY_RUN,
        )
        result = await run.result()
        if os.environ.get("DDOC_RECORD_HISTORIES"):
            await record_histories(h, "test_dry_run_changes_nothing")
    assert not sentinel.exists()
    assert lines(calls) == ["scale", "deploy/api", "--replicas=5", "--dry-run=server"]
    s1, s2, s3 = result.steps
    assert (s1.status, s1.dry_run) == (StepStatus.SUCCEEDED, True)
    assert s1.command == "kubectl scale deploy/api --replicas=5 --dry-run=server"
    assert s2.status == s3.status == StepStatus.SKIPPED
    assert s2.detail == "dry run: shown, not run (no dry-run form)"
    assert result.status == ExecutionStatus.SUCCEEDED


async def test_read_along_runs_nothing(harness: Harness, tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    run = await harness.start(
        cmd("s1", f"touch {sentinel}", "green"),
        cmd("s2", f"touch {sentinel}", "yellow"),
        manual("s3", "Tell the status page"),
        mode=ExecutionMode.READ_ALONG,
    )
    for step, kind in (("s1", D.DONE), ("s2", D.SKIP), ("s3", D.DONE)):
        waiting = await run.awaiting(step)
        assert waiting.awaiting is not None and waiting.awaiting.kind == AwaitKind.DONE
        await run.decide(step, D.APPROVE, RESPONDER)  # nothing to approve: refused
        await run.decide(step, kind, RESPONDER)
    result = await run.result()
    assert not sentinel.exists()
    assert [s.status for s in result.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SKIPPED,
        StepStatus.SUCCEEDED,
    ]
    assert result.steps[0].detail == "done by Rita"
    assert all(s.exit_code is None for s in result.steps)


@pytest.mark.parametrize(
    "mode", [ExecutionMode.COPILOT, ExecutionMode.AUTOPILOT, ExecutionMode.DRY_RUN]
)
async def test_red_always_needs_a_human(
    harness: Harness, tmp_path: Path, mode: ExecutionMode
) -> None:
    sentinel = tmp_path / "ran"
    run = await harness.start(
        cmd("s1", f"rsync -a {tmp_path}/ {sentinel}/ --delete", "red"), mode=mode
    )
    state = await run.until(
        lambda s: s.steps[0].awaiting is not None or s.status != ExecutionStatus.RUNNING
    )
    step = state.steps[0]
    assert not sentinel.exists()
    if mode == ExecutionMode.DRY_RUN:
        # Its dry-run form exists (rsync --dry-run), and still a human must approve it.
        assert step.dry_run and step.command is not None and "--dry-run" in step.command
    assert step.awaiting is not None and step.awaiting.kind == AwaitKind.APPROVAL
    assert step.awaiting.role == "approver"


async def test_a_denied_command_is_shown_and_not_retried(harness: Harness, tmp_path: Path) -> None:
    policy_deny = AgentPolicy(deny=(re.compile(r"\bshutdown\b"),))
    async with running(
        harness.client,
        harness.engine,
        pagerduty_url="http://127.0.0.1:9/v2/enqueue",
        commands=CommandActivities(policy=policy_deny),
    ) as h:
        run = await h.start(cmd("s1", "shutdown -h now || true", "green"))
        result = await run.result()
        events = [e async for e in run.handle.fetch_history_events()]
    commands = {
        e.event_id
        for e in events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "ddoc.run_command"
    }
    failures = [
        e.activity_task_failed_event_attributes
        for e in events
        if e.activity_task_failed_event_attributes.scheduled_event_id in commands
    ]
    step = result.steps[0]
    # Scheduled once, failed once, not retried (even though green steps may be retried).
    assert len(commands) == 1 and len(failures) == 1
    assert failures[0].retry_state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    assert result.status == ExecutionStatus.FAILED
    assert step.status == StepStatus.FAILED
    assert step.detail is not None and "denied by the agent's local policy" in step.detail


async def test_decision_steps_check_by_themselves_or_ask(harness: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    branches = (
        Branch(
            "the output shows CrashLoopBackOff",
            "restart",
            goto="s3",
            check={"output_pattern": "CrashLoopBackOff"},
        ),
        Branch("otherwise", "scale", goto="s4", check=None),
    )
    run = await harness.start(
        cmd("s1", "echo 'api-1 CrashLoopBackOff'", "green"),
        decision("s2", *branches),
        cmd("s3", f"echo restart >> {log}", "green"),
        cmd("s4", f"echo scale >> {log}", "green"),
        cmd("s5", f"echo done >> {log}", "green"),
    )
    result = await run.result()
    assert lines(log) == ["restart", "done"]
    assert result.steps[1].detail == "checked: the output shows CrashLoopBackOff"
    assert result.steps[3].status == StepStatus.SKIPPED
    assert result.steps[3].detail == "branch not taken"

    asked = await harness.start(
        decision(
            "d1",
            Branch("the disk is full", "clean up", goto="c1"),
            Branch("the disk is failing", "replace", goto="c2"),
        ),
        cmd("c1", f"echo cleanup >> {log}", "green"),
        cmd("c2", f"echo replace >> {log}", "green"),
    )
    waiting = await asked.awaiting("d1")
    assert waiting.awaiting is not None and waiting.awaiting.branches == [
        "the disk is full",
        "the disk is failing",
    ]
    assert waiting.awaiting.message.startswith("Which branch applies? Choose its number (1-2)")
    await asked.decide("d1", D.CHOOSE, RESPONDER, branch="7")  # no such branch: refused
    await asked.decide("d1", D.CHOOSE, RESPONDER, branch="2")
    result = await asked.result()
    assert lines(log) == ["restart", "done", "replace"]
    assert result.steps[1].status == StepStatus.SKIPPED
    assert result.steps[0].detail == "chosen by Rita: the disk is failing"

    # "neither": none applies, so no branch's steps run, nobody is paged, and the walk goes on.
    none_applies = await harness.start(
        decision("d1", Branch("the disk is still full", "escalate", goto="e1")),
        manual("e1", "Escalate to the platform team."),
        cmd("c1", f"echo after >> {log}", "green"),
    )
    waiting = await none_applies.awaiting("d1")
    assert waiting.awaiting is not None
    assert waiting.awaiting.message.startswith("Does this apply: the disk is still full?")
    await none_applies.decide("d1", D.CHOOSE, RESPONDER, branch="neither")
    result = await none_applies.result()
    assert result.status == ExecutionStatus.SUCCEEDED and result.escalations == []
    assert result.steps[0].status == StepStatus.SUCCEEDED
    assert result.steps[0].detail == "none applies, chosen by Rita: no branch's steps run"
    assert (result.steps[1].status, result.steps[1].detail) == (
        StepStatus.SKIPPED,
        "branch not taken",
    )
    assert lines(log)[-1] == "after"
    # The new meaning is a patch: its history replays, and so do the recorded ones of the old.
    history = await none_applies.handle.fetch_history()
    await Replayer(workflows=[RunbookExecutionWorkflow]).replay_workflow(history)


async def test_agent_offline_is_shown_escalated_and_never_fails_silently(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    pagerduty: FakePagerDuty,
) -> None:
    # On the dev server, in real time: the schedule-to-start timeout is 2 s here.
    async with running(temporal_env.client, engine, pagerduty_url=pagerduty.url, agent=False) as h:
        set_levels(h, ("L2 platform", ROUTING_L2))
        run = await h.start(cmd("s1", "echo hi", "green"), agent_offline_timeout_seconds=2)
        state = await run.until(
            lambda s: (
                s.steps[0].awaiting is not None and s.steps[0].awaiting.kind == AwaitKind.AGENT
            )
        )
        step = state.steps[0]
        assert step.status == StepStatus.PENDING
        assert step.detail is not None and step.detail.startswith("agent offline")
        assert f"ddoc.agent.{h.tenant_id}.test" in step.detail
        assert state.status == ExecutionStatus.AWAITING_HUMAN
        assert (await paged(pagerduty, 1))[0]["routing_key"] == ROUTING_L2
        await run.until(lambda s: s.status == ExecutionStatus.STALLED, within=15)
        assert len(pagerduty.events) == 1
        await run.decide("s1", D.SKIP, RESPONDER)
        result = await run.result()
    assert result.steps[0].status == StepStatus.SKIPPED
    assert result.steps[0].detail == "skipped by Rita"
    assert result.status == ExecutionStatus.SUCCEEDED


async def test_cancellation_mid_command_stops_it_and_still_undoes(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow", rollback=f"echo undo-s1 >> {log}"),
        cmd("s2", f"echo s2-start >> {log}; sleep 30; echo s2-end >> {log}", "yellow"),
        mode=ExecutionMode.AUTOPILOT,
    )
    await run.until(lambda s: s.steps[1].status == StepStatus.RUNNING)
    for _ in range(100):
        if "s2-start" in lines(log):
            break
        await asyncio.sleep(0.05)
    await run.handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await run.result()
    assert lines(log) == ["s1", "s2-start", "undo-s1"]
    trail = {s["id"]: s for s in harness.trail(run.execution_id)["steps"]}
    assert trail["s2"]["status"] == "unknown"  # it may have changed something: say so
    assert trail["s1"]["status"] == "rolled_back"
