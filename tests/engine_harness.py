"""Drive `RunbookExecutionWorkflow` on a real Temporal server with the real control-plane worker
(its own database), a real agent running commands, and a fake PagerDuty over HTTP.

Runbooks are built step by step (`cmd`, `manual`, `decision`) so each test states exactly the
risk and rollback it is about; the parser has its own tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from agent_worker.commands import CommandActivities
from agent_worker.main import build_agent
from ddoc.alerts.paging import PagerDutyEvents
from ddoc.contracts.execution import (
    Actor,
    AlertContext,
    Decision,
    DecisionKind,
    EscalationLevel,
    ExecutionInput,
    ExecutionMode,
    ExecutionPolicy,
    ExecutionResult,
    StepState,
)
from ddoc.execution import store as executions
from ddoc.platform import tenancy
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import (
    Branch,
    Check,
    Mitigation,
    ParsedRunbook,
    RiskClass,
    Rollback,
    RollbackOrigin,
    SourceSpan,
    Step,
    StepKind,
)
from ddoc.runbooks.risk import tenant as tenant_rules
from tests.conftest import eventually
from tests.fakes.pagerduty import FakePagerDuty
from worker.main import ACTIVITY_THREADS, build_worker
from workflows.execution import RunbookExecutionWorkflow

HISTORIES = Path(__file__).parent / "histories"

RESPONDER = Actor("api_key:rita", "Rita", "api", ["responder"])
RESPONDER_2 = Actor("api_key:raj", "Raj", "api", ["responder"])
APPROVER = Actor("api_key:ana", "Ana", "api", ["approver"])
APPROVER_2 = Actor("api_key:ben", "Ben", "slack", ["approver"])
VIEWER = Actor("api_key:vic", "Vic", "api", ["viewer"])

ENVIRONMENT = "test"


def cmd(
    step_id: str,
    command: str,
    risk: str,
    *,
    rollback: str | None = None,
    suggested: bool = False,
    precheck: Check | None = None,
    verify: Check | None = None,
    parallel: str | None = None,
) -> Step:
    return Step(
        id=step_id,
        text=f"Run {command}",
        kind=StepKind.COMMAND,
        source=SourceSpan(1, 1),
        command=command,
        language="shell",
        risk=RiskClass(risk),
        risk_reason="set by the test",
        rollback=Rollback(
            command=rollback,
            text=f"undo {step_id}",
            origin=RollbackOrigin.SUGGESTED if suggested else RollbackOrigin.RUNBOOK,
        )
        if rollback
        else None,
        precheck=precheck,
        verify=verify,
        parallel=parallel,
    )


def manual(step_id: str, text: str) -> Step:
    return Step(id=step_id, text=text, kind=StepKind.MANUAL, source=SourceSpan(1, 1))


def decision(step_id: str, *branches: Branch) -> Step:
    return Step(
        id=step_id,
        text="Decide",
        kind=StepKind.DECISION,
        source=SourceSpan(1, 1),
        branches=list(branches),
    )


def alert(**labels: str) -> AlertContext:
    return AlertContext(
        title="DiskFull on web-1",
        source="alertmanager",
        dedup_key=f"dk-{uuid.uuid4().hex[:8]}",
        service="web",
        severity=labels.pop("severity", "critical"),
        labels=labels,
    )


def policy(**changes: Any) -> ExecutionPolicy:
    """Short, distinct deadlines so a test can tell which timer fired."""
    base = ExecutionPolicy(
        wait_seconds={"critical": 300, "default": 1800},
        escalation_levels=[EscalationLevel("L2 platform"), EscalationLevel("L3 SRE leads")],
        incident_timeout_seconds=None,
    )
    return dataclasses.replace(base, **changes)


@dataclass
class Run:
    handle: WorkflowHandle[Any, Any]
    execution_id: str

    async def state(self) -> ExecutionResult:
        result: ExecutionResult = await self.handle.query(RunbookExecutionWorkflow.state)
        return result

    async def step(self, step_id: str) -> StepState:
        return next(s for s in (await self.state()).steps if s.step_id == step_id)

    async def decide(self, step_id: str, kind: DecisionKind, actor: Actor, **fields: Any) -> None:
        await self.handle.signal(
            RunbookExecutionWorkflow.decide,
            Decision(step_id=step_id, decision=kind, actor=actor, **fields),
        )

    async def until(
        self, predicate: Callable[[ExecutionResult], bool], *, within: float = 30.0
    ) -> ExecutionResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last: ExecutionResult | None = None
        while loop.time() < deadline:
            last = await self.state()
            if predicate(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"state not reached within {within}s: {_brief(last)}")

    async def awaiting(self, step_id: str, *, within: float = 30.0) -> StepState:
        state = await self.until(
            lambda s: any(x.step_id == step_id and x.awaiting is not None for x in s.steps),
            within=within,
        )
        return next(s for s in state.steps if s.step_id == step_id)

    async def result(self) -> ExecutionResult:
        result: ExecutionResult = await self.handle.result()
        return result


def _brief(state: ExecutionResult | None) -> str:
    if state is None:
        return "no state"
    steps = ", ".join(
        f"{s.step_id}={s.status.value}"
        + (f"[awaits {s.awaiting.kind.value}]" if s.awaiting else "")
        for s in state.steps
    )
    return f"{state.status.value}: {steps}"


@dataclass
class Harness:
    client: Client
    engine: Engine
    tenant_id: str
    control_queue: str
    started: list[str] = field(default_factory=list)

    async def start(
        self,
        *steps: Step,
        mode: ExecutionMode = ExecutionMode.COPILOT,
        alert_context: AlertContext | None = None,
        started_by: str | None = None,
        execution_policy: ExecutionPolicy | None = None,
        values: dict[str, str] | None = None,
        variables: list[Any] | None = None,
        agent_offline_timeout_seconds: int = 60,
        execution_id: str | None = None,
        mitigated_when: Mitigation | None = None,
        breakpoints: dict[str, str] | None = None,
    ) -> Run:
        inp = self.create(
            *steps,
            mode=mode,
            alert_context=alert_context,
            started_by=started_by,
            execution_policy=execution_policy,
            values=values,
            variables=variables,
            agent_offline_timeout_seconds=agent_offline_timeout_seconds,
            execution_id=execution_id,
            mitigated_when=mitigated_when,
            breakpoints=breakpoints,
        )
        handle = await self.client.start_workflow(
            RunbookExecutionWorkflow.run,
            inp,
            id=inp.execution_id,
            task_queue=self.control_queue,
        )
        self.started.append(inp.execution_id)
        return Run(handle, inp.execution_id)

    def create(
        self,
        *steps: Step,
        mode: ExecutionMode = ExecutionMode.COPILOT,
        alert_context: AlertContext | None = None,
        started_by: str | None = None,
        execution_policy: ExecutionPolicy | None = None,
        values: dict[str, str] | None = None,
        variables: list[Any] | None = None,
        agent_offline_timeout_seconds: int = 60,
        execution_id: str | None = None,
        mitigated_when: Mitigation | None = None,
        breakpoints: dict[str, str] | None = None,
    ) -> ExecutionInput:
        """The runbook and the execution's rows, as intake creates them, not started yet."""
        parsed = ParsedRunbook(
            title="Test runbook",
            summary="",
            steps=list(steps),
            variables=variables or [],
            mitigated_when=mitigated_when,
        )
        execution_id = execution_id or f"ex-{uuid.uuid4().hex[:12]}"
        with Session(self.engine) as session:
            saved = runbooks.save(
                session,
                tenant_id=self.tenant_id,
                content=f"# test {uuid.uuid4().hex}",
                fmt="markdown",
                parsed=parsed,
                source_path=None,
                actor="test",
            )
            inp = executions.build_input(
                execution_id=execution_id,
                tenant_id=self.tenant_id,
                environment=ENVIRONMENT,
                runbook=saved.runbook,
                version=saved.version,
                mode=mode,
                alert=alert_context,
                incident_id=None,
                values=values,
                command_timeout_seconds=30,
                agent_offline_timeout_seconds=agent_offline_timeout_seconds,
                policy=execution_policy or policy(),
                rules=tenant_rules.risk_rules(session, self.tenant_id),
                started_by=started_by,
                breakpoints=breakpoints,
            )
            executions.create(session, inp=inp, started_by=started_by or "alert")
            session.commit()
        return inp

    def trail(self, execution_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            return executions.view(session, tenant_id=self.tenant_id, execution_id=execution_id)

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            return executions.events(session, tenant_id=self.tenant_id, execution_id=execution_id)


@asynccontextmanager
async def running(
    client: Client,
    engine: Engine,
    *,
    pagerduty_url: str,
    agent: bool = True,
    control: bool = True,
    commands: CommandActivities | None = None,
) -> AsyncIterator[Harness]:
    """A control-plane worker and an agent for one test's tenant (either can be left out, to
    run it as a separate process)."""
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        session.commit()
    control_queue = f"ddoc.control.{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        control_worker = build_worker(
            client,
            engine,
            task_queue=control_queue,
            executor=executor,
            pager=PagerDutyEvents(url=pagerduty_url),
        )
        workers: list[Worker] = [control_worker] if control else []
        if agent:
            workers.append(
                build_agent(client, tenant_id=tenant_id, environment=ENVIRONMENT, commands=commands)
            )
        async with _all(workers):
            yield Harness(client, engine, tenant_id, control_queue)


