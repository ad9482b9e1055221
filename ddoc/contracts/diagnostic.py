"""A diagnostic: one green command an assistant asked for, run on the tenant's agent outside
any runbook (docs/decisions/0020-mcp-server.md).

The control plane classifies the command with the tenant's rules and starts the workflow only
for a green one; the agent still applies its local policy. Stdlib only (the workflow sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW_PREFIX = "ddoc-diagnostic."


def workflow_id(tenant_id: str, suffix: str) -> str:
    return f"{WORKFLOW_PREFIX}{tenant_id}.{suffix}"


def tenant_of_workflow_id(workflow_id: str) -> str | None:
    """The tenant of a diagnostic's workflow id; None when the id is not a diagnostic's."""
    if not workflow_id.startswith(WORKFLOW_PREFIX):
        return None
    return workflow_id.removeprefix(WORKFLOW_PREFIX).split(".", 1)[0] or None


@dataclass
class DiagnosticInput:
    tenant_id: str
    task_queue: str  # the tenant's agent queue
    command: str
    timeout_seconds: int = 60
    agent_offline_timeout_seconds: int = 60


class DiagnosticOutcome(StrEnum):
    RAN = "ran"  # it ran (any exit code)
    POLICY_DENIED = "policy_denied"  # the agent's local policy refused it: nothing ran
    AGENT_OFFLINE = "agent_offline"  # no agent took it in time: nothing ran
    FAILED = "failed"  # the agent could not run it (timeout, lost worker)


@dataclass
class DiagnosticResult:
    outcome: DiagnosticOutcome
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    timed_out: bool = False
    duration_ms: int = 0
    reason: str | None = None  # why it did not run (policy_denied, agent_offline, failed)
