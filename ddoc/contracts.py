"""Typed inputs and results crossing Temporal boundaries (workflow, activities, agents).

Stdlib only: imported by workflows (inside the sandbox) and by the light agent worker.
One dataclass per input and result, so fields can be added later without breaking callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ExecutionMode(StrEnum):
    READ_ALONG = "read_along"
    COPILOT = "copilot"
    AUTOPILOT = "autopilot"
    DRY_RUN = "dry_run"


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


@dataclass
class StepSnapshot:
    """A runbook step as parsed, frozen into the execution's input."""

    id: str
    text: str
    kind: str
    command: str | None = None
    risk: str | None = None


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


@dataclass
class StepOutcome:
    step_id: str
    status: StepStatus
    exit_code: int | None = None
    detail: str | None = None


@dataclass
class ExecutionResult:
    execution_id: str
    status: ExecutionStatus
    steps: list[StepOutcome]


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
