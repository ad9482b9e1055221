"""`DiagnosticWorkflow`: one green command an assistant asked for (MCP `run_diagnostic`), run on
the tenant's agent through its command activity (local policy, timeout, redaction).

Only a command the control plane classified green is ever started here
(ddoc/execution/diagnostics.py); the agent checks its own policy again. Never retried after it
started: a diagnostic is cheap to ask for again, and "green" is a classification, not a proof.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.diagnostic import DiagnosticInput, DiagnosticOutcome, DiagnosticResult
    from ddoc.contracts.execution import CommandRequest, CommandResult
    from workflows import timeouts

_ONCE = RetryPolicy(maximum_attempts=1)


@workflow.defn(name=names.DIAGNOSTIC_WORKFLOW)
class DiagnosticWorkflow:
    @workflow.run
    async def run(self, inp: DiagnosticInput) -> DiagnosticResult:
        request = CommandRequest(
            execution_id=workflow.info().workflow_id,
            step_id="diagnostic",
            command=inp.command,
            timeout_seconds=inp.timeout_seconds,
        )
        try:
            result = await workflow.execute_activity(
                names.RUN_COMMAND,
                request,
                result_type=CommandResult,
                task_queue=inp.task_queue,
                schedule_to_start_timeout=timedelta(seconds=inp.agent_offline_timeout_seconds),
                start_to_close_timeout=timedelta(seconds=inp.timeout_seconds)
                + timeouts.COMMAND_START_TO_CLOSE_MARGIN,
                heartbeat_timeout=timeouts.COMMAND_HEARTBEAT_TIMEOUT,
                retry_policy=_ONCE,
                summary=f"diagnostic: {inp.command}"[:200],
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "PolicyDenied":
                return DiagnosticResult(DiagnosticOutcome.POLICY_DENIED, reason=cause.message)
            if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
                return DiagnosticResult(
                    DiagnosticOutcome.AGENT_OFFLINE,
                    reason=f"no agent on {inp.task_queue} took it within "
                    f"{inp.agent_offline_timeout_seconds}s",
                )
            message = str(cause) if cause is not None else str(err)
            return DiagnosticResult(DiagnosticOutcome.FAILED, reason=message)
        return DiagnosticResult(
            DiagnosticOutcome.RAN,
            exit_code=result.exit_code,
            output=result.output,
            truncated=result.truncated,
            timed_out=result.timed_out,
            duration_ms=result.duration_ms,
        )
