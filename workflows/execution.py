"""`RunbookExecutionWorkflow`: one durable execution of a runbook version for an incident.

The foundation path: read-only (green) command steps run by themselves on the tenant's agent
task queue and their results are recorded; every other step is recorded as not run, with the
reason. Approvals, escalation and compensations build on this loop.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities.commands import CommandActivities
    from activities.store import ExecutionStore
    from ddoc import temporal as attrs
    from ddoc.contracts import (
        AlertResolved,
        CommandRequest,
        CommandResult,
        ExecutionInput,
        ExecutionResult,
        ExecutionStatus,
        ExecutionStatusUpdate,
        StepOutcome,
        StepRecord,
        StepSnapshot,
        StepStatus,
    )
    from ddoc.render import render_command, resolve_values
    from ddoc.settings import agent_task_queue
    from workflows import timeouts


@workflow.defn(name="RunbookExecution")
class RunbookExecutionWorkflow:
    def __init__(self) -> None:
        self._status = ExecutionStatus.RUNNING
        self._steps: dict[str, StepOutcome] = {}
        self._current: str | None = None
        self._alert_resolved: AlertResolved | None = None

    @workflow.signal
    def alert_resolved(self, signal: AlertResolved) -> None:
        self._alert_resolved = signal

    @workflow.query
    def state(self) -> ExecutionResult:
        return ExecutionResult(
            execution_id=workflow.info().workflow_id,
            status=self._status,
            steps=list(self._steps.values()),
        )

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        for step in inp.steps:
            self._steps[step.id] = StepOutcome(step_id=step.id, status=StepStatus.PENDING)
        values = resolve_values(inp.variables, inp.alert, inp.values)
        # First thing: the trail records that this execution really runs (intake relies on it
        # to know a start went through).
        await self._publish_status(inp)

        for step in inp.steps:
            if self._status != ExecutionStatus.RUNNING:
                await self._record(inp, step.id, StepStatus.SKIPPED, detail="not reached")
                continue
            await self._run_step(inp, step, values)

        if self._status == ExecutionStatus.RUNNING:
            self._status = ExecutionStatus.SUCCEEDED
        self._current = None
        await self._publish_status(inp)
        return self.state()

    async def _run_step(
        self, inp: ExecutionInput, step: StepSnapshot, values: dict[str, str]
    ) -> None:
        if not step.command:
            await self._record(
                inp, step.id, StepStatus.SKIPPED, detail=f"{step.kind} step: nothing to run"
            )
            return
        if step.risk != "green":
            await self._record(
                inp,
                step.id,
                StepStatus.SKIPPED,
                detail=f"{step.risk} step: not run without a human's approval",
            )
            return
        rendered = render_command(step.command, inp.variables, values)
        if rendered.missing:
            await self._record(
                inp,
                step.id,
                StepStatus.SKIPPED,
                detail="no value for " + ", ".join(rendered.missing),
            )
            return

        self._current = step.id
        await self._record(inp, step.id, StepStatus.RUNNING, command=rendered.command)
        await self._publish_status(inp)
        try:
            result: CommandResult = await workflow.execute_activity_method(
                CommandActivities.run_command,
                CommandRequest(
                    execution_id=inp.execution_id,
                    step_id=step.id,
                    command=rendered.command,
                    env=rendered.env,
                    timeout_seconds=inp.command_timeout_seconds,
                ),
                task_queue=agent_task_queue(inp.tenant_id, inp.environment),
                schedule_to_start_timeout=timedelta(seconds=inp.agent_offline_timeout_seconds),
                start_to_close_timeout=timedelta(seconds=inp.command_timeout_seconds)
                + timeouts.COMMAND_START_TO_CLOSE_MARGIN,
                heartbeat_timeout=timeouts.COMMAND_HEARTBEAT_TIMEOUT,
                retry_policy=timeouts.GREEN_COMMAND_RETRY,
            )
        except ActivityError as err:
            self._status = ExecutionStatus.FAILED
            await self._record(inp, step.id, StepStatus.FAILED, detail=_describe(err, inp))
            return

        succeeded = result.exit_code == 0
        await self._record(
            inp,
            step.id,
            StepStatus.SUCCEEDED if succeeded else StepStatus.FAILED,
            exit_code=result.exit_code,
            output=result.output,
            output_truncated=result.truncated,
            detail="timed out" if result.timed_out else None,
        )
        if not succeeded:
            self._status = ExecutionStatus.FAILED

    async def _record(
        self,
        inp: ExecutionInput,
        step_id: str,
        status: StepStatus,
        *,
        exit_code: int | None = None,
        output: str | None = None,
        output_truncated: bool = False,
        detail: str | None = None,
        command: str | None = None,
    ) -> None:
        self._steps[step_id] = StepOutcome(
            step_id=step_id, status=status, exit_code=exit_code, detail=detail
        )
        await workflow.execute_activity_method(
            ExecutionStore.record_step,
            StepRecord(
                execution_id=inp.execution_id,
                tenant_id=inp.tenant_id,
                step_id=step_id,
                status=status,
                exit_code=exit_code,
                output=output,
                output_truncated=output_truncated,
                detail=detail,
                command=command,
            ),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
        )

    async def _publish_status(self, inp: ExecutionInput) -> None:
        updates: list[SearchAttributeUpdate[str]] = [
            attrs.EXECUTION_STATUS.value_set(self._status.value)
        ]
        updates.append(
            attrs.CURRENT_STEP.value_set(self._current)
            if self._current
            else attrs.CURRENT_STEP.value_unset()
        )
        workflow.upsert_search_attributes(updates)
        await workflow.execute_activity_method(
            ExecutionStore.record_execution_status,
            ExecutionStatusUpdate(
                execution_id=inp.execution_id, tenant_id=inp.tenant_id, status=self._status
            ),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
        )


def _describe(err: ActivityError, inp: ExecutionInput) -> str:
    cause = err.cause
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
        queue = agent_task_queue(inp.tenant_id, inp.environment)
        return (
            f"agent offline: no agent took the step from {queue} within "
            f"{inp.agent_offline_timeout_seconds}s"
        )
    return f"command could not run: {cause or err}"
