"""An execution as it is read: the API's answers (`response_model`), what the Slack renderer
renders and what the CLI prints, one typed model each.

The JSON is a contract with users' tooling: keys, values and which keys are absent stay as
they were. A key that only some answers carry (a step's `dry_run` only while the workflow
answers, `live` only from `GET /executions/{id}`) is a field with a default that is left
unset, and answers are serialized with `exclude_unset`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ddoc.contracts.execution import (
    AwaitKind,
    DecisionKind,
    ExecutionMode,
    ExecutionStatus,
    StepStatus,
)
from ddoc.contracts.roles import Role
from ddoc.runbooks.model import RiskClass


class DecisionView(BaseModel):
    """A human's decision about a step, accepted or refused (the workflow's record)."""

    decision: DecisionKind
    user_id: str
    display_name: str
    source: str  # slack | api | cli
    at: str  # ISO 8601, workflow time
    accepted: bool
    reason: str | None = None  # why it was refused, or what it changed
    command: str | None = None
    branch: str | None = None
    comment: str | None = None
    address: str | None = None  # absent from decisions recorded before it was kept


class AwaitingView(BaseModel):
    """What a step waits for from a human, and until when."""

    kind: AwaitKind
    allowed: list[DecisionKind]
    message: str
    role: Role = Role.RESPONDER  # the least role that may decide
    approvals_needed: int = 0
    approved_by: list[str] = []
    missing: list[str] = []  # variables to provide
    branches: list[str] = []
    deadline: str | None = None  # ISO 8601; none once the last level was paged
    escalation_level: int = 0
    asked_at: str | None = None  # ISO 8601: when the human was first asked


class EscalationView(BaseModel):
    """One escalation level paged (or not) while the execution waited."""

    level: int
    name: str
    step_id: str | None
    reason: str
    at: str  # ISO 8601, workflow time
    paged: bool
    detail: str


class StepView(BaseModel):
    """A step of the trail, overlaid with the workflow's state while it runs."""

    id: str
    kind: str  # command | manual | decision | escalate | compensation
    text: str
    status: StepStatus
    command: str | None
    risk: RiskClass | None
    exit_code: int | None
    output: str | None
    output_truncated: bool
    detail: str | None
    # Absent from a step only the workflow knows yet (a compensation not recorded so far).
    started_at: datetime | None = None
    finished_at: datetime | None = None
    undoes: str | None  # a compensation: the step it undoes
    edited_by: str | None
    original_command: str | None = None  # the runbook's, once a human edited the command
    duration_seconds: float | None = None
    decisions: list[DecisionView]
    awaiting: AwaitingView | None
    dry_run: bool = False  # present while the workflow answers
    parallel: str | None = None  # its parallel group: the group's steps walk side by side


class ExecutionSummary(BaseModel):
    """An execution without its steps (lists)."""

    id: str
    workflow_id: str
    status: ExecutionStatus
    mode: ExecutionMode
    runbook_id: str
    runbook_version: int
    incident_id: str | None
    environment: str
    started_by: str | None
    created_at: datetime
    finished_at: datetime | None
    current_step: str | None


class ExecutionView(ExecutionSummary):
    """An execution with its steps: the trail, or the trail overlaid with the live state."""

    steps: list[StepView]
    # Present while the workflow answers (the trail does not keep them).
    alert_resolved: bool = False
    incident_escalated: bool = False
    escalations: list[EscalationView] = []
    live: bool | None = None  # set by `GET /executions/{id}`: whether the workflow answered

    def step(self, step_id: str | None) -> StepView | None:
        return next((s for s in self.steps if s.id == step_id), None) if step_id else None


class ExecutionEventView(BaseModel):
    """A transition of the execution, as notifiers read it."""

    id: int
    at: datetime
    type: str  # step.awaiting_approval | escalated | stalled | trust_demoted | ...
    step_id: str | None
    data: dict[str, Any]


class DecisionAccepted(BaseModel):
    """A decision that passed the checks and went to the workflow (which checks again)."""

    accepted: bool
    execution_id: str
    step_id: str
    decision: DecisionKind
    request_id: str | None
    # Only when the abort said the runbook was the wrong one: the learned trigger removed.
    learned_trigger_removed: str | None = None
