"""The execution's pure decisions (workflows/execution/rules.py), without a Temporal server."""

from __future__ import annotations

import pytest

from ddoc.contracts.execution import (
    Actor,
    BranchSnapshot,
    CheckSnapshot,
    CommandResult,
    Decision,
    DecisionKind,
    ExecutionStatus,
    RiskClass,
    StepSnapshot,
    StepStatus,
)
from workflows.execution import rules

D = DecisionKind
RITA = Actor(user_id="u_rita", display_name="Rita", source="api")


def said(kind: DecisionKind) -> Decision:
    return Decision(step_id="s1", decision=kind, actor=RITA)


@pytest.mark.parametrize(
    ("failed", "stop", "undo_failed", "status"),
    [
        (False, None, False, ExecutionStatus.SUCCEEDED),
        (True, None, False, ExecutionStatus.FAILED),
        (True, D.ROLLBACK, False, ExecutionStatus.FAILED),
        (False, D.ROLLBACK, False, ExecutionStatus.ROLLED_BACK),
        (False, D.ROLLBACK, True, ExecutionStatus.FAILED),
        (False, D.ABORT, False, ExecutionStatus.ABORTED),
        (False, D.ABORT, True, ExecutionStatus.ABORTED),  # an abort stops undoing: not a failure
        (False, D.REJECT, False, ExecutionStatus.ABORTED),
    ],
)
def test_how_an_execution_ends(
    failed: bool, stop: DecisionKind | None, undo_failed: bool, status: ExecutionStatus
) -> None:
    assert rules.final_status(failed=failed, stop=stop, undo_failed=undo_failed) == status


def test_done_succeeds_and_anything_else_skips() -> None:
    assert rules.done_or_skipped(said(D.DONE)) == (StepStatus.SUCCEEDED, "done by Rita")
    assert rules.done_or_skipped(said(D.SKIP)) == (StepStatus.SKIPPED, "skipped by Rita")


def test_a_stop_skips_the_step_unless_its_outcome_is_unknown() -> None:
    assert rules.stopped_step(StepStatus.AWAITING_APPROVAL, None, said(D.ABORT)) == (
        StepStatus.SKIPPED,
        "aborted by Rita",
    )
    assert rules.stopped_step(StepStatus.UNKNOWN, "outcome unknown: lost", said(D.ROLLBACK)) == (
        StepStatus.UNKNOWN,
        "outcome unknown: lost; rolled back by Rita",
    )


@pytest.mark.parametrize(
    ("risk", "rollback", "dry", "undoing", "registers"),
    [
        (RiskClass.YELLOW, "kubectl uncordon n1", False, False, True),
        (RiskClass.RED, "restore.sh", False, False, True),
        (RiskClass.GREEN, "anything", False, False, False),  # nothing changed
        (RiskClass.YELLOW, None, False, False, False),  # nothing to undo with
        (RiskClass.YELLOW, "kubectl uncordon n1", True, False, False),  # a dry run changed nothing
        (RiskClass.YELLOW, "kubectl uncordon n1", False, True, False),  # undos are not undone
    ],
)
def test_which_steps_register_their_undo(
    risk: RiskClass, rollback: str | None, dry: bool, undoing: bool, registers: bool
) -> None:
    assert rules.compensates(risk, rollback, dry=dry, undoing=undoing) is registers


def test_branch_checks_read_the_previous_result() -> None:
    failed = CommandResult(exit_code=1, output="disk 97% full")
    assert rules.branch_matches({"exit_code": 1}, failed)
    assert not rules.branch_matches({"exit_code": 0}, failed)
    assert rules.branch_matches({"exit_code_nonzero": True}, failed)
    assert rules.branch_matches({"output_pattern": "97%"}, failed)
    assert not rules.branch_matches({"output_pattern": "ok"}, failed)
    assert not rules.branch_matches({"something": "else"}, failed)


