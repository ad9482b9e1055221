"""The saga: completed state-changing steps register their undo; on failure, rollback or
cancellation the undos run last first, each gated by its own risk like any command step.

An undo that fails is recorded and the others still run; an abort meanwhile stops undoing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts.execution import (
        DecisionKind,
        RiskClass,
        StepSnapshot,
        StepState,
        StepStatus,
    )
    from workflows.execution import rules
    from workflows.execution.state import Compensation, Run
    from workflows.execution.trail import Trail

# Runs one command step (the walk's): snapshot, its state, and whether the undo was suggested.
RunCommand = Callable[[StepSnapshot, StepState, bool], Awaitable[None]]


class Saga:
    def __init__(self, run: Run, trail: Trail) -> None:
        self._run = run
        self._trail = trail

    def register(self, step: StepSnapshot, risk: RiskClass, *, dry: bool) -> None:
        if not rules.compensates(
            risk, step.rollback_command, dry=dry, undoing=self._run.compensating
        ):
            return
        assert step.rollback_command is not None
        self._run.compensations.append(
            Compensation(
                step_id=step.id,
                command=step.rollback_command,
                risk=step.rollback_risk or RiskClass.YELLOW,
                suggested=step.rollback_suggested,
            )
        )

    async def compensate(self, run_command: RunCommand) -> None:
        """Undo the completed steps, last first."""
        run = self._run
        run.compensating = True
        # Popped one at a time: a cancellation mid-way leaves the rest for the next pass.
        while run.compensations:
            compensation = run.compensations.pop()
            undo_id = f"{compensation.step_id}-undo"
            state = StepState(
                step_id=undo_id,
                kind="compensation",
                text=f"Undo step {compensation.step_id}",
                status=StepStatus.PENDING,
                command=compensation.command,
                risk=compensation.risk,
                undoes=compensation.step_id,
            )
            run.steps[undo_id] = state
            if run.stop is not None and run.stop.decision == DecisionKind.ABORT:
                await self._trail.set(state, StepStatus.SKIPPED, "aborted: not undone")
                continue
            snapshot = StepSnapshot(
                id=undo_id,
                text=state.text,
                kind="command",
                command=compensation.command,
                risk=compensation.risk,
            )
            failed_before = run.failed
            await run_command(snapshot, state, compensation.suggested)
            run.failed = failed_before
            if state.status == StepStatus.SUCCEEDED:
                original = run.steps[compensation.step_id]
                await self._trail.set(original, StepStatus.ROLLED_BACK, f"undone by {undo_id}")
        run.compensating = False
