"""The human of a chaos scenario: reads the execution's state from its workflow (while the
server may be down) and answers what it asks until it ends."""

from __future__ import annotations

import asyncio

from temporalio.service import RPCError

from ddoc.contracts.execution import AwaitKind, DecisionKind, ExecutionResult, ExecutionStatus
from tests.chaos.conftest import Chaos
from tests.engine_harness import RESPONDER, Run

TERMINAL = {
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.ROLLED_BACK,
    ExecutionStatus.ABORTED,
}


async def state(run: Run) -> ExecutionResult | None:
    try:
        return await asyncio.wait_for(run.state(), 10)
    except (RPCError, TimeoutError):
        return None  # the server is (still) down or the worker not back yet


async def drive(run: Run, chaos: Chaos, *, within: float) -> ExecutionResult:
    """Answer what the execution asks until it ends: approve approvals, and say an unknown
    outcome was done. Every answer is noted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    answered: set[tuple[str, str, int]] = set()
    last: ExecutionResult | None = None
    while loop.time() < deadline:
        current = await state(run)
        if current is not None:
            last = current
            if current.status in TERMINAL:
                return current
            for step in current.steps:
                if step.awaiting is None:
                    continue
                kind = step.awaiting.kind
                key = (step.step_id, kind.value, step.awaiting.escalation_level)
                if key in answered:
                    continue
                if kind == AwaitKind.APPROVAL:
                    decision = DecisionKind.APPROVE
                elif kind == AwaitKind.OUTCOME:
                    decision = DecisionKind.DONE
                else:
                    continue
                try:
                    await run.decide(step.step_id, decision, RESPONDER)
                except RPCError:
                    continue
                answered.add(key)
                chaos.note(f"{step.step_id} awaited {kind.value}: answered {decision.value}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"the execution did not end within {within}s; last state: {last}")
