"""Parallel groups and breakpoints on Temporal's time-skipping server (issue 21).

The real workflow, the real control-plane worker and a real agent running real commands;
sentinel files prove what ran, the trail's timestamps how long it took.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ddoc.contracts import names
from ddoc.contracts.execution import (
    AwaitKind,
    BreakpointChange,
    DecisionKind,
    ExecutionMode,
    ExecutionStatus,
)
from ddoc.contracts.execution import StepStatus as S
from tests.engine_harness import RESPONDER, Harness, cmd

D = DecisionKind


def _at(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _span(steps: list[dict[str, Any]], ids: list[str]) -> float:
    chosen = [s for s in steps if s["id"] in ids]
    start = min(_at(s["started_at"]) for s in chosen)
    end = max(_at(s["finished_at"]) for s in chosen)
    return (end - start).total_seconds()


async def test_a_parallel_group_of_three_green_steps_takes_the_time_of_the_slowest(
    harness: Harness, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    started = time.monotonic()
    run = await harness.start(
        cmd("s1", f"echo before > {out}.s1", "green"),
        cmd("g1", "sleep 1; echo one", "green", parallel="p1"),
        cmd("g2", "sleep 1.5; echo two", "green", parallel="p1"),
        cmd("g3", "sleep 2; echo three", "green", parallel="p1"),
        cmd("s5", f"echo after > {out}.s5", "green"),
        mode=ExecutionMode.AUTOPILOT,
    )
    result = await run.result()
    wall = time.monotonic() - started
    assert result.status == ExecutionStatus.SUCCEEDED
    trail = harness.trail(run.execution_id)
    steps = {s["id"]: s for s in trail["steps"]}
    assert [steps[g]["output"].strip() for g in ("g1", "g2", "g3")] == ["one", "two", "three"]
    assert all(steps[g]["status"] == "succeeded" for g in steps)
    slowest = _span(trail["steps"], ["g3"])
    group = _span(trail["steps"], ["g1", "g2", "g3"])
    assert slowest >= 2.0
    assert group <= 1.2 * slowest, f"the group took {group:.2f}s, its slowest step {slowest:.2f}s"
    assert wall < 4.5, f"{wall:.2f}s: the three sleeps (4.5 s) ran one after another"
    # The walk stays in order around the group: s1 before it, s5 after all of it.
    assert _at(steps["s1"]["finished_at"]) <= _at(steps["g1"]["started_at"])
    assert _at(steps["s5"]["started_at"]) >= _at(steps["g3"]["finished_at"])
    parallel = [e for e in harness.events(run.execution_id) if e["type"] == "steps.parallel"]
    assert [e["data"]["steps"] for e in parallel] == [["g1", "g2", "g3"]]


async def test_each_step_of_a_parallel_group_has_its_own_approval(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("y1", f"echo y1 >> {log}.y1", "yellow", parallel="p1"),
        cmd("y2", f"echo y2 >> {log}.y2", "yellow", parallel="p1"),
        cmd("s3", f"echo s3 >> {log}.s3", "green"),
    )
    both = await run.until(lambda s: all(x.awaiting is not None for x in s.steps[:2]))
    assert both.status == ExecutionStatus.AWAITING_HUMAN
    assert {x.awaiting.kind for x in both.steps[:2] if x.awaiting} == {AwaitKind.APPROVAL}
    # Approving y2 runs y2 only; y1 still waits, and so does the execution.
    await run.decide("y2", D.APPROVE, RESPONDER)
    after = await run.until(lambda s: s.steps[1].status == S.SUCCEEDED)
    assert after.steps[0].awaiting is not None and after.status == ExecutionStatus.AWAITING_HUMAN
    assert not Path(f"{log}.y1").exists() and not Path(f"{log}.s3").exists()
    await run.decide("y1", D.APPROVE, RESPONDER)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    for name in ("y1", "y2", "s3"):
        assert Path(f"{log}.{name}").read_text().split() == [name]
    trail = {s["id"]: s for s in harness.trail(run.execution_id)["steps"]}
    assert [d["user_id"] for d in trail["y1"]["decisions"]] == [RESPONDER.user_id]
    assert [d["user_id"] for d in trail["y2"]["decisions"]] == [RESPONDER.user_id]


async def test_an_abort_in_a_parallel_group_stops_the_steps_beside_it(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("g1", f"sleep 30; echo g1 >> {log}.g1", "green", parallel="p1"),
        cmd("y2", f"echo y2 >> {log}.y2", "yellow", parallel="p1"),
        cmd("s3", f"echo s3 >> {log}.s3", "green"),
    )
    await run.until(lambda s: s.steps[0].status == S.RUNNING and s.steps[1].awaiting is not None)
    await run.decide("y2", D.ABORT, RESPONDER)
    try:
        result = await asyncio.wait_for(run.result(), 60)  # g1 is killed, not awaited
    except TimeoutError:
        raise AssertionError(str(await run.state())) from None
    assert result.status == ExecutionStatus.ABORTED
    status = {s.step_id: (s.status, s.detail) for s in result.steps}
    assert status["y2"] == (S.SKIPPED, "aborted by Rita")
    assert status["g1"] == (S.SKIPPED, "stopped before it ran")
    assert status["s3"][0] == S.SKIPPED
    assert not any(Path(f"{log}.{n}").exists() for n in ("g1", "y2", "s3"))


async def test_a_breakpoint_pauses_autopilot_and_continue_resumes(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "green"),
        cmd("s2", f"echo s2 >> {log}", "yellow"),
        cmd("s3", f"echo s3 >> {log}", "green"),
        mode=ExecutionMode.AUTOPILOT,
        breakpoints={"s2": "Rita"},
    )
    paused = await run.awaiting("s2")
    assert paused.awaiting is not None and paused.awaiting.kind == AwaitKind.BREAKPOINT
    assert paused.awaiting.allowed == [D.CONTINUE, D.SKIP]
    assert "breakpoint set by Rita" in paused.awaiting.message
    assert log.read_text().split() == ["s1"]  # autopilot stopped before the yellow step
    await run.decide("s2", D.APPROVE, RESPONDER)  # not what a breakpoint takes: refused
    await run.decide("s2", D.CONTINUE, RESPONDER)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert log.read_text().split() == ["s1", "s2", "s3"]
    s2 = next(s for s in result.steps if s.step_id == "s2")
    assert [(d.decision, d.accepted) for d in s2.decisions] == [
        ("approve", False),
        ("continue", True),
    ]
    events = [e["type"] for e in harness.events(run.execution_id) if e["step_id"] == "s2"]
    assert "step.awaiting_breakpoint" in events


async def test_a_breakpoint_set_on_a_running_execution_pauses_before_its_step(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    gate = tmp_path / "gate"
    run = await harness.start(
        cmd("s1", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo s1 >> {log}", "green"),
        cmd("s2", f"echo s2 >> {log}", "green"),
        cmd("s3", f"echo s3 >> {log}", "green"),
        mode=ExecutionMode.AUTOPILOT,
    )
    await run.until(lambda s: s.steps[0].status == S.RUNNING)
    await run.handle.signal(names.BREAKPOINT_SIGNAL, BreakpointChange("s2", RESPONDER))
    gate.touch()
    paused = await run.awaiting("s2")
    assert paused.awaiting is not None and paused.awaiting.kind == AwaitKind.BREAKPOINT
    assert log.read_text().split() == ["s1"]
    await run.decide("s2", D.SKIP, RESPONDER)
    result = await run.result()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert log.read_text().split() == ["s1", "s3"]
    s2 = next(s for s in result.steps if s.step_id == "s2")
    assert (s2.status, s2.detail) == (S.SKIPPED, "skipped at its breakpoint by Rita")


async def test_a_late_decision_about_a_step_that_moved_on_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    run = await harness.start(
        cmd("s1", f"echo s1 >> {log}", "yellow"),
        cmd("s2", f"echo s2 >> {log}", "yellow"),
    )
    await run.awaiting("s1")
    await run.decide("s1", D.APPROVE, RESPONDER)
    await run.awaiting("s2")
    await run.decide("s1", D.APPROVE, RESPONDER)  # a second click, after s1 moved on
    refused = await run.until(lambda s: bool(s.steps[1].decisions))
    said = refused.steps[1].decisions[0]
    assert (said.accepted, said.reason) == (False, "step s1 is not awaiting a decision")
    assert refused.steps[1].awaiting is not None and log.read_text().split() == ["s1"]
    await run.decide("s2", D.APPROVE, RESPONDER)
    assert (await run.result()).status == ExecutionStatus.SUCCEEDED


async def test_a_failed_check_in_a_parallel_group_is_retried_and_a_failure_ends_the_walk(
    harness: Harness, tmp_path: Path
) -> None:
    from ddoc.runbooks.model import Check

    log, flag = tmp_path / "log", tmp_path / "healthy"
    run = await harness.start(
        cmd(
            "y1",
            f"echo y1 >> {log}.y1",
            "yellow",
            parallel="p1",
            verify=Check(command=f"test -e {flag}", expect={"exit_code": 0}),
        ),
        cmd("g2", f"echo g2 >> {log}.g2", "green", parallel="p1"),
        cmd("g3", f"echo g3 >> {log}.g3; exit 4", "green", parallel="p2"),
        cmd("g4", f"sleep 1; echo g4 >> {log}.g4", "green", parallel="p2"),
        cmd("s5", f"echo s5 >> {log}.s5", "green"),
    )
    await run.awaiting("y1")
    await run.decide("y1", D.APPROVE, RESPONDER)
    failed = await run.until(
        lambda s: (
            s.steps[0].awaiting is not None and s.steps[0].awaiting.kind == AwaitKind.VERIFICATION
        )
    )
    assert failed.steps[1].status == S.SUCCEEDED  # g2 went on beside it
    flag.touch()
    await run.decide("y1", D.RETRY, RESPONDER)
    result = await run.result()
    status = {s.step_id: s.status for s in result.steps}
    assert status["y1"] == S.SUCCEEDED
    # g3 failed: g4 beside it still finished, s5 after the group never ran.
    assert (status["g3"], status["g4"], status["s5"]) == (S.FAILED, S.SUCCEEDED, S.SKIPPED)
    assert result.status == ExecutionStatus.FAILED
    assert Path(f"{log}.y1").read_text().split() == ["y1"]
    assert Path(f"{log}.g4").exists() and not Path(f"{log}.s5").exists()


async def test_a_failure_in_a_parallel_group_asks_nobody_about_the_steps_beside_it(
    harness: Harness, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    gate = tmp_path / "gate"
    run = await harness.start(
        cmd("g1", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 2", "green", parallel="p1"),
        cmd("y2", f"echo y2 >> {log}", "yellow", parallel="p1"),
    )
    await run.awaiting("y2")
    gate.touch()  # g1 fails while y2 waits for its approval
    result = await run.result()
    assert result.status == ExecutionStatus.FAILED
    y2 = next(s for s in result.steps if s.step_id == "y2")
    assert (y2.status, y2.detail, y2.awaiting) == (
        S.SKIPPED,
        "not run: step g1 beside it failed",
        None,
    )
    assert not log.exists()
