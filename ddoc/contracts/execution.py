"""Typed inputs and results crossing Temporal boundaries (workflow, activities, agents).

Stdlib only: imported by workflows (inside the sandbox) and by the light agent worker.
One dataclass per input and result, so fields can be added later without breaking callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RiskClass(StrEnum):
    GREEN = "green"  # read-only
    YELLOW = "yellow"  # reversible state change
    RED = "red"  # destructive or irreversible

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]

    @classmethod
    def worst(cls, levels: list[RiskClass]) -> RiskClass:
        # An empty list has nothing proven read-only about it: never green by default.
        return max(levels, key=lambda level: level.rank) if levels else cls.YELLOW


_RISK_RANK = {RiskClass.GREEN: 0, RiskClass.YELLOW: 1, RiskClass.RED: 2}


class ExecutionMode(StrEnum):
    READ_ALONG = "read_along"
    COPILOT = "copilot"
    AUTOPILOT = "autopilot"
    DRY_RUN = "dry_run"
    DRILL = "drill"  # practice against a sandbox environment: as copilot, and nobody is paged


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    AWAITING_HUMAN = "awaiting_human"
    STALLED = "stalled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class StepStatus(StrEnum):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    ROLLED_BACK = "rolled_back"
    UNKNOWN = "unknown"
    VERIFICATION_FAILED = "verification_failed"  # it ran, but its `verify` check did not pass


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"  # do not run this step, and stop the execution here
    SKIP = "skip"  # do not run this step, go on
    EDIT = "edit"  # replace the step's command (re-classified, approved again)
    CHOOSE = "choose"  # a decision step's branch (or "neither")
    DONE = "done"  # a human did it (read-along, manual steps, an unknown outcome)
    ROLLBACK = "rollback"  # stop and undo the completed steps (compensations)
    ABORT = "abort"  # stop here, undo nothing
    RETRY = "retry"  # run again a step whose outcome is unknown
    PROVIDE = "provide"  # values for variables the alert did not carry
    CONTINUE = "continue"  # go on past a breakpoint


# The branch a human picks when none of a decision's branches applies: it escalates.
NEITHER = "neither"


class AwaitKind(StrEnum):
    APPROVAL = "approval"
    VALUES = "values"
    CHOICE = "choice"
    DONE = "done"  # read-along or manual step: do it, then say so
    OUTCOME = "outcome"  # the agent was lost mid-step: did it happen?
    AGENT = "agent"  # no agent is polling the task queue
    VERIFICATION = "verification"  # the change ran but its check failed: roll back, or decide
    BREAKPOINT = "breakpoint"  # a responder asked to pause before this step: continue or skip


@dataclass
class BranchSnapshot:
    condition: str
    text: str
    goto: str | None = None
    check: dict[str, Any] | None = None


@dataclass
class CheckSnapshot:
    """A step's precheck or verification: a read-only command and what it must give, retried
    every `interval_seconds` for up to `within_seconds` (see `ddoc.runbooks.model.Check`)."""

    command: str
    expect: dict[str, Any] = field(default_factory=lambda: {"exit_code": 0})
    within_seconds: int = 0
    interval_seconds: int = 10


@dataclass
class StepSnapshot:
    """A runbook step as parsed, frozen into the execution's input."""

    id: str
    text: str
    kind: str
    command: str | None = None
    risk: RiskClass | None = None
    rollback_command: str | None = None
    rollback_risk: RiskClass | None = None  # classified when the execution was created
    rollback_suggested: bool = False  # derived by us, not written in the runbook
    branches: list[BranchSnapshot] = field(default_factory=list)
    dry_run_command: str | None = None  # the side-effect-free form, when one is known
    precheck: CheckSnapshot | None = None
    verify: CheckSnapshot | None = None
    parallel: str | None = None  # consecutive steps of one group run concurrently