@asynccontextmanager
async def _all(workers: list[Worker]) -> AsyncIterator[None]:
    if not workers:
        yield
        return
    async with workers[0], _all(workers[1:]):
        yield


async def record_histories(harness: Harness, test_name: str) -> None:
    """`DDOC_RECORD_HISTORIES=<release> pytest tests/test_copilot_engine.py` records the
    histories tests/test_replay.py replays (only those of finished executions) into
    tests/histories/<release>/. Earlier releases' histories are kept, never re-recorded: a
    release name that already has a history fails."""
    release = os.environ["DDOC_RECORD_HISTORIES"]
    assert re.fullmatch(r"[0-9]+-[a-z0-9-]+", release), "a release name like 3-short-summary"
    name = re.sub(r"[^a-z0-9]+", "_", test_name.removeprefix("test_").lower()).strip("_")
    for index, execution_id in enumerate(harness.started):
        handle = harness.client.get_workflow_handle(execution_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            continue
        history = await handle.fetch_history()
        path = HISTORIES / release / f"{name}_{index}.json"
        assert not path.exists(), f"{path} is an earlier recording: record under a new release"
        path.parent.mkdir(exist_ok=True)
        path.write_text(history.to_json())


async def paged(pagerduty: FakePagerDuty, count: int) -> list[dict[str, Any]]:
    """The pages received, once there are `count` (polled: the worker runs in this loop)."""

    async def received() -> list[dict[str, Any]] | None:
        return list(pagerduty.events) if len(pagerduty.events) >= count else None

    found = await eventually(received)
    assert found is not None
    return found


def set_levels(harness: Harness, *levels: tuple[str, str]) -> None:
    with Session(harness.engine) as session:
        tenancy.update_settings(
            session,
            tenant_id=harness.tenant_id,
            changes={
                "execution_policy": {
                    "escalation_levels": [
                        {"name": name, "pagerduty_routing_key": key} for name, key in levels
                    ]
                }
            },
            actor="test",
        )
        session.commit()
