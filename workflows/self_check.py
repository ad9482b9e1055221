"""`SelfCheckWorkflow`: one run of a tenant's self-check (docs/decisions/0018-self-checks.md).

The tenant's Temporal Schedule starts it every night (or `POST /self-checks` by hand):

    plan (control plane: the active runbooks, the agent queue, whether the weekly digest is due)
    for each runbook, one after the other:
        prepare (control plane: the runbook's probe, decided from the classifier)
        probe   (the agent, on ddoc.agent.<tenant>.<environment>: PATH, policy, what may run)
        record  (control plane: passed / failed / drifted)
    finish (the run's counts and findings), then the digest when due

No agent polling the queue is a finding about the run ("agent offline for environment X"),
seen through the probe's schedule-to-start timeout, and ends the run: the runbooks keep their
last results. Nothing here changes anything on the agent's side: what runs is decided by the
control plane and checked again by the agent (agent_worker/selfcheck.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.selfcheck import (
        DigestRequest,
        DigestResult,
        Finding,
        FindingKind,
        ProbeReport,
        SelfCheckFinish,
        SelfCheckInput,
        SelfCheckPlan,
        SelfCheckPlanRequest,
        SelfCheckPrepare,
        SelfCheckRecord,
        SelfCheckRecorded,
        SelfCheckSummary,
        SelfCheckTarget,
    )
    from workflows import timeouts


R = TypeVar("R")


@workflow.defn(name=names.SELF_CHECK_WORKFLOW)
class SelfCheckWorkflow:
    @workflow.run
    async def run(self, inp: SelfCheckInput) -> SelfCheckSummary:
        info = workflow.info()
        plan = await workflow.execute_activity(
            names.SELF_CHECK_PLAN,
            SelfCheckPlanRequest(
                tenant_id=inp.tenant_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                trigger=inp.trigger,
                started_at=workflow.now().isoformat(),
            ),
            result_type=SelfCheckPlan,
            start_to_close_timeout=timeouts.SELF_CHECK_STEP_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
            summary=f"plan the self-check of {inp.tenant_id} ({inp.trigger})",
        )
        if not plan.run_id:
            return SelfCheckSummary(run_id="", findings=plan.findings)
        findings = list(plan.findings)
        for ref in plan.runbooks:
            target = await self._control(
                names.SELF_CHECK_PREPARE,
                SelfCheckPrepare(plan.run_id, inp.tenant_id, ref.runbook_id, ref.version),
                SelfCheckTarget,
                f"probe of {ref.runbook_id} v{ref.version}",
            )
            try:
                report = await workflow.execute_activity(
                    names.SELF_CHECK_PROBE,
                    target.probe,
                    result_type=ProbeReport,
                    task_queue=plan.task_queue,
                    schedule_to_start_timeout=timedelta(seconds=inp.agent_offline_timeout_seconds),
                    start_to_close_timeout=timedelta(
                        seconds=len(target.probe.steps) * target.probe.timeout_seconds
                    )
                    + timeouts.SELF_CHECK_PROBE_MARGIN,
                    heartbeat_timeout=timeouts.SELF_CHECK_PROBE_HEARTBEAT,
                    retry_policy=timeouts.SELF_CHECK_PROBE_RETRY,
                    summary=f"self-check {ref.runbook_id} v{ref.version} ({ref.title})"[:200],
                )
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START:
                    findings.append(
                        Finding(
                            FindingKind.AGENT_OFFLINE.value,
                            f"agent offline for environment {plan.environment}: no agent took "
                            f"the probe from {plan.task_queue} within "
                            f"{inp.agent_offline_timeout_seconds}s; nothing was checked",
                        )
                    )
                    break
                report = ProbeReport(
                    agent="",
                    findings=[
                        Finding(FindingKind.AGENT_ERROR.value, f"the probe failed: {cause or err}")
                    ],
                )
            await self._control(
                names.SELF_CHECK_RECORD,
                SelfCheckRecord(
                    run_id=plan.run_id,
                    tenant_id=inp.tenant_id,
                    runbook_id=ref.runbook_id,
                    version=ref.version,
                    findings=[*target.findings, *report.findings],
                    agent=report.agent or None,
                ),
                SelfCheckRecorded,
                f"record the self-check of {ref.runbook_id}",
            )
        summary = await self._control(
            names.SELF_CHECK_FINISH,
            SelfCheckFinish(run_id=plan.run_id, tenant_id=inp.tenant_id, findings=findings),
            SelfCheckSummary,
            "finish the self-check run",
        )
        if plan.digest_due:
            try:
                digest = await workflow.execute_activity(
                    names.SELF_CHECK_DIGEST,
                    DigestRequest(run_id=plan.run_id, tenant_id=inp.tenant_id),
                    result_type=DigestResult,
                    start_to_close_timeout=timeouts.SELF_CHECK_STEP_TIMEOUT,
                    retry_policy=timeouts.SELF_CHECK_DIGEST_RETRY,
                    summary="the weekly self-check digest (Slack)",
                )
                summary.digest = digest.detail
            except ActivityError as err:
                summary.digest = f"failed: {err.cause or err}"  # the run's results stand
        return summary

    async def _control(self, activity: str, arg: Any, result: type[R], summary: str) -> R:
        """A control-plane activity: database work, retried until the database answers."""
        found: R = await workflow.execute_activity(
            activity,
            arg,
            result_type=result,
            start_to_close_timeout=timeouts.SELF_CHECK_STEP_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
            summary=summary,
        )
        return found