@dataclass
class EscalationLevel:
    name: str  # e.g. "L2 platform on-call"
    pagerduty_routing_key: str | None = None


@dataclass
class ExecutionPolicy:
    """The tenant's approval and escalation policy, frozen into the execution's input."""

    red_approvals: int = 1  # distinct approvers a red step needs (tenant policy: 1 or 2)
    wait_seconds: dict[str, int] = field(
        default_factory=lambda: {"critical": 300, "high": 600, "default": 1800}
    )
    escalation_levels: list[EscalationLevel] = field(default_factory=list)
    incident_timeout_seconds: int | None = 3600  # not resolved by then -> escalate
    heartbeat_timeout_seconds: int = 30  # agent silent this long -> outcome unknown

    def wait_for(self, severity: str | None) -> int:
        key = (severity or "").lower()
        return self.wait_seconds.get(key, self.wait_seconds.get("default", 1800))


@dataclass
class Actor:
    """Who made a decision, as authenticated by the API or Slack."""

    user_id: str
    display_name: str
    source: str  # slack | api | cli
    roles: list[str] = field(default_factory=list)
    address: str | None = None  # where the API saw the request come from (audit)


@dataclass
class Decision:
    """Signal: a human's decision about one step (or the whole execution)."""

    step_id: str
    decision: DecisionKind
    actor: Actor
    command: str | None = None  # edit
    branch: str | None = None  # choose: a branch's condition or number (1-based), or "neither"
    comment: str | None = None
    values: dict[str, str] = field(default_factory=dict)  # provide
    request_id: str | None = None  # the same request signalled twice counts once


@dataclass
class BreakpointChange:
    """Signal: set (or clear) a breakpoint on a step of a running execution."""

    step_id: str
    actor: Actor
    on: bool = True


@dataclass
class DecisionRecord:
    decision: str
    user_id: str
    display_name: str
    source: str
    at: str  # ISO 8601, workflow time
    accepted: bool
    reason: str | None = None  # why it was refused, or what it changed
    command: str | None = None
    branch: str | None = None
    comment: str | None = None
    address: str | None = None


@dataclass
class Awaiting:
    """What a step waits for from a human, and until when."""

    kind: AwaitKind
    allowed: list[str]  # decision kinds accepted now
    message: str
    role: str = "responder"  # the least role that may decide
    approvals_needed: int = 0
    approved_by: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # variables to provide
    branches: list[str] = field(default_factory=list)
    deadline: str | None = None  # ISO 8601; none once the last level was paged (stalled)
    escalation_level: int = 0  # levels paged so far for this wait
    asked_at: str | None = None  # ISO 8601, workflow time: when the human was first asked


@dataclass
class VariableSpec:
    name: str
    syntax: str
    source: str
    key: str | None = None


@dataclass
class AlertContext:
    title: str
    source: str
    dedup_key: str
    service: str | None = None
    severity: str | None = None
    environment: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class AlertResolved:
    """Signal: every alert of the execution's incident has resolved."""

    dedup_key: str
    source: str


@dataclass
class ExecutionInput:
    execution_id: str
    tenant_id: str
    environment: str
    runbook_id: str
    runbook_version: int
    runbook_title: str
    mode: ExecutionMode
    steps: list[StepSnapshot]
    variables: list[VariableSpec] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # variable name -> value given by hand
    alert: AlertContext | None = None
    incident_id: str | None = None
    command_timeout_seconds: int = 300
    agent_offline_timeout_seconds: int = 120
    policy: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    started_by: str | None = None  # the user who started it by hand (four-eyes on red steps)
    mitigated_check: CheckSnapshot | None = None  # the runbook's `mitigated_when` check
    # Steps to pause before (even in autopilot), each with who set it.
    breakpoints: dict[str, str] = field(default_factory=dict)
    # A replay (a drill): the decisions signalled to execution `replay_of`, in order. Each wait
    # takes the next one naming its step instead of asking; a wait none names ends the replay.
    replay_of: str | None = None
    replay: list[Decision] = field(default_factory=list)


