"""`RunbookExecutionWorkflow`: one durable execution of a runbook version for an incident.

Why this file is long: one workflow class holds the step walk, the human-wait and escalation
state machine, the saga and the trail, which share its state; issue 16 splits it by concern
(workflows/execution/) with patches keeping recorded histories replaying.

The walk: each step in order. Green commands run by themselves on the tenant's agent task
queue; yellow and red ones wait for approvals (signals, validated against
`ddoc.contracts.approvals`);
manual steps, read-along steps and decision steps without a machine-checkable condition wait
for a human. Every human wait has a deadline by severity: at each expiry one escalation level is
paged, after the last one the execution is visibly stalled. A timeout never decides anything.

State changes run at most once: a yellow or red command whose agent was lost is never retried
by itself; the human is asked. Completed state-changing steps with a rollback register a
compensation; on failure, rollback or cancellation the compensations run in reverse order, each
gated by its own risk.

Deterministic by construction: time from `workflow.now()`, waits with `workflow.wait_condition`,
configuration from the input, everything else through activities.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.commands import CommandActivities
    from activities.control import ControlActivities
    from activities.store import ExecutionStore
    from ddoc.contracts import temporal as attrs
    from ddoc.contracts.approvals import (
        EXECUTION_DECISIONS,
        RefusalCode,
        approvals_needed,
        branch_index,
        refusal,
        role_for,
        satisfied,
    )
    from ddoc.contracts.execution import (
        Actor,
        AlertResolved,
        Awaiting,
        AwaitKind,
        ClassifyRequest,
        CommandRequest,
        CommandResult,
        Decision,
        DecisionKind,
        DecisionRecord,
        EscalationRequest,
        EscalationResult,
        ExecutionEvent,
        ExecutionInput,
        ExecutionMode,
        ExecutionResult,
        ExecutionStatus,
        ExecutionStatusUpdate,
        StepRecord,
        StepSnapshot,
        StepState,
        StepStatus,
    )
    from ddoc.contracts.render import RenderedCommand, render_command, resolve_values
    from ddoc.contracts.settings import agent_task_queue
    from workflows import timeouts

_D = DecisionKind
_CANCELLATION = Actor(user_id="temporal", display_name="workflow cancellation", source="temporal")
_WAITING = (ExecutionStatus.AWAITING_HUMAN, ExecutionStatus.STALLED)
# Patches (workflow.patched): recorded histories replay the behaviour they were made with.
_NEITHER_GOES_ON = "decision-neither-goes-on"  # "neither" once paged a level and asked again


@dataclass
class _Compensation:
    step_id: str
    command: str
    risk: str
    suggested: bool


@workflow.defn(name="RunbookExecution")
class RunbookExecutionWorkflow:
    def __init__(self) -> None:
        self._inp: ExecutionInput | None = None
        self._status = ExecutionStatus.RUNNING
        self._published: tuple[ExecutionStatus, str | None] | None = None
        self._recorded_status: ExecutionStatus | None = None
        self._steps: dict[str, StepState] = {}
        self._current: str | None = None
        self._inbox: list[Decision] = []
        self._seen_requests: set[str] = set()
        self._alert_resolved: AlertResolved | None = None
        self._incident_escalated = False
        self._escalations: list[dict[str, Any]] = []
        self._stop: Decision | None = None  # abort, rollback or reject: the walk ends
        self._failed: str | None = None  # the step whose failure ends the walk
        self._compensating = False
        self._compensations: list[_Compensation] = []
        self._last_result: CommandResult | None = None
        self._values: dict[str, str] = {}
        self._skipped_offline: Decision | None = None

    # -- signals and queries -------------------------------------------------------------

    @workflow.signal
    def decide(self, decision: Decision) -> None:
        if decision.request_id is not None:
            if decision.request_id in self._seen_requests:
                return  # the same request delivered twice counts once
            self._seen_requests.add(decision.request_id)
        self._inbox.append(decision)

    @workflow.signal
    def alert_resolved(self, signal: AlertResolved) -> None:
        self._alert_resolved = signal

    @workflow.query
    def state(self) -> ExecutionResult:
        inp = self._input
        return ExecutionResult(
            execution_id=inp.execution_id,
            status=self._status,
            steps=list(self._steps.values()),
            mode=inp.mode.value,
            current_step=self._current,
            alert_resolved=self._alert_resolved is not None,
            incident_escalated=self._incident_escalated,
            escalations=list(self._escalations),
        )

    @property
    def _input(self) -> ExecutionInput:
        assert self._inp is not None
        return self._inp

    # -- the walk ------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        self._inp = inp
        for step in inp.steps:
            self._steps[step.id] = StepState(
                step_id=step.id,
                kind=step.kind,
                text=step.text,
                status=StepStatus.PENDING,
                command=step.command,
                risk=step.risk,
            )
        self._values = resolve_values(inp.variables, inp.alert, inp.values)
        # First thing: the trail records that this execution really runs (intake relies on it
        # to know a start went through).
        await self._publish()
        watcher = asyncio.create_task(self._watch_incident())
        try:
            await self._walk()
            await self._finish()
        except (asyncio.CancelledError, ActivityError) as err:
            # A cancellation that lands while a trail write is in flight surfaces as that
            # activity's cancellation; anything else is a real failure.
            if isinstance(err, ActivityError) and workflow.cancellation_reason() is None:
                raise
            # Cancellation must not skip the compensations: they run (gated as always) in their
            # own task, shielded from further cancel requests; then the workflow ends cancelled.
            watcher.cancel()
            cleanup = asyncio.ensure_future(self._after_cancellation())
            while not cleanup.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(cleanup)
            cleanup.result()
            raise asyncio.CancelledError() from None
        # An incident still firing keeps the execution open until it resolves or its timer
        # escalates ("L1 runbook didn't fix it").
        await watcher
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    async def _after_cancellation(self) -> None:
        if self._stop is None:
            self._stop = Decision(step_id="", decision=_D.ABORT, actor=_CANCELLATION)
        await self._close_open("the execution was cancelled")
        # Compensations run even when a human had asked to abort: cancellation undoes.
        self._stop = Decision(step_id="", decision=_D.ROLLBACK, actor=_CANCELLATION)
        await self._compensate()
        await self._set_status(ExecutionStatus.ABORTED)

    async def _walk(self) -> None:
        inp = self._input
        order = [step.id for step in inp.steps]
        not_taken: set[str] = set()
        index = 0
        while index < len(order) and self._stop is None and self._failed is None:
            step = inp.steps[index]
            if step.id in not_taken:
                await self._set(self._steps[step.id], StepStatus.SKIPPED, "branch not taken")
                index += 1
                continue
            if step.kind != "decision":
                await self._command_or_manual(step, index)
                index += 1
                continue
            target, others = await self._decision(step)
            not_taken |= others
            if target is not None and target in order and order.index(target) > index:
                jump = order.index(target)
                for passed in inp.steps[index + 1 : jump]:
                    await self._set(self._steps[passed.id], StepStatus.SKIPPED, "branch not taken")
                index = jump
            else:
                index += 1
        reason = "the execution failed" if self._failed else "the execution was stopped"
        await self._close_pending(reason)

    async def _finish(self) -> None:
        rollback = self._stop is not None and self._stop.decision == _D.ROLLBACK
        if rollback or self._failed is not None:
            await self._compensate()
        undo_failed = any(
            s.undoes is not None and s.status in (StepStatus.FAILED, StepStatus.UNKNOWN)
            for s in self._steps.values()
        )
        if self._failed is not None or (rollback and undo_failed):
            final = ExecutionStatus.FAILED
        elif self._stop is not None and self._stop.decision == _D.ROLLBACK:
            final = ExecutionStatus.ROLLED_BACK
        elif self._stop is not None:
            final = ExecutionStatus.ABORTED  # an abort, a reject, or an abort of the rollback
        else:
            final = ExecutionStatus.SUCCEEDED
        await self._set_status(final)

    async def _close_open(self, reason: str) -> None:
        for state in list(self._steps.values()):
            state.awaiting = None
            if state.status == StepStatus.RUNNING and state.risk not in ("green", None):
                await self._set(state, StepStatus.UNKNOWN, f"{reason} while it ran")
            elif state.status in (StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL):
                await self._set(state, StepStatus.SKIPPED, reason)
        await self._close_pending(reason)

    async def _close_pending(self, reason: str) -> None:
        for state in list(self._steps.values()):
            if state.status == StepStatus.PENDING:
                await self._set(state, StepStatus.SKIPPED, f"not reached: {reason}")

    # -- steps ---------------------------------------------------------------------------

    async def _command_or_manual(self, step: StepSnapshot, index: int) -> None:
        inp = self._input
        state = self._steps[step.id]
        if inp.mode == ExecutionMode.READ_ALONG or not step.command:
            if step.command:
                state.command = render_command(step.command, inp.variables, self._values).command
            decision = await self._await(
                state,
                Awaiting(
                    kind=AwaitKind.DONE,
                    allowed=[_D.DONE, _D.SKIP],
                    message="Do this step, then mark it done (or skip it).",
                ),
            )
            if decision is not None:
                done = decision.decision == _D.DONE
                await self._set(
                    state,
                    StepStatus.SUCCEEDED if done else StepStatus.SKIPPED,
                    f"{'done' if done else 'skipped'} by {decision.actor.display_name}",
                )
            return
        await self._command(step, state, index)

    async def _command(
        self,
        step: StepSnapshot,
        state: StepState,
        index: int,
        *,
        suggested: bool = False,
    ) -> None:
        """A command step (or a compensation): values, approvals, then the agent."""
        inp = self._input
        command, risk = step.command or "", step.risk or "yellow"
        edited_by: str | None = None
        dry = inp.mode == ExecutionMode.DRY_RUN
        while True:
            rendered = render_command(command, inp.variables, self._values)
            state.command, state.risk = rendered.command, risk
            if rendered.missing:
                decision = await self._await(
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
                    self._values.update(decision.values)
                    continue
                command, risk = await self._edited(state, decision)
                edited_by = decision.actor.user_id
                continue
            if dry:
                form = step.dry_run_command if command == step.command else None
                if form is None:
                    state.dry_run = True
                    await self._set(
                        state, StepStatus.SKIPPED, "dry run: shown, not run (no dry-run form)"
                    )
                    return
                rendered = render_command(form, inp.variables, self._values)
                state.command, state.dry_run = rendered.command, True
                if any(value.startswith("-") for value in rendered.env.values()):
                    # A value such as `--` could turn the dry-run flag into a mere argument.
                    await self._set(
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
        await self._execute(step, state, rendered, risk, index, dry=dry)

    async def _approval(
        self, state: StepState, risk: str, needed: int, edited_by: str | None
    ) -> Decision | None:
        """Approve (enough of them) or edit: returned. Reject, skip, a stop: None."""
        inp = self._input
        role = role_for(risk)
        awaiting = Awaiting(
            kind=AwaitKind.APPROVAL,
            allowed=[_D.APPROVE, _D.REJECT, _D.SKIP, _D.EDIT],
            role=role,
            approvals_needed=needed,
            message=f"{risk} step: needs {needed} approval{'s' if needed > 1 else ''} "
            f"from {'an approver' if role == 'approver' else 'a responder'}",
        )
        while True:
            decision = await self._await(state, awaiting, edited_by=edited_by)
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
                self._stop = decision
                await self._set(
                    state, StepStatus.SKIPPED, f"rejected by {decision.actor.display_name}"
                )
                return None
            if decision.decision == _D.SKIP:
                await self._skipped(state, decision)
                return None
            return decision

    async def _edited(self, state: StepState, decision: Decision) -> tuple[str, str]:
        """An edit: the new command, classified by the tenant's rules (never trusted as is)."""
        inp = self._input
        command = (decision.command or "").strip()
        classified = await workflow.execute_activity_method(
            ControlActivities.classify,
            ClassifyRequest(tenant_id=inp.tenant_id, command=command),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
        )
        state.edited_by = decision.actor.user_id
        state.decisions[-1].reason = f"re-classified {classified.risk}: {classified.reason}"
        return command, classified.risk

    async def _skipped(self, state: StepState, decision: Decision) -> None:
        await self._set(state, StepStatus.SKIPPED, f"skipped by {decision.actor.display_name}")

    async def _execute(
        self,
        step: StepSnapshot,
        state: StepState,
        rendered: RenderedCommand,
        risk: str,
        index: int,
        *,
        dry: bool,
    ) -> None:
        inp = self._input
        queue = agent_task_queue(inp.tenant_id, inp.environment)
        read_only = risk == "green" or dry
        offline_level = 0
        while True:
            if offline_level == 0:  # while no agent polls, the step stays visibly pending
                state.started_at = workflow.now().isoformat()
                await self._set(state, StepStatus.RUNNING)
            handle = workflow.start_activity_method(
                CommandActivities.run_command,
                CommandRequest(
                    execution_id=inp.execution_id,
                    step_id=state.step_id,
                    command=rendered.command,
                    env=rendered.env,
                    timeout_seconds=inp.command_timeout_seconds,
                ),
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
                    await self._set(state, StepStatus.FAILED, cause.message)
                    self._failed = state.step_id
                    return
                if isinstance(cause, CancelledError):
                    if workflow.cancellation_reason() is not None:
                        raise  # the whole workflow is cancelled: run() undoes what ran
                    await self._stopped_while_running(state, read_only)
                    return
                if read_only:
                    await self._set(state, StepStatus.FAILED, f"command could not run: {cause}")
                    self._failed = state.step_id
                    return
                if await self._unknown_outcome(step, state, risk, cause):
                    continue
                return
            break
        if offline_level:
            state.awaiting = None  # an agent came back and ran it
            await self._set_status(ExecutionStatus.RUNNING)
        self._last_result = result
        detail = "timed out" if result.timed_out else None
        if result.exit_code == 0:
            await self._set(
                state,
                StepStatus.SUCCEEDED,
                detail,
                exit_code=0,
                output=result.output,
                truncated=result.truncated,
            )
            self._register_compensation(step, risk, dry=dry)
            return
        if self._feeds_decision(index):
            detail = f"exit {result.exit_code}: the next decision step checks it"
        await self._set(
            state,
            StepStatus.FAILED,
            detail,
            exit_code=result.exit_code,
            output=result.output,
            truncated=result.truncated,
        )
        if not self._feeds_decision(index):
            self._failed = state.step_id

    async def _running(self, state: StepState, handle: Any) -> CommandResult:
        """Wait for the agent. Meanwhile only abort or rollback are taken (and skip while no
        agent took the step): they cancel the activity, and the agent kills the command's
        process group."""
        try:
            while True:
                await workflow.wait_condition(lambda: handle.done() or bool(self._inbox))
                if handle.done():
                    result: CommandResult = await handle
                    return result
                decision = self._inbox.pop(0)
                offline = state.awaiting is not None and state.awaiting.kind == AwaitKind.AGENT
                why = refusal(decision, state.awaiting if offline else None)
                reason = why.reason if why else None
                if why is not None and why.code == RefusalCode.NOT_AWAITING and not offline:
                    reason = f"step {state.step_id} is running: only abort or rollback now"
                if reason is None and self._compensating and decision.decision == _D.ROLLBACK:
                    reason = "already rolling back"
                if reason is not None:
                    await self._refused(state, decision, reason)
                    continue
                self._accept(state, decision)
                if decision.decision in EXECUTION_DECISIONS:
                    self._stop = decision
                else:
                    self._skipped_offline = decision
                handle.cancel()
        except asyncio.CancelledError:
            handle.cancel()  # the workflow itself is cancelled: so is its command
            raise

    async def _stopped_while_running(self, state: StepState, read_only: bool) -> None:
        skipped, self._skipped_offline = self._skipped_offline, None
        if skipped is not None:
            state.awaiting = None
            await self._skipped(state, skipped)
            return
        if read_only or (state.awaiting and state.awaiting.kind == AwaitKind.AGENT):
            state.awaiting = None
            await self._set(state, StepStatus.SKIPPED, "stopped before it ran")
            return
        await self._set(
            state, StepStatus.UNKNOWN, "stopped while running: it may or may not have run"
        )

    async def _agent_offline(self, state: StepState, queue: str, level: int) -> bool:
        """No agent took the step: say so, escalate, and schedule it again (True), unless the
        human skipped it or stopped the execution meanwhile (False)."""
        inp = self._input
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
        self._status = (
            ExecutionStatus.AWAITING_HUMAN if level <= len(levels) else ExecutionStatus.STALLED
        )
        await self._record(state, event="step.agent_offline")
        if level <= len(levels):
            await self._escalate(level, state.step_id, message)
            await self._set_status(ExecutionStatus.AWAITING_HUMAN)
        else:
            await self._event("stalled", state.step_id, {"reason": message})
            await self._set_status(ExecutionStatus.STALLED)
        return self._stop is None

    async def _unknown_outcome(
        self, step: StepSnapshot, state: StepState, risk: str, cause: BaseException | None
    ) -> bool:
        """The agent was lost mid-step: never retried by itself. True: the human said retry."""
        why = "the agent stopped answering" if _is_timeout(cause) else f"{cause}"
        decision = await self._await(
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
            if self._stop is not None and self._stop.decision == _D.ROLLBACK:
                # It may have run: its undo is part of the rollback.
                self._register_compensation(step, risk, dry=False)
            return False
        if decision.decision == _D.RETRY:
            return True
        if decision.decision == _D.DONE:
            await self._set(
                state, StepStatus.SUCCEEDED, f"marked done by {decision.actor.display_name}"
            )
            self._register_compensation(step, risk, dry=False)
            return False
        await self._skipped(state, decision)
        return False

    async def _decision(self, step: StepSnapshot) -> tuple[str | None, set[str]]:
        """A decision step: machine checks first, else a human chooses a branch, or "neither":
        none applies, so no branch's steps run and the walk goes on after them. (Executions
        started before the `decision-neither-goes-on` patch page a level on "neither" and ask
        again, as they did then.) Returns the step to continue with and the steps of the
        branches not taken."""
        inp = self._input
        state = self._steps[step.id]
        branches = step.branches
        chosen: int | None = None
        how = ""
        last = self._last_result
        checked = [b for b in branches if b.check]
        if inp.mode != ExecutionMode.READ_ALONG and last is not None and checked:
            matched = [i for i, b in enumerate(branches) if b.check and _matches(b.check, last)]
            if matched:
                chosen = matched[0]
                how = f"checked: {branches[chosen].condition}"
            elif len(branches) == 1:
                chosen = -1
                how = f"checked: not {branches[0].condition}"
        neither_goes_on = chosen is None and bool(branches) and workflow.patched(_NEITHER_GOES_ON)
        while chosen is None:
            if not branches:
                message = "Decide, then mark it done (or skip it)."
            elif neither_goes_on:
                message = _choice_prompt([b.condition for b in branches])
            else:
                message = "Which branch applies? (or neither: it escalates)"
            decision = await self._await(
                state,
                Awaiting(
                    kind=AwaitKind.CHOICE if branches else AwaitKind.DONE,
                    allowed=[_D.CHOOSE, _D.SKIP] if branches else [_D.DONE, _D.SKIP],
                    branches=[b.condition for b in branches],
                    message=message,
                ),
            )
            if decision is None:
                return None, set()
            if decision.decision != _D.CHOOSE:
                done = decision.decision == _D.DONE
                await self._set(
                    state,
                    StepStatus.SUCCEEDED if done else StepStatus.SKIPPED,
                    f"{'done' if done else 'skipped'} by {decision.actor.display_name}",
                )
                return None, {b.goto for b in branches if b.goto}
            picked = branch_index(decision.branch, [b.condition for b in branches])
            if picked == -1 and neither_goes_on:
                await self._set(
                    state,
                    StepStatus.SUCCEEDED,
                    f"none applies, chosen by {decision.actor.display_name}: no branch's steps run",
                )
                return None, {b.goto for b in branches if b.goto}
            if picked == -1:
                level = len(self._escalations) + 1
                await self._escalate(
                    level,
                    step.id,
                    f"none of the branches of step {step.id} applies "
                    f"({decision.actor.display_name})",
                )
                continue
            assert picked is not None  # refused before it got here
            chosen = picked
            how = f"chosen by {decision.actor.display_name}: {branches[chosen].condition}"
        await self._set(state, StepStatus.SUCCEEDED, how)
        targets = {b.goto for b in branches if b.goto}
        goto = branches[chosen].goto if chosen >= 0 else None
        return goto, targets - {goto}

    def _feeds_decision(self, index: int) -> bool:
        steps = self._input.steps
        following = steps[index + 1] if index + 1 < len(steps) else None
        return (
            following is not None
            and following.kind == "decision"
            and any(
                b.check and ("exit_code" in b.check or "exit_code_nonzero" in b.check)
                for b in following.branches
            )
        )

    # -- compensations -------------------------------------------------------------------

    def _register_compensation(self, step: StepSnapshot, risk: str, *, dry: bool) -> None:
        if dry or self._compensating or risk == "green" or not step.rollback_command:
            return
        self._compensations.append(
            _Compensation(
                step_id=step.id,
                command=step.rollback_command,
                risk=step.rollback_risk or "yellow",
                suggested=step.rollback_suggested,
            )
        )

    async def _compensate(self) -> None:
        """Undo the completed steps, last first. Each undo is gated by its own risk; one that
        fails is recorded and the others still run. An abort meanwhile stops undoing."""
        self._compensating = True
        # Popped one at a time: a cancellation mid-way leaves the rest for the next pass.
        while self._compensations:
            compensation = self._compensations.pop()
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
            self._steps[undo_id] = state
            if self._stop is not None and self._stop.decision == _D.ABORT:
                await self._set(state, StepStatus.SKIPPED, "aborted: not undone")
                continue
            snapshot = StepSnapshot(
                id=undo_id,
                text=state.text,
                kind="command",
                command=compensation.command,
                risk=compensation.risk,
            )
            failed_before = self._failed
            await self._command(snapshot, state, -1, suggested=compensation.suggested)
            self._failed = failed_before
            if state.status == StepStatus.SUCCEEDED:
                original = self._steps[compensation.step_id]
                await self._set(original, StepStatus.ROLLED_BACK, f"undone by {undo_id}")
        self._compensating = False

    # -- human waits and escalation ------------------------------------------------------

    async def _await(
        self,
        state: StepState,
        awaiting: Awaiting,
        *,
        edited_by: str | None = None,
        status: StepStatus = StepStatus.AWAITING_APPROVAL,
        detail: str | None = None,
    ) -> Decision | None:
        """Wait for an accepted decision about this step, escalating at each deadline. None when
        the execution was stopped (abort, rollback) meanwhile."""
        inp = self._input
        levels = inp.policy.escalation_levels
        wait = inp.policy.wait_for(inp.alert.severity if inp.alert else None)
        state.awaiting = awaiting
        self._current = state.step_id
        stalled = False
        # The execution's status first, so no query sees a step waiting in a running execution.
        self._status = ExecutionStatus.AWAITING_HUMAN
        await self._set(state, status, detail, event=f"step.awaiting_{awaiting.kind.value}")
        try:
            while True:
                awaiting.deadline = (
                    None if stalled else (workflow.now() + timedelta(seconds=wait)).isoformat()
                )
                decision = await self._next_decision(None if stalled else wait)
                if decision is None:
                    # The deadline passed: escalate one level, keep waiting. Never decide.
                    if awaiting.escalation_level < len(levels):
                        awaiting.escalation_level += 1
                        await self._escalate(
                            awaiting.escalation_level,
                            state.step_id,
                            f"step {state.step_id} awaits {awaiting.kind.value} "
                            f"for {wait // 60} min",
                        )
                    else:
                        stalled = True
                        awaiting.deadline = None
                        await self._event(
                            "stalled",
                            state.step_id,
                            {"reason": f"no decision after {len(levels)} escalation level(s)"},
                        )
                        await self._set_status(ExecutionStatus.STALLED)
                    await self._record(state)
                    continue
                why = refusal(decision, awaiting, edited_by=edited_by)
                if why is None and self._compensating and decision.decision == _D.ROLLBACK:
                    why_text: str | None = "already rolling back"
                else:
                    why_text = why.reason if why else None
                if why_text is not None:
                    await self._refused(state, decision, why_text)
                    continue
                self._accept(state, decision)
                if decision.decision in EXECUTION_DECISIONS:
                    self._stop = decision
                    state.awaiting = None
                    verb = "aborted" if decision.decision == _D.ABORT else "rolled back"
                    detail = f"{verb} by {decision.actor.display_name}"
                    if state.status == StepStatus.UNKNOWN:
                        detail = f"{state.detail}; {detail}"
                    await self._set(
                        state,
                        StepStatus.UNKNOWN
                        if state.status == StepStatus.UNKNOWN
                        else StepStatus.SKIPPED,
                        detail,
                        event=f"execution.{decision.decision.value}",
                    )
                    return None
                return decision
        finally:
            state.awaiting = None
            if self._status in _WAITING:
                self._status = ExecutionStatus.RUNNING

    async def _next_decision(self, within: int | None) -> Decision | None:
        try:
            await workflow.wait_condition(lambda: bool(self._inbox), timeout=within)
        except builtins.TimeoutError:
            return None
        return self._inbox.pop(0)

    def _accept(self, state: StepState, decision: Decision) -> None:
        state.decisions.append(self._decision_record(decision, accepted=True))

    async def _refused(self, state: StepState, decision: Decision, reason: str) -> None:
        state.decisions.append(self._decision_record(decision, accepted=False, reason=reason))
        await self._record(state, event="decision.refused")

    def _decision_record(
        self, decision: Decision, *, accepted: bool, reason: str | None = None
    ) -> DecisionRecord:
        return DecisionRecord(
            decision=decision.decision.value,
            user_id=decision.actor.user_id,
            display_name=decision.actor.display_name,
            source=decision.actor.source,
            at=workflow.now().isoformat(),
            accepted=accepted,
            reason=reason,
            command=decision.command,
            branch=decision.branch,
            comment=decision.comment,
            address=decision.actor.address,
        )

    async def _escalate(self, level: int, step_id: str | None, reason: str) -> None:
        inp = self._input
        levels = inp.policy.escalation_levels
        name = levels[level - 1].name if level <= len(levels) else f"level {level}"
        request = EscalationRequest(
            execution_id=inp.execution_id,
            tenant_id=inp.tenant_id,
            level=level,
            level_name=name,
            reason=reason,
            dedup_key=f"ddoc:{inp.execution_id}:{step_id or 'incident'}",
            severity=inp.alert.severity if inp.alert else None,
            step_id=step_id,
            context=self._context(),
        )
        if self._alert_resolved is not None:
            result = EscalationResult(paged=False, detail="the alert has resolved: not paged")
            await self._event("escalated", step_id, {"level": level, "name": name, **vars(result)})
        else:
            try:
                result = await workflow.execute_activity_method(
                    ControlActivities.escalate,
                    request,
                    start_to_close_timeout=timeouts.ESCALATION_TIMEOUT,
                    retry_policy=timeouts.ESCALATION_RETRY,
                )
            except ActivityError as err:
                if workflow.cancellation_reason() is not None:
                    raise  # the workflow is being cancelled: not a paging problem
                # A page that cannot be sent must not end the execution: it stays visible.
                result = EscalationResult(paged=False, detail=f"page failed: {err.cause or err}")
                await self._event("escalation_failed", step_id, {"level": level, **vars(result)})
        self._escalations.append(
            {
                "level": level,
                "name": name,
                "step_id": step_id,
                "reason": reason,
                "at": workflow.now().isoformat(),
                "paged": result.paged,
                "detail": result.detail,
            }
        )

    async def _watch_incident(self) -> None:
        inp = self._input
        timeout = inp.policy.incident_timeout_seconds
        if inp.alert is None:
            return
        try:
            await workflow.wait_condition(lambda: self._alert_resolved is not None, timeout=timeout)
        except builtins.TimeoutError:
            self._incident_escalated = True
            assert timeout is not None
            await self._escalate(1, None, f"the incident is not resolved after {timeout // 60} min")
            return
        resolved = self._alert_resolved
        assert resolved is not None
        await self._event("alert_resolved", None, {"dedup_key": resolved.dedup_key})

    def _context(self) -> dict[str, Any]:
        inp = self._input
        alert = inp.alert
        return {
            "runbook": f"{inp.runbook_title} (v{inp.runbook_version})",
            "mode": inp.mode.value,
            "status": self._status.value,
            "alert": alert.title if alert else None,
            "service": alert.service if alert else None,
            "steps": [
                f"{s.step_id} {s.status.value}" + (f" ({s.detail})" if s.detail else "")
                for s in self._steps.values()
            ],
        }

    # -- the trail -----------------------------------------------------------------------

    async def _set(
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
        state.status = status
        state.detail = detail
        if exit_code is not None:
            state.exit_code = exit_code
        if status in (StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL, StepStatus.UNKNOWN):
            self._current = state.step_id
        elif status != StepStatus.PENDING:
            state.finished_at = workflow.now().isoformat()
        await self._record(state, output=output, truncated=truncated, event=event)
        await self._publish()

    async def _record(
        self,
        state: StepState,
        *,
        output: str | None = None,
        truncated: bool = False,
        event: str | None = None,
    ) -> None:
        inp = self._input
        await workflow.execute_activity_method(
            ExecutionStore.record_step,
            StepRecord(
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
                decisions=state.decisions,
                awaiting=state.awaiting,
                event=event or f"step.{state.status.value}",
            ),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
        )

    async def _event(self, kind: str, step_id: str | None, data: dict[str, Any]) -> None:
        inp = self._input
        await workflow.execute_activity_method(
            ExecutionStore.record_event,
            ExecutionEvent(
                execution_id=inp.execution_id,
                tenant_id=inp.tenant_id,
                type=kind,
                step_id=step_id,
                data=data,
            ),
            start_to_close_timeout=timeouts.RECORD_TIMEOUT,
            retry_policy=timeouts.RECORD_RETRY,
        )

    async def _set_status(self, status: ExecutionStatus) -> None:
        self._status = status
        if status not in (ExecutionStatus.RUNNING, *_WAITING):
            self._current = None
        await self._publish()

    async def _publish(self) -> None:
        """Search attributes and the UI's current details on every transition; the database
        row when the execution's status changed."""
        inp = self._input
        shown = (self._status, self._current)
        if shown != self._published:
            self._published = shown
            updates: list[SearchAttributeUpdate[str]] = [
                attrs.EXECUTION_STATUS.value_set(self._status.value),
                attrs.CURRENT_STEP.value_set(self._current)
                if self._current
                else attrs.CURRENT_STEP.value_unset(),
            ]
            workflow.upsert_search_attributes(updates)
            workflow.set_current_details(self._details())
        if self._status != self._recorded_status:
            self._recorded_status = self._status
            await workflow.execute_activity_method(
                ExecutionStore.record_execution_status,
                ExecutionStatusUpdate(
                    execution_id=inp.execution_id,
                    tenant_id=inp.tenant_id,
                    status=self._status,
                    current_step=self._current,
                ),
                start_to_close_timeout=timeouts.RECORD_TIMEOUT,
                retry_policy=timeouts.RECORD_RETRY,
            )

    def _details(self) -> str:
        inp = self._input
        lines = [
            f"**{inp.runbook_title}** v{inp.runbook_version} · {inp.mode.value} · "
            f"{self._status.value}"
        ]
        for state in self._steps.values():
            marker = "→ " if state.step_id == self._current else "  "
            line = f"{marker}{state.step_id} [{state.risk or '-'}] {state.status.value}"
            if state.awaiting is not None:
                line += f": {state.awaiting.message}"
            elif state.detail:
                line += f": {state.detail}"
            lines.append(line)
        return "\n".join(lines)[:4000]


def _choice_prompt(conditions: list[str]) -> str:
    """What a decision step asks; every answer does what it says."""
    if len(conditions) == 1:
        return (
            f"Does this apply: {conditions[0]}? Choose 1 if it does, or neither if it does not "
            "(its steps are skipped and the execution goes on)."
        )
    return (
        "Which branch applies? Choose its number (1-"
        f"{len(conditions)}), or neither if none does (no branch's steps run and the "
        "execution goes on)."
    )


def _timed_out(err: ActivityError, kind: TimeoutType) -> bool:
    cause = err.cause
    return isinstance(cause, TimeoutError) and cause.type == kind


def _is_timeout(cause: BaseException | None) -> bool:
    return isinstance(cause, TimeoutError)


def _matches(check: dict[str, Any], result: CommandResult) -> bool:
    if "exit_code" in check:
        return bool(result.exit_code == check["exit_code"])
    if check.get("exit_code_nonzero"):
        return result.exit_code != 0
    pattern = check.get("output_pattern")
    return isinstance(pattern, str) and pattern in result.output
