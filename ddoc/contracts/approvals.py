"""Who may decide what about a step: the approval policy.

The workflow enforces it on every decision it receives (and records the refused ones); the API
applies the same function before signalling, to answer 403/409 at once. Stdlib only: runs
inside the workflow sandbox.

- Any decision needs the responder, approver or admin role (viewers only watch).
- Yellow steps need one approval from a responder in copilot mode, none in autopilot (nor in
  dry run, where only a command's side-effect-free form runs).
- Red steps need approvers (the approver or admin role): as many distinct ones as the tenant's
  policy says (1 or 2), in every mode. Whoever started the run by hand may approve, but is never
  enough alone (four-eyes).
- An edited command is re-classified and needs approval at its new risk, at least one, and never
  from the person who edited it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ddoc.contracts.execution import (
    NEITHER,
    Awaiting,
    AwaitKind,
    Decision,
    DecisionKind,
    ExecutionMode,
    ExecutionPolicy,
)
from ddoc.contracts.roles import Role, holds

# Decisions about the whole execution: accepted whenever it is not finished.
EXECUTION_DECISIONS = frozenset({DecisionKind.ABORT, DecisionKind.ROLLBACK})


class RefusalCode(StrEnum):
    FORBIDDEN = "forbidden"  # the caller may not make this decision (HTTP 403)
    NOT_AWAITING = "not_awaiting"  # the step does not await this decision now (HTTP 409)
    INVALID = "invalid"  # the decision itself is malformed (HTTP 422)


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    reason: str


def approvals_needed(
    mode: ExecutionMode, risk: str | None, policy: ExecutionPolicy, *, edited: bool = False
) -> int:
    """Approvals a command step of this risk needs before it runs (0: it runs by itself)."""
    if risk == "red":
        needed = max(1, policy.red_approvals)  # red always needs a human, in every mode
    elif risk == "green" or mode in (ExecutionMode.AUTOPILOT, ExecutionMode.DRY_RUN):
        needed = 0  # in a dry run only side-effect-free forms ever run
    else:
        needed = 1  # yellow, and anything unclassified
    return max(needed, 1) if edited else needed


def role_for(risk: str | None) -> str:
    return Role.APPROVER if risk == "red" else Role.RESPONDER


def satisfied(awaiting: Awaiting, *, started_by: str | None) -> bool:
    approvers = awaiting.approved_by
    if len(approvers) < awaiting.approvals_needed:
        return False
    if awaiting.role == Role.APPROVER and started_by is not None:
        return any(user != started_by for user in approvers)
    return True


def refusal(
    decision: Decision, awaiting: Awaiting | None, *, edited_by: str | None = None
) -> Refusal | None:
    """Why this decision cannot be taken now, or None when it can."""
    actor = decision.actor
    if not holds(actor.roles, Role.RESPONDER):
        return Refusal(
            RefusalCode.FORBIDDEN,
            f"{actor.display_name} has no responder, approver or admin role",
        )
    kind = decision.decision
    if kind in EXECUTION_DECISIONS:
        return None
    if awaiting is None:
        return Refusal(
            RefusalCode.NOT_AWAITING, f"step {decision.step_id} is not awaiting a decision"
        )
    if kind.value not in awaiting.allowed:
        return Refusal(
            RefusalCode.NOT_AWAITING,
            f"step {decision.step_id} awaits {awaiting.kind.value}: one of "
            + ", ".join(awaiting.allowed),
        )
    needs_approver = awaiting.role == Role.APPROVER and not holds(actor.roles, Role.APPROVER)
    # Going on past a red step's failed verification is an approver's call, like running it.
    goes_on = kind == DecisionKind.DONE and awaiting.kind == AwaitKind.VERIFICATION
    if (kind in (DecisionKind.APPROVE, DecisionKind.RETRY) or goes_on) and needs_approver:
        return Refusal(
            RefusalCode.FORBIDDEN, f"step {decision.step_id} is red: it needs the approver role"
        )
    if kind == DecisionKind.APPROVE:
        if actor.user_id in awaiting.approved_by:
            return Refusal(
                RefusalCode.FORBIDDEN,
                f"{actor.display_name} already approved step {decision.step_id}: "
                "it needs another person",
            )
        if edited_by is not None and actor.user_id == edited_by:
            return Refusal(
                RefusalCode.FORBIDDEN,
                f"{actor.display_name} edited step {decision.step_id} and may not approve "
                "their own edit",
            )
    if kind == DecisionKind.EDIT and not (decision.command or "").strip():
        return Refusal(RefusalCode.INVALID, "an edit needs the new command")
    if kind == DecisionKind.CHOOSE and branch_index(decision.branch, awaiting.branches) is None:
        return Refusal(
            RefusalCode.INVALID,
            f"no branch {decision.branch!r}: choose a number from 1 to "
            f"{len(awaiting.branches)}, a branch's condition, or {NEITHER!r}",
        )
    if kind == DecisionKind.PROVIDE:
        unknown = sorted(set(decision.values) - set(awaiting.missing))
        if not decision.values or unknown:
            return Refusal(
                RefusalCode.INVALID,
                "provide values for "
                + ", ".join(awaiting.missing)
                + (f" (not awaited: {', '.join(unknown)})" if unknown else ""),
            )
    return None


def branch_index(choice: str | None, branches: list[str]) -> int | None:
    """0-based index of the chosen branch, -1 for "neither", None when it names none."""
    if choice is None:
        return None
    wanted = choice.strip()
    if wanted.lower() == NEITHER:
        return -1
    if wanted.isdigit() and 1 <= int(wanted) <= len(branches):
        return int(wanted) - 1
    for index, condition in enumerate(branches):
        if condition.strip().lower() == wanted.lower():
            return index
    return None
