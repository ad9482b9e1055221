"""Self-checks: what the control plane, the self-check workflow and the agents exchange.

A tenant's self-check (docs/decisions/0018-self-checks.md) walks its active runbooks on a Temporal
Schedule. For each runbook the control plane sends the agent ONE `RunbookProbe`: per command
step, the programs to look for on the agent's PATH and what, if anything, to run. `StepProbe.run`
is the only thing the agent decides on: the control plane sets it from the risk classifier, and
anything but `command` or `dry_run` (a missing field, an unknown value) runs nothing.

Stdlib only: imported by the workflow (inside the sandbox) and by the light agent worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

# One Temporal Schedule per tenant; the workflows it starts are `ddoc-self-check.<tenant>-<time>`
# (Temporal appends the scheduled time), the ones started by hand
# `ddoc-self-check.<tenant>.manual-<hex>`. Tenant ids have no dots, so the dot after the prefix
# tells the tenant apart from the suffix (the payload codec resolves the tenant from it).
SCHEDULE_PREFIX = "ddoc-self-check-"
WORKFLOW_PREFIX = "ddoc-self-check."
_SCHEDULED_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


def schedule_id(tenant_id: str) -> str:
    return SCHEDULE_PREFIX + tenant_id


def workflow_id(tenant_id: str) -> str:
    """The id a tenant's schedule gives the workflows it starts (before Temporal's suffix)."""
    return WORKFLOW_PREFIX + tenant_id


def manual_workflow_id(tenant_id: str, suffix: str) -> str:
    return f"{WORKFLOW_PREFIX}{tenant_id}.manual-{suffix}"


def tenant_of_workflow_id(workflow_id: str) -> str | None:
    """The tenant of a self-check workflow id; None when the id is not a self-check's."""
    if not workflow_id.startswith(WORKFLOW_PREFIX):
        return None
    rest = workflow_id.removeprefix(WORKFLOW_PREFIX)
    tenant = rest.split(".", 1)[0] if "." in rest else _SCHEDULED_SUFFIX.sub("", rest)
    return tenant or None


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"


class ProbeRun(StrEnum):
    """What the agent runs of a step. Only the control plane sets it (from the classifier)."""

    NONE = "none"  # look for the programs only
    COMMAND = "command"  # read-only (green): run the command itself
    DRY_RUN = "dry_run"  # a change with a side-effect-free form: run that form, never the command


class FindingKind(StrEnum):
    PROGRAM_MISSING = "program_missing"  # a program the step uses is not on the agent's PATH
    COMMAND_FAILED = "command_failed"  # the read-only command ran and exited non-zero
    DRY_RUN_FAILED = "dry_run_failed"  # the dry-run form ran and exited non-zero
    TIMED_OUT = "timed_out"  # what ran did not finish within the probe's time
    POLICY_DENIED = "policy_denied"  # the agent's local policy would refuse the step
    VARIABLE_UNRESOLVED = "variable_unresolved"  # nothing to check the step with
    DRY_RUN_NOT_CONFIRMED = "dry_run_not_confirmed"  # the agent derives another form: not run
    AGENT_OFFLINE = "agent_offline"  # no agent polled the environment's queue (whole run)
    AGENT_ERROR = "agent_error"  # the probe itself failed (an agent lost mid-probe)
    NOT_CONFIGURED = "not_configured"  # the tenant's self-check settings do not allow a run
    OVER_LIMIT = "over_limit"  # more runbooks than one run checks


# What fails a runbook's check; the other kinds are said but do not fail it.
FAILING_KINDS = frozenset(
    {
        FindingKind.PROGRAM_MISSING,
        FindingKind.COMMAND_FAILED,
        FindingKind.DRY_RUN_FAILED,
        FindingKind.TIMED_OUT,
        FindingKind.POLICY_DENIED,
    }
)


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # failing, and never passed before this streak
    DRIFTED = "drifted"  # failing after having passed: the runbook rotted


@dataclass
class Finding:
    kind: str  # a FindingKind value
    message: str
    step_id: str | None = None

    @property
    def failing(self) -> bool:
        return self.kind in FAILING_KINDS


@dataclass
class StepProbe:
    """One command step as the agent checks it. `command` is rendered (variable values travel in
    `env` as DDOC_VAR_* variables, as for an execution)."""

    step_id: str
    command: str
    programs: list[str] = field(default_factory=list)
    run: str = ProbeRun.NONE.value
    dry_run_command: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunbookProbe:
    """The agent activity's input: one runbook's steps."""

    run_id: str
    runbook_id: str
    version: int
    steps: list[StepProbe] = field(default_factory=list)
    timeout_seconds: int = 30  # for each command (or dry run) the agent runs


@dataclass
class ProbeReport:
    """The agent activity's result."""

    agent: str  # the host and queue that checked
    findings: list[Finding] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)  # steps whose command or dry run ran


@dataclass
class SelfCheckInput:
    tenant_id: str
    trigger: str = Trigger.SCHEDULE.value
    agent_offline_timeout_seconds: int = 120


@dataclass
class SelfCheckPlanRequest:
    tenant_id: str
    workflow_id: str
    run_id: str  # Temporal's run id: the plan is made once per workflow run (retries reuse it)
    trigger: str
    started_at: str  # ISO 8601, workflow time


@dataclass
class RunbookRef:
    runbook_id: str
    version: int
    title: str


@dataclass
class SelfCheckPlan:
    """The run: which runbooks (at which version), where, and whether the digest is due. An
    empty `run_id` means there is nothing to run (`findings` says why)."""

    run_id: str
    environment: str = ""
    task_queue: str = ""
    runbooks: list[RunbookRef] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # about the run, not one runbook
    digest_due: bool = False  # the first run of the tenant's week: post the weekly digest
    probe_timeout_seconds: int = 30


@dataclass
class SelfCheckPrepare:
    """Make one runbook's probe (one activity per runbook keeps each payload small)."""

    run_id: str
    tenant_id: str
    runbook_id: str
    version: int


@dataclass
class SelfCheckTarget:
    runbook_id: str
    version: int
    title: str
    probe: RunbookProbe
    findings: list[Finding] = field(default_factory=list)  # the control plane's own


@dataclass
class SelfCheckRecord:
    """One runbook's findings, recorded (passed / failed / drifted) by the control plane."""

    run_id: str
    tenant_id: str
    runbook_id: str
    version: int
    findings: list[Finding] = field(default_factory=list)
    agent: str | None = None


@dataclass
class SelfCheckRecorded:
    status: str  # a CheckStatus value
    failing_since: str | None = None


@dataclass
class SelfCheckFinish:
    run_id: str
    tenant_id: str
    findings: list[Finding] = field(default_factory=list)


@dataclass
class SelfCheckSummary:
    """The workflow's result."""

    run_id: str
    checked: int = 0
    failing: int = 0  # failed, never passed
    drifted: int = 0  # failing after having passed
    findings: list[Finding] = field(default_factory=list)  # about the run
    digest: str | None = None  # what became of the weekly digest, when this run was due one


@dataclass
class DigestRequest:
    run_id: str
    tenant_id: str


@dataclass
class DigestResult:
    posted: bool
    detail: str
