"""Replay: histories recorded from the engine's paths by each release of the workflow
(tests/histories/<release>/, recorded with `DDOC_RECORD_HISTORIES=<release> pytest
tests/test_copilot_engine.py` and never re-recorded) must replay deterministically against
today's workflow code. A change that would break running executions fails here; a change meant
to behave differently goes behind `workflow.patched`, and the release after it records its own
histories beside the earlier ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from ddoc.contracts.execution import ExecutionInput, ExecutionResult, ExecutionStatus
from workflows.execution import RunbookExecutionWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
RELEASES = sorted({path.parent.name for path in HISTORIES})


@pytest.mark.parametrize("release", RELEASES)
def test_each_release_has_histories_of_every_kind_of_path(release: str) -> None:
    names = {path.stem.rsplit("_", 1)[0] for path in HISTORIES if path.parent.name == release}
    for path in (
        "green_steps_run_by_themselves",
        "red_step_needs_two_distinct_approvers",
        "an_edit_is_reclassified_and_needs_approval_at_its_new_risk",
        "failure_runs_the_compensations_in_reverse_order",
        "cancellation_runs_the_compensations",
        "decision_steps_check_by_themselves_or_ask",
        "dry_run_changes_nothing",
        "read_along_runs_nothing",
    ):
        assert path in names, f"{release}: no recorded history for {path}"


def test_the_verified_steps_release_has_histories_of_its_checks() -> None:
    """Release 3 (issue 19) took the `verified-steps` patch on these paths."""
    names = {p.stem.rsplit("_", 1)[0] for p in HISTORIES if p.parent.name == "3-verified-steps"}
    assert {
        "a_failed_precheck_never_runs_the_change",
        "a_failed_verification_offers_the_rollback_first_in_copilot",
        "a_failed_verification_in_autopilot_undoes_and_pages",
        "a_verification_that_passes_on_its_third_try_passes",
        "a_runbook_that_goes_through_but_does_not_mitigate_says_so_and_pages",
    } <= names


def test_the_parallel_release_has_histories_of_groups_breakpoints_and_drills() -> None:
    """Release 4 (issue 21) took the `parallel-steps`, `breakpoints` and `decisions-by-step`
    patches on these paths."""
    release = "4-parallel-breakpoints-drills"
    names = {p.stem.rsplit("_", 1)[0] for p in HISTORIES if p.parent.name == release}
    assert {
        "a_parallel_group_of_three_green_steps_takes_the_time_of_the_slowest",
        "each_step_of_a_parallel_group_has_its_own_approval",
        "an_abort_in_a_parallel_group_stops_the_steps_beside_it",
        "a_breakpoint_pauses_autopilot_and_continue_resumes",
        "a_breakpoint_set_on_a_running_execution_pauses_before_its_step",
        "a_late_decision_about_a_step_that_moved_on_is_refused",
        "a_drill_pages_no_one_and_scores_the_team",
    } <= names


def test_the_releases_before_the_restructure_are_kept() -> None:
    """Histories recorded before the workflow was split (issue 16) still replay."""
    assert "1-activity-per-record" in RELEASES


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[RunbookExecutionWorkflow]).replay_workflow(history)


@workflow.defn(name="RunbookExecution")
class ChangedWorkflow:
    """Today's input, but a timer first: what an incompatible change looks like."""

    @workflow.run
    async def run(self, inp: ExecutionInput) -> ExecutionResult:
        await workflow.sleep(timedelta(seconds=1))
        return ExecutionResult(inp.execution_id, ExecutionStatus.SUCCEEDED, [])


async def test_an_incompatible_change_fails_the_replay() -> None:
    path = next(p for p in HISTORIES if p.stem.startswith("green_steps_run_by_themselves"))
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[ChangedWorkflow]).replay_workflow(history)
