"""Diagnostics: one command an assistant asks to run outside any runbook (MCP `run_diagnostic`).

Only a command that is green under the tenant's risk rules is ever started; anything else is
refused here with the classifier's reason before anything is scheduled. A green one runs as a
`Diagnostic` workflow (workflows/diagnostic.py) on the tenant's agent, whose local policy may
still deny it. What an assistant may change goes through a runbook and its approvals instead.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from ddoc.contracts import names
from ddoc.contracts.diagnostic import DiagnosticInput, DiagnosticResult, workflow_id
from ddoc.contracts.execution import RiskClass
from ddoc.contracts.settings import Settings, agent_task_queue
from ddoc.platform.errors import Forbidden, Invalid, Unavailable
from ddoc.runbooks.risk import RiskAssessment, classify_command
from ddoc.runbooks.risk import tenant as tenant_rules

MAX_COMMAND_CHARS = 2000
TIMEOUT_SECONDS = 60  # a diagnostic looks, it does not wait for things to change


class DiagnosticRefused(Forbidden):
    """The command is not green under the tenant's rules: nothing ran."""

    def __init__(self, command: str, assessment: RiskAssessment) -> None:
        super().__init__(
            f"refused: `{command}` is {assessment.level.value} ({assessment.reason}); only green "
            "(read-only) commands run as diagnostics, and nothing ran. To change something, "
            "start a runbook that has this step: its non-green steps wait for a human's approval."
        )
        self.risk = assessment.level
        self.reason = assessment.reason


@dataclass(frozen=True)
class Diagnostic:
    command: str
    risk: RiskClass
    reason: str
    result: DiagnosticResult


def classify(engine: Engine, tenant_id: str, command: str) -> RiskAssessment:
    with Session(engine) as session:
        return classify_command(command, tenant_rules.risk_rules(session, tenant_id))


async def run(
    engine: Engine, client: Client, settings: Settings, *, tenant_id: str, command: str
) -> Diagnostic:
    """Classify `command` with the tenant's rules; run it on the tenant's agent only when green
    (DiagnosticRefused otherwise). The agent's refusal or absence is the result's outcome."""
    command = command.strip()
    if not command:
        raise Invalid("command: empty")
    if len(command) > MAX_COMMAND_CHARS or "\x00" in command:
        raise Invalid(f"command: at most {MAX_COMMAND_CHARS} characters, no NUL")
    assessment = await asyncio.to_thread(classify, engine, tenant_id, command)
    if assessment.level != RiskClass.GREEN:
        raise DiagnosticRefused(command, assessment)
    inp = DiagnosticInput(
        tenant_id=tenant_id,
        task_queue=agent_task_queue(tenant_id, settings.environment),
        command=command,
        timeout_seconds=min(TIMEOUT_SECONDS, settings.command_timeout_seconds),
        agent_offline_timeout_seconds=settings.agent_offline_timeout_seconds,
    )
    try:
        result = await client.execute_workflow(
            names.DIAGNOSTIC_WORKFLOW,
            inp,
            id=workflow_id(tenant_id, uuid.uuid4().hex[:12]),
            task_queue=settings.control_task_queue,
            result_type=DiagnosticResult,
        )
    except Exception as err:
        raise Unavailable(f"Temporal did not run the diagnostic ({err})") from None
    return Diagnostic(command, assessment.level, assessment.reason, result)
