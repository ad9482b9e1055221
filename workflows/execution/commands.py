"""Command steps: values, approvals, the agent, and what happens when the agent is lost.

A command step (or an undo) first gets its variable values (asking for missing ones), then the
approvals its risk needs in this mode (an edit is re-classified and approved at its new risk),
then runs on the tenant's agent task queue. Only read-only commands are retried by themselves:
a state change whose agent was lost is never run again without a human saying so. While no
agent polls, the step waits visibly and escalates; nothing is lost.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.approvals import (
        EXECUTION_DECISIONS,
        RefusalCode,
        approvals_needed,
        refusal,
        role_for,
        satisfied,
    )
    from ddoc.contracts.execution import (
        Actor,
        Awaiting,
        AwaitKind,
        CheckSnapshot,
        Classification,
        ClassifyRequest,
        CommandRequest,
        CommandResult,
        Decision,
        DecisionKind,
        ExecutionMode,
        ExecutionStatus,
        RiskClass,
        StepSnapshot,
        StepState,
        StepStatus,
    )
    from ddoc.contracts.render import RenderedCommand, render_command
    from ddoc.contracts.settings import agent_task_queue
    from workflows import timeouts
    from workflows.execution import rules, story
    from workflows.execution.saga import Saga
    from workflows.execution.state import Run
    from workflows.execution.trail import Trail
    from workflows.execution.waits import HumanWaits

_D = DecisionKind
_AUTOPILOT = Actor(user_id="autopilot", display_name="autopilot", source="temporal")
# Patches (workflow.patched): a step with a precheck or a verify check (new since issue 19).
VERIFIED_STEPS = "verified-steps"


class CommandSteps:
    def __init__(self, run: Run, trail: Trail, waits: HumanWaits, saga: Saga) -> None:
        self._run = run
        self._trail = trail
        self._waits = waits
        self._saga = saga

    async def run(
        self,
        step: StepSnapshot,
        state: StepState,
        index: int,
        *,
        suggested: bool = False,
    ) -> None:
        """A command step (or a compensation): values, approvals, then the agent."""
        inp = self._run.input
        command, risk = step.command or "", step.risk or RiskClass.YELLOW
        edited_by: str | None = None
        dry = inp.mode == ExecutionMode.DRY_RUN
        while True:
            rendered = render_command(command, inp.variables, self._run.values)
            state.command, state.risk = rendered.command, risk
            if rendered.missing:
                decision = await self._waits.ask(
                    state,
                    Awaiting(
                        kind=AwaitKind.VALUES,
                        allowed=[_D.PROVIDE, _D.SKIP, _D.EDIT],
                        missing=list(rendered.missing),
                        message="The alert carries no value for "
                        + ", ".join(rendered.missing)
                        + ": provide them to go on.",
                    ),
                    edited_by=edited_by,
                )
                if decision is None:
                    return
                if decision.decision == _D.SKIP:
                    await self._skipped(state, decision)
                    return
                if decision.decision == _D.PROVIDE:
                    self._run.values.update(decision.values)
                    continue
                command, risk = await self._edited(state, decision)
                edited_by = decision.actor.user_id
                continue
            if dry:
                form = step.dry_run_command if command == step.command else None
                if form is None:
                    state.dry_run = True
                    await self._trail.set(
                        state, StepStatus.SKIPPED, "dry run: shown, not run (no dry-run form)"
                    )
                    return
                rendered = render_command(form, inp.variables, self._run.values)
                state.command, state.dry_run = rendered.command, True
                if any(value.startswith("-") for value in rendered.env.values()):
                    # A value such as `--` could turn the dry-run flag into a mere argument.
                    await self._trail.set(
                        state, StepStatus.SKIPPED, "dry run: shown, not run (a value starts with -)"
                    )
                    return
            needed = approvals_needed(
                inp.mode, risk, inp.policy, edited=edited_by is not None or suggested
            )
            if needed:
                decision = await self._approval(state, risk, needed, edited_by)
                if decision is None:
                    return
                if decision.decision == _D.EDIT:
                    command, risk = await self._edited(state, decision)
                    edited_by = decision.actor.user_id
                    continue
            break
        if step.precheck is not None and not dry and not await self._precheck(step, state):
            return
        await self._execute(step, state, rendered, risk, index, dry=dry)

    async def _approval(
        self, state: StepState, risk: RiskClass, needed: int, edited_by: str | None
    ) -> Decision | None:
        """Approve (enough of them) or edit: returned. Reject, skip, a stop: None."""
        inp = self._run.input
        role = role_for(risk)
        awaiting = Awaiting(
            kind=AwaitKind.APPROVAL,
            allowed=[_D.APPROVE, _D.REJECT, _D.SKIP, _D.EDIT],
            role=role,
            approvals_needed=needed,
            message=rules.approval_prompt(risk, needed, role),
        )
        while True:
            decision = await self._waits.ask(state, awaiting, edited_by=edited_by)
            if decision is None:
                return None
            if decision.decision == _D.APPROVE:
                awaiting.approved_by.append(decision.actor.user_id)
                if satisfied(awaiting, started_by=inp.started_by):
                    return decision
                if len(awaiting.approved_by) >= needed:
                    awaiting.message = (
                        "four-eyes: whoever started this run by hand needs a second approver"
                    )
                continue
            if decision.decision == _D.REJECT:
                self._run.stop = decision
                await self._trail.set(
                    state, StepStatus.SKIPPED, f"rejected by {decision.actor.display_name}"
                )
                return None
            if decision.decision == _D.SKIP:
                await self._skipped(state, decision)
                return None
            return decision

    async def _edited(self, state: StepState, decision: Decision) -> tuple[str, RiskClass]:
        """An edit: the new command, classified by the tenant's rules (never trusted as is)."""
        inp = self._run.input
        command = (decision.command or "").strip()
        await self._trail.flush()
        classified = await workflow.execute_activity(
            names.CLASSIFY_COMMAND,
            ClassifyRequest(tenant_id=inp.tenant_id, command=command),
            result_type=Classification,
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
            summary=story.classify_summary(state.step_id, command),
        )
        state.edited_by = decision.actor.user_id
        state.decisions[-1].reason = f"re-classified {classified.risk}: {classified.reason}"
        return command, classified.risk

    async def _skipped(self, state: StepState, decision: Decision) -> None:
        await self._trail.set(
            state, StepStatus.SKIPPED, f"skipped by {decision.actor.display_name}"
        )

    async def _execute(
        self,
        step: StepSnapshot,
        state: StepState,
        rendered: RenderedCommand,
        risk: RiskClass,
        index: int,
        *,
        dry: bool,
    ) -> None:
        inp = self._run.input
        queue = agent_task_queue(inp.tenant_id, inp.environment)
        read_only = risk == RiskClass.GREEN or dry
        offline_level = 0
        while True:
            if offline_level == 0:  # while no agent polls, the step stays visibly pending
                state.started_at = workflow.now().isoformat()
                await self._trail.set(state, StepStatus.RUNNING)
            await self._trail.flush()  # the trail shows the step running before it runs
            handle = workflow.start_activity(
                names.RUN_COMMAND,
                CommandRequest(
                    execution_id=inp.execution_id,
                    step_id=state.step_id,
                    command=rendered.command,
                    env=rendered.env,
                    timeout_seconds=inp.command_timeout_seconds,
                ),
                result_type=CommandResult,
                task_queue=queue,
                schedule_to_start_timeout=timedelta(seconds=inp.agent_offline_timeout_seconds),
                start_to_close_timeout=timedelta(seconds=inp.command_timeout_seconds)
                + timeouts.COMMAND_START_TO_CLOSE_MARGIN,
                heartbeat_timeout=timedelta(seconds=inp.policy.heartbeat_timeout_seconds),
                # At most once for state changes: only read-only commands are retried.
                retry_policy=timeouts.GREEN_COMMAND_RETRY
                if read_only
                else timeouts.STATE_CHANGE_COMMAND_RETRY,
                # A stop waits until the agent confirms the process group was killed.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=story.command_summary(
                    state.step_id, rendered.command, dry=dry, undoes=state.undoes
                ),
            )
            try:
                result = await self._running(state, handle)
            except ActivityError as err:
                cause = err.cause
                if _timed_out(err, TimeoutType.SCHEDULE_TO_START):
                    # Nothing ran: scheduling again is safe, even for a red step.
                    offline_level += 1
                    if await self._agent_offline(state, queue, offline_level):
                        continue
                    return
                if isinstance(cause, ApplicationError) and cause.type == "PolicyDenied":
                    await self._trail.set(state, StepStatus.FAILED, cause.message)
                    self._run.failed = state.step_id
                    return
                if isinstance(cause, CancelledError):
                    if workflow.cancellation_reason() is not None:
                        raise  # the whole workflow is cancelled: run() undoes what ran
                    await self._stopped_while_running(state, read_only)
                    return
                if read_only:
                    await self._trail.set(
                        state, StepStatus.FAILED, f"command could not run: {cause}"
                    )
                    self._run.failed = state.step_id
                    return
                if await self._unknown_outcome(step, state, risk, cause):
                    continue
                return
            break
        if offline_level:
            state.awaiting = None  # an agent came back and ran it
            await self._trail.set_status(ExecutionStatus.RUNNING)
        self._run.last_result = result
        detail = "timed out" if result.timed_out else None
        if result.exit_code == 0 and step.verify is not None and not dry:
            # The change ran: its undo is registered before it is verified, so a rollback
            # decided while (or because) the verification fails undoes it.
            workflow.patched(VERIFIED_STEPS)
            await self._trail.set(
                state,
                StepStatus.RUNNING,
                f"ran (exit 0); verifying: {rules.expectation(step.verify.expect)}",
                exit_code=0,
                output=result.output,
                truncated=result.truncated,
            )
            self._saga.register(step, risk, dry=dry)
            await self._verify(step, state, risk)
            return
        if result.exit_code == 0:
            await self._trail.set(
                state,
                StepStatus.SUCCEEDED,
                detail,
                exit_code=0,
                output=result.output,
                truncated=result.truncated,
            )
            self._saga.register(step, risk, dry=dry)
            return
        if rules.feeds_decision(self._run.input.steps, index):
            detail = f"exit {result.exit_code}: the next decision step checks it"
        await self._trail.set(
            state,
            StepStatus.FAILED,
            detail,
            exit_code=result.exit_code,
            output=result.output,
            truncated=result.truncated,
        )
        if not rules.feeds_decision(self._run.input.steps, index):
            self._run.failed = state.step_id

    async def _running(self, state: StepState, handle: Any) -> CommandResult:
        """Wait for the agent. Meanwhile only abort or rollback are taken (and skip while no
        agent took the step): they cancel the activity, and the agent kills the command's
        process group."""
        waits, step_id = self._waits, state.step_id
        cancelled = False

        def stopped_beside() -> bool:
            return not cancelled and waits.stopped_beside(state)

        try:
            while True:
                await self._trail.flush()  # refusals, the offline step: shown while it runs
                await workflow.wait_condition(
                    lambda: handle.done() or waits.waiting(step_id) or stopped_beside()
                )
                if handle.done():
                    result: CommandResult = await handle
                    return result
                if waits.waiting(step_id):
                    decision = waits.take(step_id)
                    assert decision is not None
                    if await self._interrupts(state, decision):
                        handle.cancel()
                else:  # a step beside it stopped the execution: so is this one's command
                    cancelled = True
                    handle.cancel()
        except asyncio.CancelledError:
            handle.cancel()  # the workflow itself is cancelled: so is its command
            raise

    async def _interrupts(self, state: StepState, decision: Decision) -> bool:
        """A decision that arrives while the step's command (or check) runs: abort or rollback
        stop the execution, a skip is taken while no agent took the step; anything else is
        refused on the record. True when it was taken."""
        offline = state.awaiting is not None and state.awaiting.kind == AwaitKind.AGENT
        why = refusal(decision, state.awaiting if offline else None)
        reason = why.reason if why else None
        if self._waits.elsewhere(state, decision):
            reason = f"step {decision.step_id} is not awaiting a decision"
        elif why is not None and why.code == RefusalCode.NOT_AWAITING and not offline:
            reason = f"step {state.step_id} is running: only abort or rollback now"
        if reason is None and self._run.compensating and decision.decision == _D.ROLLBACK:
            reason = "already rolling back"
        if reason is not None:
            await self._waits.refused(state, decision, reason)
            return False
        self._waits.accept(state, decision)
        if decision.decision in EXECUTION_DECISIONS:
            self._run.stop = decision
        else:
            self._run.skipped_offline = decision
        return True

    # -- checks ------------------------------------------------------------------------

    async def _precheck(self, step: StepSnapshot, state: StepState) -> bool:
        """The step's precheck, right before its change (after the approvals, so what it saw
        is still true when the change runs). False: the change must not run."""
        assert step.precheck is not None
        workflow.patched(VERIFIED_STEPS)
        await self._trail.set(
            state, StepStatus.RUNNING, f"precheck: {rules.expectation(step.precheck.expect)}"
        )
        outcome = await self._check(state, step.precheck, "precheck")
        if outcome is None:
            await self._trail.set(state, StepStatus.SKIPPED, "stopped during its precheck")
            return False
        passed, said = outcome
        if passed:
            await self._trail.set(state, StepStatus.RUNNING, said, event="step.precheck_passed")
            return True
        await self._trail.set(
            state,
            StepStatus.FAILED,
            f"{said}: the change did not run",
            event="step.precheck_failed",
        )
        self._run.failed = state.step_id
        return False

    async def _verify(self, step: StepSnapshot, state: StepState, risk: RiskClass) -> None:
        """After the change: verified, the step succeeds. Not verified: in autopilot its undo
        (and the others') runs by itself and a human is paged; in copilot the rollback is
        offered first, beside retrying the check, going on anyway, or aborting."""
        assert step.verify is not None
        run, inp = self._run, self._run.input
        while True:
            outcome = await self._check(state, step.verify, "verify")
            if outcome is None:
                assert run.stop is not None
                await self._trail.set(
                    state,
                    StepStatus.SUCCEEDED,
                    f"ran (exit 0); verification stopped by {run.stop.actor.display_name}",
                )
                return
            passed, said = outcome
            if passed:
                await self._trail.set(state, StepStatus.SUCCEEDED, said, event="step.verified")
                return
            undoable = any(c.step_id == step.id for c in run.compensations)
            if inp.mode == ExecutionMode.AUTOPILOT:
                await self._trail.set(
                    state, StepStatus.VERIFICATION_FAILED, said, event="step.verification_failed"
                )
                if undoable:
                    run.stop = Decision(step_id=step.id, decision=_D.ROLLBACK, actor=_AUTOPILOT)
                else:
                    run.failed = step.id
                await self._waits.escalate(
                    1,
                    step.id,
                    f"autopilot: step {step.id} ran but its verification failed ({said}); "
                    + ("rolling back" if undoable else "it has no rollback: a human must look"),
                )
                return
            decision = await self._waits.ask(
                state,
                Awaiting(
                    kind=AwaitKind.VERIFICATION,
                    allowed=[_D.ROLLBACK, _D.RETRY, _D.DONE, _D.ABORT],
                    role=role_for(risk),
                    message=rules.verification_prompt(said, undoable=undoable),
                ),
                status=StepStatus.VERIFICATION_FAILED,
                detail=said,
            )
            if decision is None:
                return  # rolled back or aborted: the step keeps its failed verification
            if decision.decision == _D.DONE:
                await self._trail.set(
                    state,
                    StepStatus.SUCCEEDED,
                    f"{said}; going on anyway, said {decision.actor.display_name}",
                )
                return
            # retry: the check runs again, with its whole window

    async def mitigation(self, check: CheckSnapshot) -> None:
        """The runbook's `mitigated_when` check, after a walk that went through: its outcome is
        an event (outcome grading reads it); not mitigated pages the first level."""
        workflow.patched(VERIFIED_STEPS)
        state = StepState(
            step_id="mitigated", kind="check", text="mitigated_when", status=StepStatus.RUNNING
        )
        outcome = await self._check(state, check, "mitigated_when")
        if outcome is None:
            return
        passed, said = outcome
        await self._trail.event("mitigation_checked", None, {"passed": passed, "detail": said})
        if not passed:
            await self._waits.escalate(
                1, None, f"the runbook went through but it did not mitigate: {said}"
            )

    async def _check(
        self, state: StepState, check: CheckSnapshot, phase: str
    ) -> tuple[bool, str] | None:
        """Run a check until it passes or its window is over: (passed, what happened). None
        when a human stopped the execution meanwhile. Checks are read-only (the parser and the
        snapshot refuse the others), so they are retried like any green command."""
        inp = self._run.input
        queue = agent_task_queue(inp.tenant_id, inp.environment)
        rendered = render_command(check.command, inp.variables, self._run.values)
        expected = rules.expectation(check.expect)
        if rendered.missing:
            return False, f"{phase} needs a value for {', '.join(rendered.missing)}"
        started = workflow.now()
        attempt = 0
        while True:
            attempt += 1
            await self._trail.flush()
            handle = workflow.start_activity(
                names.RUN_COMMAND,
                CommandRequest(
                    execution_id=inp.execution_id,
                    step_id=f"{state.step_id}.{phase}",
                    command=rendered.command,
                    env=rendered.env,
                    timeout_seconds=inp.command_timeout_seconds,
                ),
                result_type=CommandResult,
                task_queue=queue,
                schedule_to_start_timeout=timedelta(seconds=inp.agent_offline_timeout_seconds),
                start_to_close_timeout=timedelta(seconds=inp.command_timeout_seconds)
                + timeouts.COMMAND_START_TO_CLOSE_MARGIN,
                heartbeat_timeout=timedelta(seconds=inp.policy.heartbeat_timeout_seconds),
                retry_policy=timeouts.GREEN_COMMAND_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=story.check_summary(state.step_id, phase, rendered.command, attempt),
            )
            try:
                result = await self._running(state, handle)
            except ActivityError as err:
                if isinstance(err.cause, CancelledError):
                    if workflow.cancellation_reason() is not None:
                        raise
                    return None
                passed, gave = False, f"could not run ({err.cause})"
            else:
                passed, gave = rules.check_passes(check.expect, result), rules.check_gave(result)
            tries = f"{attempt} tr{'y' if attempt == 1 else 'ies'}"
            if passed:
                return True, f"{phase} passed after {tries}: {expected}"
            # Tries at 0, 1, 2 … intervals, as long as they fall within the window.
            if attempt * check.interval_seconds > check.within_seconds:
                window = f" in {story.duration(check.within_seconds)}" if attempt > 1 else ""
                return False, f"{phase} failed after {tries}{window}: expected {expected}, {gave}"
            next_try = started + timedelta(seconds=attempt * check.interval_seconds)
            if not await self._pause(state, phase, next_try, check.interval_seconds):
                return None

    async def _pause(self, state: StepState, phase: str, deadline: datetime, seconds: int) -> bool:
        """Wait until a check's next try; an abort or rollback meanwhile ends it (False)."""
        summary = story.pause_summary(state.step_id, phase, seconds)
        waits, step_id = self._waits, state.step_id
        while self._run.stop is None:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return True
            await self._trail.flush()
            try:
                await workflow.wait_condition(
                    lambda: waits.waiting(step_id) or waits.stopped_beside(state),
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except builtins.TimeoutError:
                return True
            decision = waits.take(step_id)
            if decision is not None:
                await self._interrupts(state, decision)
        return False

    async def _stopped_while_running(self, state: StepState, read_only: bool) -> None:
        skipped, self._run.skipped_offline = self._run.skipped_offline, None
        if skipped is not None:
            state.awaiting = None
            await self._skipped(state, skipped)
            return
        if read_only or (state.awaiting and state.awaiting.kind == AwaitKind.AGENT):
            state.awaiting = None
            await self._trail.set(state, StepStatus.SKIPPED, "stopped before it ran")
            return
        await self._trail.set(
            state, StepStatus.UNKNOWN, "stopped while running: it may or may not have run"
        )

    async def _agent_offline(self, state: StepState, queue: str, level: int) -> bool:
        """No agent took the step: say so, escalate, and schedule it again (True), unless the
        human skipped it or stopped the execution meanwhile (False)."""
        inp = self._run.input
        message = (
            f"agent offline: no agent took the step from {queue} within "
            f"{inp.agent_offline_timeout_seconds}s; start an agent for this environment"
        )
        levels = inp.policy.escalation_levels
        if state.awaiting is None:
            state.awaiting = Awaiting(kind=AwaitKind.AGENT, allowed=[_D.SKIP], message=message)
        state.status = StepStatus.PENDING
        state.detail = message
        state.awaiting.escalation_level = min(level, len(levels))
        self._run.status = (
            ExecutionStatus.AWAITING_HUMAN if level <= len(levels) else ExecutionStatus.STALLED
        )
        await self._trail.record(state, event="step.agent_offline")
        if level <= len(levels):
            await self._waits.escalate(level, state.step_id, message)
            await self._trail.set_status(ExecutionStatus.AWAITING_HUMAN)
        else:
            await self._trail.event("stalled", state.step_id, {"reason": message})
            await self._trail.set_status(ExecutionStatus.STALLED)
        return self._run.stop is None

    async def _unknown_outcome(
        self, step: StepSnapshot, state: StepState, risk: RiskClass, cause: BaseException | None
    ) -> bool:
        """The agent was lost mid-step: never retried by itself. True: the human said retry."""
        why = "the agent stopped answering" if _is_timeout(cause) else f"{cause}"
        decision = await self._waits.ask(
            state,
            Awaiting(
                kind=AwaitKind.OUTCOME,
                allowed=[_D.RETRY, _D.DONE, _D.SKIP, _D.ROLLBACK, _D.ABORT],
                role=role_for(risk),
                message=f"outcome unknown ({why}): the command may or may not have run. "
                "Check, then retry, mark done, skip, roll back or abort.",
            ),
            status=StepStatus.UNKNOWN,
            detail=f"outcome unknown: {why}",
        )
        if decision is None:
            if self._run.stop is not None and self._run.stop.decision == _D.ROLLBACK:
                # It may have run: its undo is part of the rollback.
                self._saga.register(step, risk, dry=False)
            return False
        if decision.decision == _D.RETRY:
            return True
        if decision.decision == _D.DONE:
            await self._trail.set(
                state, StepStatus.SUCCEEDED, f"marked done by {decision.actor.display_name}"
            )
            self._saga.register(step, risk, dry=False)
            return False
        await self._skipped(state, decision)
        return False


def _timed_out(err: ActivityError, kind: TimeoutType) -> bool:
    cause = err.cause
    return isinstance(cause, TimeoutError) and cause.type == kind


def _is_timeout(cause: BaseException | None) -> bool:
    return isinstance(cause, TimeoutError)