@dataclass
class StepState:
    """A step as the workflow sees it now (the query's answer, and what is written to the DB)."""

    step_id: str
    kind: str
    text: str
    status: StepStatus
    command: str | None = None  # rendered (or edited) command
    risk: RiskClass | None = None
    exit_code: int | None = None
    detail: str | None = None
    undoes: str | None = None  # a compensation: the step it undoes
    edited_by: str | None = None
    decisions: list[DecisionRecord] = field(default_factory=list)
    awaiting: Awaiting | None = None
    dry_run: bool = False  # ran (or was shown) in its dry-run form
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class ExecutionResult:
    """The workflow's state: the `state` query's answer and the workflow's result."""

    execution_id: str
    status: ExecutionStatus
    steps: list[StepState]
    mode: str = ExecutionMode.COPILOT.value
    current_step: str | None = None
    alert_resolved: bool = False
    incident_escalated: bool = False
    escalations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CommandRequest:
    """What an agent runs. Variable values travel as environment variables, never spliced into
    the command text, so a hostile alert label can only ever be data."""

    execution_id: str
    step_id: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int = 300


@dataclass
class CommandResult:
    exit_code: int
    output: str
    truncated: bool = False
    duration_ms: int = 0
    timed_out: bool = False


@dataclass
class ExecutionStatusUpdate:
    execution_id: str
    tenant_id: str
    status: ExecutionStatus
    current_step: str | None = None


@dataclass
class StepRecord:
    execution_id: str
    tenant_id: str
    step_id: str
    status: StepStatus
    exit_code: int | None = None
    output: str | None = None
    output_truncated: bool = False
    detail: str | None = None
    command: str | None = None
    # Present when the step is new to the trail (a compensation) or its state changed.
    kind: str | None = None
    text: str | None = None
    risk: str | None = None
    undoes: str | None = None
    edited_by: str | None = None
    decisions: list[DecisionRecord] | None = None
    awaiting: Awaiting | None = None
    event: str | None = None  # the event notifiers see, e.g. "step.awaiting_approval"


@dataclass
class ExecutionEvent:
    """A transition notifiers (Slack, ...) care about that is not a step record."""

    execution_id: str
    tenant_id: str
    type: str  # escalated | stalled | alert_resolved | incident_escalated | decision_refused ...
    step_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrailOp:
    """One write of a transition: a step's state, the execution's status, or an event."""

    step: StepRecord | None = None
    status: ExecutionStatusUpdate | None = None
    event: ExecutionEvent | None = None


@dataclass
class TrailWrite:
    """The trail writes a workflow made since its last side effect, in order, written in one
    transaction by one local activity before the next side effect (since the `trail-v2` patch;
    before it, each write was an activity of its own)."""

    execution_id: str
    tenant_id: str
    ops: list[TrailOp] = field(default_factory=list)


@dataclass
class ExecutionFinished:
    """An execution ended with this status: what it teaches is drawn explicitly, after the
    trail recorded the end (learning, trust demotion, and the events notifiers pick up)."""

    execution_id: str
    tenant_id: str
    status: ExecutionStatus


@dataclass
class ClassifyRequest:
    tenant_id: str
    command: str


@dataclass
class Classification:
    risk: RiskClass
    reason: str


@dataclass
class EscalationRequest:
    """Page one escalation level (PagerDuty Events API v2) and record it."""

    execution_id: str
    tenant_id: str
    level: int  # 1-based
    level_name: str
    reason: str
    dedup_key: str
    severity: str | None = None
    routing_key: str | None = None
    step_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class EscalationResult:
    paged: bool
    detail: str


@dataclass
class SlackSyncInput:
    execution_id: str
    incident_id: str | None = None  # an incident with no execution: its own message


@dataclass
class SlackSyncResult:
    finished: bool  # the execution is over and everything about it is posted
