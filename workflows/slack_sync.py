"""`SlackSyncWorkflow`: keeps one execution's Slack message in step, apart from the execution.

The notifier signals `changed` (signal-with-start) whenever the execution's trail moves; the
workflow coalesces the signals and runs the `ddoc.slack_sync` activity, which retries through
rate limits and outages. The execution workflow never waits for Slack, so Slack being down
never blocks or fails an execution; the message catches up when Slack returns.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.execution import SlackSyncInput, SlackSyncResult
    from workflows import timeouts

# After the execution is over, later changes (an incident escalation) are still posted for
# this long; with nothing left to post the workflow ends.
LINGER = timedelta(hours=2)
IDLE = timedelta(hours=24)
SYNCS_PER_RUN = 500  # then continue-as-new, keeping the history small


@workflow.defn(name=names.SLACK_SYNC_WORKFLOW)
class SlackSyncWorkflow:
    def __init__(self) -> None:
        self._pending = False

    @workflow.signal(name=names.SLACK_CHANGED_SIGNAL)
    def changed(self) -> None:
        self._pending = True

    @workflow.run
    async def run(self, inp: SlackSyncInput) -> None:
        finished = False
        # What the Temporal UI says of this workflow's timers and activities.
        subject = (
            f"execution {inp.execution_id}"
            if inp.execution_id
            else f"incident {inp.incident_id or '-'}"
        )
        for _ in range(SYNCS_PER_RUN):
            wait = LINGER if finished else IDLE
            try:
                await workflow.wait_condition(
                    lambda: self._pending,
                    timeout=wait,
                    timeout_summary=f"next change of {subject} · ends after "
                    f"{int(wait.total_seconds() // 3600)} h without one",
                )
            except TimeoutError:
                return
            self._pending = False
            try:
                result = await workflow.execute_activity(
                    names.SLACK_SYNC,
                    inp,
                    result_type=SlackSyncResult,
                    start_to_close_timeout=timeouts.SLACK_SYNC_TIMEOUT,
                    retry_policy=timeouts.SLACK_RETRY,
                    summary=f"update the Slack message of {subject}",
                )
            except ActivityError:
                return  # a set-up error: recorded for the tenant's admin; nothing to retry
            finished = result.finished
        workflow.continue_as_new(inp)
