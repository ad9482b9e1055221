"""`RunbookExecutionWorkflow`: one durable execution of a runbook version for an incident.

The walk: each step in order. Green commands run by themselves on the tenant's agent task
queue; yellow and red ones wait for approvals (signals, validated against
`ddoc.contracts.approvals`); manual steps, read-along steps and decision steps without a
machine-checkable condition wait for a human. State changes run at most once: a yellow or red
command whose agent was lost is never retried by itself; the human is asked.

This module is the walk; its parts are beside it: the human waits and escalation (`waits.py`),
the saga (`saga.py`), the trail (`trail.py`), the pure decisions (`rules.py`) and the state they
share (`state.py`). It calls activities by name (`ddoc.contracts.names`): the agent's command
activity lives in `agent_worker/`, the control plane's in `activities/`.

Deterministic by construction: time from `workflow.now()`, waits with `workflow.wait_condition`,
configuration from the input, everything else through activities. Changes that would alter
recorded histories go behind `workflow.patched` (tests/test_replay.py replays earlier releases).
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.approvals import branch_index
    from ddoc.contracts.execution import (
        Actor,
        AlertResolved,
        Awaiting,
        AwaitKind,
        BreakpointChange,
        Decision,
        DecisionKind,
        ExecutionInput,
        ExecutionMode,
        ExecutionResult,
        ExecutionStatus,
        StepSnapshot,
        StepState,
        StepStatus,
    )
    from ddoc.contracts.render import render_command, resolve_values
    from workflows.execution import rules
    from workflows.execution.commands import CommandSteps
    from workflows.execution.saga import Saga
    from workflows.execution.state import Run
    from workflows.execution.trail import Trail
    from workflows.execution.waits import HumanWaits

_D = DecisionKind
_CANCELLATION = Actor(user_id="temporal", display_name="workflow cancellation", source="temporal")
# Patches (workflow.patched): recorded histories replay the behaviour they were made with.
_NEITHER_GOES_ON = "decision-neither-goes-on"  # "neither" once paged a level and asked again
PARALLEL_STEPS = "parallel-steps"  # a parallel group's steps walk side by side
BREAKPOINTS = "breakpoints"  # a pause before a step a responder marked


@workflow.defn(name=names.EXECUTION_WORKFLOW)
class RunbookExecutionWorkflow:
    def __init__(self) -> None:
        self._run = Run()
        self._trail = Trail(self._run)
        self._waits = HumanWaits(self._run, self._trail)
        self._saga = Saga(self._run, self._trail)
        self._commands = CommandSteps(self._run, self._trail, self._waits, self._saga)

    # -- signals and queries -------------------------------------------------------------

    @workflow.signal(name=names.DECIDE_SIGNAL)
    def decide(self, decision: Decision) -> None:
        if decision.request_id is not None:
            if decision.request_id in self._run.seen_requests:
                return  # the same request delivered twice counts once
            self._run.seen_requests.add(decision.request_id)
        self._run.inbox.append(decision)

    @workflow.signal(name=names.BREAKPOINT_SIGNAL)
    def breakpoint(self, change: BreakpointChange) -> None:
        """Set or clear a breakpoint on a step that has not started (the API checked it; a
        step that started meanwhile keeps going: the breakpoint is before it)."""
        if change.on:
            self._run.breakpoints[change.step_id] = change.actor.display_name
        else:
            self._run.breakpoints.pop(change.step_id, None)

    @workflow.signal(name=names.ALERT_RESOLVED_SIGNAL)
    def alert_resolved(self, signal: AlertResolved) -> None:
        self._run.alert_resolved = signal

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> ExecutionResult:
        inp = self._run.input
        return ExecutionResult(
            execution_id=inp.execution_id,
            status=self._run.status,
            steps=list(self._run.steps.values()),
            mode=inp.mode.value,
            current_step=self._run.current,
            alert_resolved=self._run.alert_resolved is not None,
            incident_escalated=self._run.incident_escalated,
            escalations=list(self._run.escalations),
        )

    # -- the walk ------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        self._run.inp = inp
        self._trail.start()
        for step in inp.steps:
            self._run.steps[step.id] = StepState(
                step_id=step.id,
                kind=step.kind,
                text=step.text,
                status=StepStatus.PENDING,
                command=step.command,
                risk=step.risk,
            )
        self._run.values = resolve_values(inp.variables, inp.alert, inp.values)
        # Set at the start, and by signals (which may have arrived before this line).
        self._run.breakpoints = {**inp.breakpoints, **self._run.breakpoints}
        self._run.replay = list(inp.replay)
        # First thing: the trail records that this execution really runs (intake relies on it
        # to know a start went through).
        await self._trail.publish()
        watcher = asyncio.create_task(self._waits.watch_incident())
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
        if self._run.stop is None:
            self._run.stop = Decision(step_id="", decision=_D.ABORT, actor=_CANCELLATION)
        await self._close_open("the execution was cancelled")
        # Compensations run even when a human had asked to abort: cancellation undoes.
        self._run.stop = Decision(step_id="", decision=_D.ROLLBACK, actor=_CANCELLATION)
        await self._saga.compensate(self._undo)
        await self._trail.set_status(ExecutionStatus.ABORTED)
        await self._trail.finished()

    async def _walk(self) -> None:
        inp = self._run.input
        order = [step.id for step in inp.steps]
        not_taken: set[str] = set()
        index = 0
        while index < len(order) and self._run.stop is None and self._run.failed is None:
            step = inp.steps[index]
            if step.id in not_taken:
                await self._trail.set(
                    self._run.steps[step.id], StepStatus.SKIPPED, "branch not taken"
                )
                index += 1
                continue
            if step.kind != "decision":
                group = self._group(index, not_taken)
                if len(group) > 1:
                    await self._side_by_side(group, index)
                    index += len(group)
                    continue
                if await self._breakpoint(step):
                    await self._command_or_manual(step, index)
                index += 1
                continue
            if not await self._breakpoint(step):
                not_taken |= {b.goto for b in step.branches if b.goto}
                index += 1
                continue
            target, others = await self._decision(step)
            not_taken |= others
            if target is not None and target in order and order.index(target) > index:
                jump = order.index(target)
                for passed in inp.steps[index + 1 : jump]:
                    await self._trail.set(
                        self._run.steps[passed.id], StepStatus.SKIPPED, "branch not taken"
                    )
                index = jump
            else:
                index += 1
        reason = "the execution failed" if self._run.failed else "the execution was stopped"
        await self._close_pending(reason)

    async def _finish(self) -> None:
        run = self._run
        stop = run.stop.decision if run.stop is not None else None
        if stop == DecisionKind.ROLLBACK or run.failed is not None:
            await self._saga.compensate(self._undo)
        undo_failed = any(
            s.undoes is not None and s.status in (StepStatus.FAILED, StepStatus.UNKNOWN)
            for s in run.steps.values()
        )
        final = rules.final_status(
            failed=run.failed is not None, stop=stop, undo_failed=undo_failed
        )
        if final == ExecutionStatus.SUCCEEDED and run.input.mitigated_check is not None:
            await self._commands.mitigation(run.input.mitigated_check)
        if run.input.replay_of is not None:
            unused = [f"{d.step_id}: {d.decision.value}" for d in run.replay]
            await self._trail.event("replay.finished", None, {"unused_decisions": unused})
        await self._trail.set_status(final)
        await self._trail.finished()

    async def _undo(self, step: StepSnapshot, state: StepState, suggested: bool) -> None:
        await self._commands.run(step, state, -1, suggested=suggested)

    async def _close_open(self, reason: str) -> None:
        for state in list(self._run.steps.values()):
            state.awaiting = None
            if state.status == StepStatus.RUNNING and state.risk not in ("green", None):
                await self._trail.set(state, StepStatus.UNKNOWN, f"{reason} while it ran")
            elif state.status in (StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL):
                await self._trail.set(state, StepStatus.SKIPPED, reason)
        await self._close_pending(reason)

    async def _close_pending(self, reason: str) -> None:
        for state in list(self._run.steps.values()):
            if state.status == StepStatus.PENDING:
                await self._trail.set(state, StepStatus.SKIPPED, f"not reached: {reason}")

    def _group(self, index: int, not_taken: set[str]) -> list[StepSnapshot]:
        """The parallel group starting at this step: it and the next steps of its group (never a
        decision, nor the step whose output a decision checks), in copilot, autopilot and dry
        runs (read-along walks in order)."""
        inp = self._run.input
        steps = inp.steps
        group_id = steps[index].parallel
        if group_id is None or inp.mode == ExecutionMode.READ_ALONG:
            return [steps[index]]
        end = index
        while (
            end < len(steps)
            and steps[end].parallel == group_id
            and steps[end].kind != "decision"
            and steps[end].id not in not_taken
            and not rules.feeds_decision(steps, end)
        ):
            end += 1
        return steps[index : max(end, index + 1)]

    async def _side_by_side(self, group: list[StepSnapshot], index: int) -> None:
        """A parallel group: breakpoints first (one at a time), then its steps walk at once,
        each with its own approvals; decisions are routed to the step they name."""
        workflow.patched(PARALLEL_STEPS)
        walking = [(i, step) for i, step in enumerate(group, start=index)]
        walking = [(i, step) for i, step in walking if await self._breakpoint(step)]
        if self._run.stop is not None or self._run.failed is not None or not walking:
            return
        ids = [step.id for _, step in walking]
        await self._trail.event("steps.parallel", ids[0], {"steps": ids})
        self._run.side_by_side = set(ids)
        try:
            await asyncio.gather(*(self._beside(step, i) for i, step in walking))
        finally:
            self._run.side_by_side = set()

    async def _beside(self, step: StepSnapshot, index: int) -> None:
        try:
            await self._command_or_manual(step, index)
        finally:
            self._run.side_by_side.discard(step.id)  # decisions naming it now are refused

    async def _breakpoint(self, step: StepSnapshot) -> bool:
        """A breakpoint on this step pauses before it, in every mode, until a human says
        continue (True) or skip; a stop meanwhile ends the walk (False). A timeout escalates
        like any human wait; it never continues by itself."""
        setter = self._run.breakpoints.get(step.id)
        if setter is None or self._run.stop is not None or self._run.failed is not None:
            return self._run.stop is None and self._run.failed is None
        workflow.patched(BREAKPOINTS)
        state = self._run.steps[step.id]
        decision = await self._waits.ask(
            state,
            Awaiting(
                kind=AwaitKind.BREAKPOINT,
                allowed=[_D.CONTINUE, _D.SKIP],
                message=f"Paused at a breakpoint set by {setter}: continue to go on with step "
                f"{step.id}, or skip it.",
            ),
            detail=f"paused at a breakpoint set by {setter}",
        )
        if decision is None:
            return False
        self._run.breakpoints.pop(step.id, None)
        if decision.decision == _D.SKIP:
            who = decision.actor.display_name
            await self._trail.set(state, StepStatus.SKIPPED, f"skipped at its breakpoint by {who}")
            return False
        await self._trail.set(
            state, StepStatus.PENDING, f"continued by {decision.actor.display_name}"
        )
        return True

    # -- steps ---------------------------------------------------------------------------

    async def _command_or_manual(self, step: StepSnapshot, index: int) -> None:
        inp = self._run.input
        state = self._run.steps[step.id]
        if inp.mode == ExecutionMode.READ_ALONG or not step.command:
            if step.command:
                state.command = render_command(
                    step.command, inp.variables, self._run.values
                ).command
            decision = await self._waits.ask(
                state,
                Awaiting(
                    kind=AwaitKind.DONE,
                    allowed=[_D.DONE, _D.SKIP],
                    message=rules.do_it_prompt(step),
                ),
            )
            if decision is not None:
                await self._trail.set(state, *rules.done_or_skipped(decision))
            return
        await self._commands.run(step, state, index)

    async def _decision(self, step: StepSnapshot) -> tuple[str | None, set[str]]:
        """A decision step: machine checks first, else a human chooses a branch, or "neither":
        none applies, so no branch's steps run and the walk goes on after them. (Executions
        started before the `decision-neither-goes-on` patch page a level on "neither" and ask
        again, as they did then.) Returns the step to continue with and the steps of the
        branches not taken."""
        inp = self._run.input
        state = self._run.steps[step.id]
        branches = step.branches
        chosen: int | None = None
        how = ""
        last = self._run.last_result
        checked = [b for b in branches if b.check]
        if inp.mode != ExecutionMode.READ_ALONG and last is not None and checked:
            matched = [
                i for i, b in enumerate(branches) if b.check and rules.branch_matches(b.check, last)
            ]
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
                message = rules.choice_prompt([b.condition for b in branches])
            else:
                message = "Which branch applies? (or neither: it escalates)"
            decision = await self._waits.ask(
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
                await self._trail.set(state, *rules.done_or_skipped(decision))
                return None, {b.goto for b in branches if b.goto}
            picked = branch_index(decision.branch, [b.condition for b in branches])
            if picked == -1 and neither_goes_on:
                await self._trail.set(
                    state,
                    StepStatus.SUCCEEDED,
                    f"none applies, chosen by {decision.actor.display_name}: no branch's steps run",
                )
                return None, {b.goto for b in branches if b.goto}
            if picked == -1:
                level = len(self._run.escalations) + 1
                await self._waits.escalate(
                    level,
                    step.id,
                    f"none of the branches of step {step.id} applies "
                    f"({decision.actor.display_name})",
                )
                continue
            assert picked is not None  # refused before it got here
            chosen = picked
            how = f"chosen by {decision.actor.display_name}: {branches[chosen].condition}"
        await self._trail.set(state, StepStatus.SUCCEEDED, how)
        targets = {b.goto for b in branches if b.goto}
        goto = branches[chosen].goto if chosen >= 0 else None
        return goto, targets - {goto}
