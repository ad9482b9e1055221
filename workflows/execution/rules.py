"""The execution's pure decisions: what an answer means, how it ends, what a check says.

No Temporal here, nothing but inputs and results: the workflow asks these functions and acts on
what they say, and tests/test_execution_rules.py checks them without a server.
"""

from __future__ import annotations

import re
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts.execution import (
        CommandResult,
        Decision,
        DecisionKind,
        ExecutionStatus,
        RiskClass,
        StepSnapshot,
        StepStatus,
    )

_D = DecisionKind


def final_status(*, failed: bool, stop: DecisionKind | None, undo_failed: bool) -> ExecutionStatus:
    """How a walk that ended ends the execution.

    | the walk                                   | status      |
    | ------------------------------------------ | ----------- |
    | a step failed                              | failed      |
    | rolled back, and an undo failed or unknown | failed      |
    | rolled back                                | rolled_back |
    | aborted, rejected, or rollback aborted     | aborted     |
    | went through                               | succeeded   |
    """
    if failed or (stop == _D.ROLLBACK and undo_failed):
        return ExecutionStatus.FAILED
    if stop == _D.ROLLBACK:
        return ExecutionStatus.ROLLED_BACK
    if stop is not None:
        return ExecutionStatus.ABORTED
    return ExecutionStatus.SUCCEEDED


def done_or_skipped(decision: Decision) -> tuple[StepStatus, str]:
    """A human's answer to "do this, then say so": done succeeds the step, anything else skips
    it."""
    done = decision.decision == _D.DONE
    status = StepStatus.SUCCEEDED if done else StepStatus.SKIPPED
    return status, f"{'done' if done else 'skipped'} by {decision.actor.display_name}"


def stopped_step(
    status: StepStatus, detail: str | None, decision: Decision, *, beside: bool = False
) -> tuple[StepStatus, str]:
    """The step a human was asked about when they aborted or rolled back the execution (or, for
    a step of a parallel group, stopped it at a step `beside` it): skipped, unless it may have
    run or did run (an unknown outcome, a failed verification): then it keeps its status."""
    verb = {_D.ABORT: "aborted", _D.REJECT: "rejected"}.get(decision.decision, "rolled back")
    said = f"{verb} by {decision.actor.display_name}"
    if beside:
        said = f"execution {said} at step {decision.step_id}"
    if status in (StepStatus.UNKNOWN, StepStatus.VERIFICATION_FAILED):
        return status, f"{detail}; {said}"
    return StepStatus.SKIPPED, said


def compensates(risk: RiskClass, rollback_command: str | None, *, dry: bool, undoing: bool) -> bool:
    """Whether a completed step registers its undo: only real state changes that have one (a
    dry run changed nothing, a green step nothing to undo, and an undo is not undone)."""
    return not dry and not undoing and risk != RiskClass.GREEN and bool(rollback_command)


def branch_matches(check: dict[str, Any], result: CommandResult) -> bool:
    """A decision branch's machine check against the previous command's result."""
    if "exit_code" in check:
        return bool(result.exit_code == check["exit_code"])
    if check.get("exit_code_nonzero"):
        return result.exit_code != 0
    pattern = check.get("output_pattern")
    return isinstance(pattern, str) and pattern in result.output


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def check_passes(expect: dict[str, Any], result: CommandResult) -> bool:
    """A precheck's or verification's expectation against its command's result. An output
    pattern or a threshold also needs the command to have exited 0 (a failed command's output
    proves nothing); an expectation this version does not know never passes."""
    if result.timed_out:
        return False
    if "exit_code" in expect:
        return bool(result.exit_code == expect["exit_code"])
    if result.exit_code != 0:
        return False
    if "output_pattern" in expect:
        pattern = expect["output_pattern"]
        return isinstance(pattern, str) and pattern in result.output
    threshold = expect.get("threshold")
    if isinstance(threshold, dict) and threshold.get("op") in _COMPARE:
        found = _NUMBER.search(result.output)
        if found is None:
            return False
        return bool(_COMPARE[threshold["op"]](float(found.group()), float(threshold["value"])))
    return False


def expectation(expect: dict[str, Any]) -> str:
    """What a check expects, in words (the trail's detail)."""
    if "exit_code" in expect:
        return f"exit {expect['exit_code']}"
    if "output_pattern" in expect:
        return f"output containing {expect['output_pattern']!r}"
    threshold = expect.get("threshold")
    if isinstance(threshold, dict):
        return f"a number {threshold.get('op')} {threshold.get('value')}"
    return f"{expect} (not understood)"


def check_gave(result: CommandResult) -> str:
    """What a check's command gave, in a few words (its output's last line, clipped)."""
    if result.timed_out:
        return "it timed out"
    lines = [line.strip() for line in result.output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    shown = f": {last[:120]}{'…' if len(last) > 120 else ''}" if last else " with no output"
    return f"got exit {result.exit_code}{shown}"


def do_it_prompt(step: StepSnapshot) -> str:
    """What read-along (or a manual step) asks: do it, with its checks in words, since nothing
    runs them for the human."""
    words = ["Do this step, then mark it done (or skip it)."]
    if step.precheck is not None:
        expected = expectation(step.precheck.expect)
        words.append(f"First check: {step.precheck.command} (expect {expected}).")
    if step.verify is not None:
        expected = expectation(step.verify.expect)
        words.append(f"Then verify: {step.verify.command} (expect {expected}).")
    return " ".join(words)


def verification_prompt(said: str, *, undoable: bool) -> str:
    """What a copilot asks when a change ran and its verification failed: the rollback first."""
    undo = (
        "Roll back (recommended: undoes this step, then the ones before it)"
        if undoable
        else "This step has no rollback: roll back undoes the steps before it"
    )
    return f"{said}. {undo}; or retry the verification, go on anyway (done), or abort."


def feeds_decision(steps: list[StepSnapshot], index: int) -> bool:
    """Whether the step at `index` is checked by the decision step right after it: its failure
    is then an answer to that decision, not the end of the execution."""
    following = steps[index + 1] if index + 1 < len(steps) else None
    return (
        following is not None
        and following.kind == "decision"
        and any(
            b.check and ("exit_code" in b.check or "exit_code_nonzero" in b.check)
            for b in following.branches
        )
    )


def choice_prompt(conditions: list[str]) -> str:
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


def approval_prompt(risk: RiskClass, needed: int, role: str) -> str:
    return (
        f"{risk} step: needs {needed} approval{'s' if needed > 1 else ''} "
        f"from {'an approver' if role == 'approver' else 'a responder'}"
    )
