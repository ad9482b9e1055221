"""Human waits and escalation: asking people, and paging the next level when nobody answers.

Every human wait has a deadline by severity (the tenant's policy): at each expiry one escalation
level is paged, after the last one the execution is visibly stalled. A timeout never decides
anything. Decisions arrive as signals into the run's inbox; each is checked against what the
step awaits (`ddoc.contracts.approvals.refusal`) and either accepted or refused on the record.
"""

from __future__ import annotations

import builtins
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts import names
    from ddoc.contracts.approvals import EXECUTION_DECISIONS, refusal
    from ddoc.contracts.execution import (
        Actor,
        Awaiting,
        Decision,
        DecisionKind,
        DecisionRecord,
        EscalationRequest,
        EscalationResult,
        ExecutionMode,
        ExecutionStatus,
        StepState,
        StepStatus,
    )
    from workflows import timeouts
    from workflows.execution import rules, story
    from workflows.execution.state import WAITING, Run
    from workflows.execution.trail import Trail

_D = DecisionKind
# Patches (workflow.patched): a decision is only ever applied to the step it names.
DECISIONS_BY_STEP = "decisions-by-step"


class HumanWaits:
    def __init__(self, run: Run, trail: Trail) -> None:
        self._run = run
        self._trail = trail

    async def ask(
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
        run = self._run
        inp = run.input
        levels = inp.policy.escalation_levels
        wait = inp.policy.wait_for(inp.alert.severity if inp.alert else None)
        awaiting.asked_at = awaiting.asked_at or workflow.now().isoformat()
        state.awaiting = awaiting
        run.current = state.step_id
        stalled = False
        # The execution's status first, so no query sees a step waiting in a running execution.
        run.status = ExecutionStatus.AWAITING_HUMAN
        await self._trail.set(state, status, detail, event=f"step.awaiting_{awaiting.kind.value}")
        try:
            while True:
                if self.ended_beside(state):
                    await self._ended_beside(state)
                    return None
                deadline = workflow.now() + timedelta(seconds=wait)
                awaiting.deadline = None if stalled else deadline.isoformat()
                level = awaiting.escalation_level + 1
                timer = story.wait_summary(
                    state.step_id,
                    awaiting,
                    state.risk,
                    deadline=deadline,
                    level=level,
                    level_name=levels[level - 1].name if level <= len(levels) else None,
                )
                if inp.replay_of is not None:
                    decision = self._replayed(state.step_id)
                    if decision is None:
                        await self._diverged(state, awaiting)
                        return None
                else:
                    decision = await self.next_decision(
                        None if stalled else wait, timer, step_id=state.step_id
                    )
                if decision is None and self.ended_beside(state):
                    await self._ended_beside(state)
                    return None
                if decision is None:
                    # The deadline passed: escalate one level, keep waiting. Never decide.
                    if awaiting.escalation_level < len(levels):
                        awaiting.escalation_level += 1
                        await self.escalate(
                            awaiting.escalation_level,
                            state.step_id,
                            f"step {state.step_id} awaits {awaiting.kind.value} "
                            f"for {wait // 60} min",
                        )
                    else:
                        stalled = True
                        awaiting.deadline = None
                        await self._trail.event(
                            "stalled",
                            state.step_id,
                            {"reason": f"no decision after {len(levels)} escalation level(s)"},
                        )
                        await self._trail.set_status(ExecutionStatus.STALLED)
                    await self._trail.record(state)
                    continue
                why = refusal(decision, awaiting, edited_by=edited_by)
                if why is None and self.elsewhere(state, decision):
                    why_text: str | None = f"step {decision.step_id} is not awaiting a decision"
                elif why is None and run.compensating and decision.decision == _D.ROLLBACK:
                    why_text = "already rolling back"
                else:
                    why_text = why.reason if why else None
                if why_text is not None:
                    await self.refused(state, decision, why_text)
                    continue
                self.accept(state, decision)
                if decision.decision in EXECUTION_DECISIONS:
                    run.stop = decision
                    state.awaiting = None
                    status_now, said = rules.stopped_step(state.status, state.detail, decision)
                    await self._trail.set(
                        state, status_now, said, event=f"execution.{decision.decision.value}"
                    )
                    return None
                return decision
        finally:
            state.awaiting = None
            others = any(s.awaiting is not None for s in run.steps.values())
            if run.status in WAITING and not others:
                run.status = ExecutionStatus.RUNNING

    async def next_decision(
        self, within: int | None, timer: str | None = None, *, step_id: str | None = None
    ) -> Decision | None:
        """The next decision for this step; None after `within` seconds (`timer`: what the
        Temporal UI says the timer waits for), or when a step beside it stopped (or failed)
        the execution."""
        await self._trail.flush()  # whoever is asked sees what they are asked about
        run = self._run
        try:
            await workflow.wait_condition(
                lambda: (
                    self.waiting(step_id)
                    or (
                        bool(run.side_by_side)
                        and (run.stop is not None or run.failed not in (None, step_id))
                    )
                ),
                timeout=within,
                timeout_summary=timer,
            )
        except builtins.TimeoutError:
            return None
        return self.take(step_id)

    # -- the inbox while steps run side by side ------------------------------------------
    # One step at a time, the first decision in the inbox is the current step's. While a
    # parallel group walks, each of its steps still walking takes the decisions that name it,
    # and any of them those that name no such step: an abort or rollback (taken), anything else
    # (refused).

    def _its(self, step_id: str | None, decision: Decision) -> bool:
        group = self._run.side_by_side
        return (
            not group
            or step_id is None
            or decision.step_id == step_id
            or decision.step_id not in group  # the execution-wide ones name any step
        )

    def waiting(self, step_id: str | None) -> bool:
        """A decision for this step is in the inbox."""
        return any(self._its(step_id, d) for d in self._run.inbox)

    def take(self, step_id: str | None) -> Decision | None:
        inbox = self._run.inbox
        for i, decision in enumerate(inbox):
            if self._its(step_id, decision):
                return inbox.pop(i)
        return None

    def elsewhere(self, state: StepState, decision: Decision) -> bool:
        """A decision about another step (not the whole execution) reached this one: a late
        double click on a step that has moved on, or one about a step beside it. It is refused,
        never applied here. (Executions started before the patch applied it to the step that
        waited, and replay so.)"""
        if decision.step_id == state.step_id or decision.decision in EXECUTION_DECISIONS:
            return False
        return workflow.patched(DECISIONS_BY_STEP)

    def stopped_beside(self, state: StepState) -> bool:
        """While a group walks, a step beside this one stopped the execution (abort, rollback,
        reject): what this step runs is stopped too."""
        return bool(self._run.side_by_side) and self._run.stop is not None

    def ended_beside(self, state: StepState) -> bool:
        """While a group walks, the execution was stopped, or failed, at a step beside this one:
        this step's wait ends (nobody is asked about a walk that is over), said on the record.
        A command that runs beside a failure finishes."""
        run = self._run
        return bool(run.side_by_side) and (
            run.stop is not None or (run.failed is not None and run.failed != state.step_id)
        )

    # -- a replay ------------------------------------------------------------------------

    def _replayed(self, step_id: str) -> Decision | None:
        """The next recorded decision naming this step (an abort or rollback too), as a replay
        of its decider's."""
        script = self._run.replay
        for i, recorded in enumerate(script):
            if recorded.step_id == step_id:
                del script[i]
                actor = recorded.actor
                return dataclasses.replace(
                    recorded,
                    actor=dataclasses.replace(
                        actor, display_name=f"{actor.display_name} (replayed)", source="replay"
                    ),
                    request_id=None,
                )
        return None

    async def _diverged(self, state: StepState, awaiting: Awaiting) -> None:
        """No recorded decision for what this step asks: the new version went where the past
        execution did not. The replay stops here, saying so."""
        inp = self._run.input
        reason = (
            f"replay of {inp.replay_of}: no recorded decision for step {state.step_id} "
            f"(it awaits {awaiting.kind.value}); the version diverged here"
        )
        self._run.stop = Decision(
            step_id=state.step_id,
            decision=_D.ABORT,
            actor=Actor(user_id="replay", display_name="replay", source="replay"),
            comment=reason,
        )
        state.awaiting = None
        await self._trail.event("replay.diverged", state.step_id, {"reason": reason})
        await self._trail.set(state, StepStatus.SKIPPED, reason)

    async def _ended_beside(self, state: StepState) -> None:
        run = self._run
        state.awaiting = None
        if run.stop is not None:
            status, said = rules.stopped_step(state.status, state.detail, run.stop, beside=True)
        else:
            status, said = StepStatus.SKIPPED, f"not run: step {run.failed} beside it failed"
        await self._trail.set(state, status, said)

    def accept(self, state: StepState, decision: Decision) -> None:
        state.decisions.append(self._record_of(decision, accepted=True))

    async def refused(self, state: StepState, decision: Decision, reason: str) -> None:
        state.decisions.append(self._record_of(decision, accepted=False, reason=reason))
        await self._trail.record(state, event="decision.refused")

    def _record_of(
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

    async def escalate(self, level: int, step_id: str | None, reason: str) -> None:
        """Page this escalation level (unless the alert resolved) and keep the page on record;
        a page that cannot be sent is recorded and the execution goes on."""
        run = self._run
        inp = run.input
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
        if inp.mode == ExecutionMode.DRILL:
            said = f"drill: nobody paged (would page {name})"
            result = EscalationResult(paged=False, detail=said)
            data = {"level": level, "name": name, **vars(result)}
            await self._trail.event("escalated", step_id, data)
        elif run.alert_resolved is not None:
            result = EscalationResult(paged=False, detail="the alert has resolved: not paged")
            data = {"level": level, "name": name, **vars(result)}
            await self._trail.event("escalated", step_id, data)
        else:
            await self._trail.flush()
            try:
                result = await workflow.execute_activity(
                    names.ESCALATE,
                    request,
                    result_type=EscalationResult,
                    start_to_close_timeout=timeouts.ESCALATION_TIMEOUT,
                    retry_policy=timeouts.ESCALATION_RETRY,
                    summary=story.escalation_summary(level, name, step_id),
                )
            except ActivityError as err:
                if workflow.cancellation_reason() is not None:
                    raise  # the workflow is being cancelled: not a paging problem
                result = EscalationResult(paged=False, detail=f"page failed: {err.cause or err}")
                data = {"level": level, **vars(result)}
                await self._trail.event("escalation_failed", step_id, data)
        run.escalations.append(
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

    async def watch_incident(self) -> None:
        """An incident still firing after the policy's timeout pages level 1 ("the L1 runbook
        did not fix it"); a resolved one is recorded."""
        run = self._run
        inp = run.input
        timeout = inp.policy.incident_timeout_seconds
        if inp.alert is None or inp.mode == ExecutionMode.DRILL:
            return  # a drill's alert is simulated: nothing resolves it
        levels = inp.policy.escalation_levels
        timer = (
            story.incident_summary(
                inp.alert.title,
                timeout,
                deadline=workflow.now() + timedelta(seconds=timeout),
                level_name=levels[0].name if levels else None,
            )
            if timeout is not None
            else None
        )
        try:
            await workflow.wait_condition(
                lambda: run.alert_resolved is not None, timeout=timeout, timeout_summary=timer
            )
        except builtins.TimeoutError:
            run.incident_escalated = True
            assert timeout is not None
            await self.escalate(1, None, f"the incident is not resolved after {timeout // 60} min")
        else:
            resolved = run.alert_resolved
            assert resolved is not None
            await self._trail.event("alert_resolved", None, {"dedup_key": resolved.dedup_key})
        await self._trail.flush()  # the walk may be waiting: this runs beside it

    def _context(self) -> dict[str, Any]:
        run = self._run
        inp = run.input
        alert = inp.alert
        return {
            "runbook": f"{inp.runbook_title} (v{inp.runbook_version})",
            "mode": inp.mode.value,
            "status": run.status.value,
            "alert": alert.title if alert else None,
            "service": alert.service if alert else None,
            "steps": [
                f"{s.step_id} {s.status.value}" + (f" ({s.detail})" if s.detail else "")
                for s in run.steps.values()
            ],
        }