def test_a_failure_feeds_the_decision_that_checks_its_exit_code() -> None:
    check = StepSnapshot(id="c1", text="check", kind="command", command="df -h")
    by_exit = StepSnapshot(
        id="d1",
        text="full?",
        kind="decision",
        branches=[BranchSnapshot(condition="full", text="", check={"exit_code": 1})],
    )
    by_output = StepSnapshot(
        id="d1",
        text="full?",
        kind="decision",
        branches=[BranchSnapshot(condition="full", text="", check={"output_pattern": "9"})],
    )
    assert rules.feeds_decision([check, by_exit], 0)
    assert not rules.feeds_decision([check, by_output], 0)  # a failure still ends the walk
    assert not rules.feeds_decision([check], 0)
    assert not rules.feeds_decision([by_exit, check], 0)


def test_prompts_say_what_each_answer_does() -> None:
    one = rules.choice_prompt(["the disk is full"])
    assert one.startswith("Does this apply: the disk is full? Choose 1")
    assert "neither" in one
    assert rules.choice_prompt(["a", "b", "c"]).startswith(
        "Which branch applies? Choose its number (1-3)"
    )
    assert rules.approval_prompt(RiskClass.RED, 2, "approver") == (
        "red step: needs 2 approvals from an approver"
    )
    assert rules.approval_prompt(RiskClass.YELLOW, 1, "responder") == (
        "yellow step: needs 1 approval from a responder"
    )


@pytest.mark.parametrize(
    ("expect", "output", "exit_code", "passes"),
    [
        ({"exit_code": 0}, "", 0, True),
        ({"exit_code": 0}, "", 1, False),
        ({"exit_code": 3}, "", 3, True),
        ({"output_pattern": "rolled out"}, 'deployment "api" successfully rolled out', 0, True),
        (
            {"output_pattern": "rolled out"},
            "rolled out",
            1,
            False,
        ),  # a failed command proves nothing
        ({"output_pattern": "Running"}, "Pending", 0, False),
        ({"threshold": {"op": "<=", "value": 0}}, "restarts: 0", 0, True),
        ({"threshold": {"op": "<", "value": 5}}, "errors 12.5 per s", 0, False),
        ({"threshold": {"op": ">=", "value": 3}}, "3/3 ready", 0, True),
        ({"threshold": {"op": "<", "value": 5}}, "no number here", 0, False),
        ({"threshold": {"op": "~", "value": 5}}, "1", 0, False),  # an unknown operator
        ({"something": "new"}, "", 0, False),  # an expectation this version does not know
    ],
)
def test_a_check_passes_only_on_what_it_expects(
    expect: dict[str, object], output: str, exit_code: int, passes: bool
) -> None:
    result = CommandResult(exit_code=exit_code, output=output)
    assert rules.check_passes(expect, result) is passes
    assert not rules.check_passes(expect, CommandResult(0, output, timed_out=True))


def test_check_words_for_the_trail_and_the_human() -> None:
    assert rules.expectation({"output_pattern": "ok"}) == "output containing 'ok'"
    assert rules.expectation({"threshold": {"op": "<", "value": 5}}) == "a number < 5"
    assert rules.check_gave(CommandResult(1, "line 1\n  pods: 2/3 ready  \n")) == (
        "got exit 1: pods: 2/3 ready"
    )
    assert rules.check_gave(CommandResult(0, "")) == "got exit 0 with no output"
    step = StepSnapshot(
        id="s1",
        text="Restart",
        kind="command",
        command="kubectl rollout restart deploy/api",
        precheck=CheckSnapshot("kubectl get deploy api"),
        verify=CheckSnapshot("kubectl rollout status deploy/api", {"output_pattern": "rolled"}),
    )
    assert rules.do_it_prompt(step) == (
        "Do this step, then mark it done (or skip it). First check: kubectl get deploy api "
        "(expect exit 0). Then verify: kubectl rollout status deploy/api (expect output "
        "containing 'rolled')."
    )
    assert "Roll back (recommended" in rules.verification_prompt("verify failed", undoable=True)
    assert "has no rollback" in rules.verification_prompt("verify failed", undoable=False)
