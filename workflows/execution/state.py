"""What one execution knows while it runs, shared by the walk, the waits, the saga and the trail.

Plain data: the workflow class owns one `Run` and hands it to its parts, so each part reads and
changes the same state without reaching into the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts.execution import (
        AlertResolved,
        CommandResult,
        Decision,
        ExecutionInput,
        ExecutionStatus,
        RiskClass,
        StepState,
    )

WAITING = (ExecutionStatus.AWAITING_HUMAN, ExecutionStatus.STALLED)


@dataclass
class Compensation:
    """The undo of a completed state-changing step, run by the saga."""

    step_id: str
    command: str
    risk: RiskClass
    suggested: bool


@dataclass
class Run:
    inp: ExecutionInput | None = None  # set first thing in `run`; signals may come before
    status: ExecutionStatus = ExecutionStatus.RUNNING
    steps: dict[str, StepState] = field(default_factory=dict)
    current: str | None = None  # the step the execution is at
    inbox: list[Decision] = field(default_factory=list)
    seen_requests: set[str] = field(default_factory=set)
    alert_resolved: AlertResolved | None = None
    incident_escalated: bool = False
    escalations: list[dict[str, Any]] = field(default_factory=list)
    stop: Decision | None = None  # abort, rollback or reject: the walk ends
    failed: str | None = None  # the step whose failure ends the walk
    compensating: bool = False
    compensations: list[Compensation] = field(default_factory=list)
    last_result: CommandResult | None = None  # the latest command's, for decision checks
    values: dict[str, str] = field(default_factory=dict)  # variable values known so far
    skipped_offline: Decision | None = None  # a skip while no agent took the step
    side_by_side: set[str] = field(default_factory=set)  # the parallel group walking now
    breakpoints: dict[str, str] = field(default_factory=dict)  # step id -> who set it
    replay: list[Decision] = field(default_factory=list)  # a replay's decisions not taken yet

    @property
    def input(self) -> ExecutionInput:
        assert self.inp is not None
        return self.inp
