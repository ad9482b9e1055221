"""The execution's trail: every transition is in Postgres before the next side effect.

Since the `trail-v2` patch the trail's writes are queued and written together by ONE local
activity (`ddoc.record_transition`, one transaction) at `flush()`, which the workflow's parts
call before every side effect and every wait: before a command, a classification or a page is
scheduled, before waiting for a human or for the agent, at the end, and as soon as a command's
output is recorded (the output lives only in the trail). A local activity runs
in the worker that runs the workflow, inside the same workflow task: a flush costs a database
transaction and no round trip through the Temporal server, and it is committed before the
workflow goes on, so nothing runs, and nobody is asked, before the trail shows it.

Executions started before the patch replay, and go on, with the trail they were started with:
one activity per record (`ddoc.record_step`, `ddoc.record_execution_status`,
`ddoc.record_event`), written at once (`flush()` does nothing for them).

The end of an execution is followed by an explicit `ddoc.after_execution` (learning, trust
demotion); before the patch the status write did that by itself.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts import temporal as attrs
    from ddoc.contracts.execution import (
        ExecutionEvent,
        ExecutionFinished,
        ExecutionStatus,
        ExecutionStatusUpdate,
        StepRecord,
        StepState,
        StepStatus,
        TrailOp,
        TrailWrite,
    )
    from workflows import timeouts
    from workflows.execution import story
    from workflows.execution.state import WAITING, Run

TRAIL_V2 = "trail-v2"  # writes batched into local activities, and an explicit after-execution
_OPEN = (StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL, StepStatus.UNKNOWN)


class Trail:
    def __init__(self, run: Run) -> None:
        self._run = run
        self._v2 = False
        self._published: tuple[ExecutionStatus, str | None] | None = None
        self._recorded_status: ExecutionStatus | None = None
        self._pending: list[TrailOp] = []
        # The steps of a parallel group flush side by side: one write at a time keeps the
        # trail's order (uncontended, as when steps walk in order, it never yields).
        self._writing = asyncio.Lock()

    def start(self) -> None:
        """Pick the trail's form once, before its first write (see the module docstring)."""
        self._v2 = workflow.patched(TRAIL_V2)

    async def set(
        self,
        state: StepState,
        status: StepStatus,
        detail: str | None = None,
        *,
        exit_code: int | None = None,
        output: str | None = None,
        truncated: bool = False,
        event: str | None = None,
    ) -> None:
        """A step's transition: its new state, and the execution's current step and status."""
        state.status = status
        state.detail = detail
        if exit_code is not None:
            state.exit_code = exit_code
        if status in _OPEN:
            self._run.current = state.step_id
        elif status != StepStatus.PENDING:
            state.finished_at = workflow.now().isoformat()
        record = self._step_record(state, output=output, truncated=truncated, event=event)
        self.show()
        if self._v2:
            self._pending.append(TrailOp(step=record, status=self._publish_status()))
            if output is not None:
                # A command's output lives only in the trail (not in the workflow's state): it
                # is written before the walk moves on and a reader sees the next step.
                await self.flush()
            return
        await self._activity(names.RECORD_STEP, TrailOp(step=record))
        await self.publish()

    async def record(
        self,
        state: StepState,
        *,
        output: str | None = None,
        truncated: bool = False,
        event: str | None = None,
    ) -> None:
        """The step's state as it is now (a decision refused, an escalation level, ...)."""
        record = self._step_record(state, output=output, truncated=truncated, event=event)
        self.show()
        if self._v2:
            self._pending.append(TrailOp(step=record))
        else:
            await self._activity(names.RECORD_STEP, TrailOp(step=record))

    async def event(self, kind: str, step_id: str | None, data: dict[str, Any]) -> None:
        inp = self._run.input
        event = ExecutionEvent(
            execution_id=inp.execution_id,
            tenant_id=inp.tenant_id,
            type=kind,
            step_id=step_id,
            data=data,
        )
        if self._v2:
            self._pending.append(TrailOp(event=event))
        else:
            await self._activity(names.RECORD_EVENT, TrailOp(event=event))

    async def set_status(self, status: ExecutionStatus) -> None:
        self._run.status = status
        if status not in (ExecutionStatus.RUNNING, *WAITING):
            self._run.current = None
        await self.publish()

    async def publish(self) -> None:
        """Search attributes and the UI's current details on every transition; the database
        row when the execution's status changed."""
        self.show()
        update = self._publish_status()
        if update is None:
            return
        if self._v2:
            self._pending.append(TrailOp(status=update))
        else:
            await self._activity(names.RECORD_EXECUTION_STATUS, TrailOp(status=update))

    def show(self) -> None:
        """The workflow's current details in the Temporal UI: the step list as it is now
        (user metadata, no command: set on every change, before every wait)."""
        run = self._run
        inp = run.input
        workflow.set_current_details(
            story.details(
                title=inp.runbook_title,
                version=inp.runbook_version,
                mode=inp.mode.value,
                status=run.status,
                steps=run.steps.values(),
            )
        )

    async def flush(self) -> None:
        """Write what is queued, in one transaction, before the workflow goes on."""
        self.show()  # whatever changed since (a deadline, an approval so far) is shown too
        if not self._pending:
            return
        async with self._writing:
            await self._write()

    async def _write(self) -> None:
        if not self._pending:
            return  # written meanwhile, by the flush this one waited for
        inp = self._run.input
        ops, self._pending = self._pending, []
        try:
            await workflow.execute_local_activity(
                names.RECORD_TRANSITION,
                TrailWrite(execution_id=inp.execution_id, tenant_id=inp.tenant_id, ops=ops),
                start_to_close_timeout=timeouts.RECORD_TIMEOUT,
                retry_policy=timeouts.RECORD_RETRY,
                summary=story.trail_summary(ops),
            )
        except BaseException:
            # Cancelled mid-write: written again (idempotently) by the next flush, on the way
            # out of the cancelled execution.
            self._pending[:0] = ops
            raise

    async def finished(self) -> None:
        """The execution ended: the trail shows it, then what it teaches is drawn (learning,
        trust demotion)."""
        if not self._v2:
            return  # the status write of the old trail did both
        await self.flush()
        inp = self._run.input
        await workflow.execute_local_activity(
            names.AFTER_EXECUTION,
            ExecutionFinished(
                execution_id=inp.execution_id, tenant_id=inp.tenant_id, status=self._run.status
            ),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
            summary=story.after_execution_summary(self._run.status),
        )

    def _publish_status(self) -> ExecutionStatusUpdate | None:
        """Update what Temporal shows; the status to record when it changed since the last."""
        run = self._run
        shown = (run.status, run.current)
        if shown != self._published:
            self._published = shown
            updates: list[SearchAttributeUpdate[str]] = [
                attrs.EXECUTION_STATUS.value_set(run.status.value),
                attrs.CURRENT_STEP.value_set(run.current)
                if run.current
                else attrs.CURRENT_STEP.value_unset(),
            ]
            workflow.upsert_search_attributes(updates)
        if run.status == self._recorded_status:
            return None
        self._recorded_status = run.status
        inp = run.input
        return ExecutionStatusUpdate(
            execution_id=inp.execution_id,
            tenant_id=inp.tenant_id,
            status=run.status,
            current_step=run.current,
        )

    def _step_record(
        self, state: StepState, *, output: str | None, truncated: bool, event: str | None
    ) -> StepRecord:
        inp = self._run.input
        return StepRecord(
            execution_id=inp.execution_id,
            tenant_id=inp.tenant_id,
            step_id=state.step_id,
            status=state.status,
            exit_code=state.exit_code,
            output=output,
            output_truncated=truncated,
            detail=state.detail,
            command=state.command,
            kind=state.kind,
            text=state.text,
            risk=state.risk,
            undoes=state.undoes,
            edited_by=state.edited_by,
            # Copies: the record says the step as it is now, even if it waits in the queue
            # while the step changes.
            decisions=copy.deepcopy(state.decisions),
            awaiting=copy.deepcopy(state.awaiting),
            event=event or f"step.{state.status.value}",
        )

    async def _activity(self, name: str, op: TrailOp) -> None:
        """One record as an activity of its own (the trail before `trail-v2`)."""
        await workflow.execute_activity(
            name,
            op.step or op.status or op.event,
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
            summary=story.trail_summary([op]),
        )
