"""Process crashes on the real dev server: the control-plane worker and the agent are separate
processes here, killed with SIGKILL mid-execution.

- The worker: a restarted worker resumes the execution where it was (Temporal replays it);
  nothing that completed runs again.
- The agent: a yellow step whose agent dies mid-command is never run again by itself; the
  human is told the outcome is unknown and decides.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts.execution import AwaitKind, DecisionKind, ExecutionStatus, StepStatus
from tests.engine_harness import ENVIRONMENT, RESPONDER, Harness, cmd, policy, running
from tests.fakes.pagerduty import FakePagerDuty

D = DecisionKind


@pytest.fixture
def pagerduty() -> AsyncIterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


class Process:
    """`ddoc <role>` as a child process, killable with SIGKILL."""

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self._role, self._env, self._log = role, env, log
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self._log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ddoc.cli.main",
                self._role,
                env={**os.environ, **self._env},
                stdout=out,
                stderr=out,
            )

    async def kill(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        await self._proc.wait()

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), 20)
            except TimeoutError:
                await self.kill()


def process_env(env: WorkflowEnvironment, database_url: str, harness: Harness) -> dict[str, str]:
    config = env.client.service_client.config
    return {
        "DDOC_DATABASE_URL": database_url,
        "DDOC_TEMPORAL_ADDRESS": config.target_host,
        "DDOC_TEMPORAL_NAMESPACE": env.client.namespace,
        "DDOC_CONTROL_TASK_QUEUE": harness.control_queue,
        "DDOC_TENANT": harness.tenant_id,
        "DDOC_ENVIRONMENT": ENVIRONMENT,
        "DDOC_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }


async def test_a_killed_worker_is_restarted_and_the_execution_resumes(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    app_database_url: str,
    pagerduty: FakePagerDuty,
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    async with running(
        temporal_env.client, engine, pagerduty_url=pagerduty.url, control=False
    ) as harness:
        env = process_env(temporal_env, app_database_url, harness)
        worker = Process("worker", env, tmp_path / "w")
        await worker.start()
        try:
            run = await harness.start(
                cmd("s1", f"echo s1 >> {log}", "green"),
                cmd("s2", f"echo s2 >> {log}", "yellow"),
                cmd("s3", f"echo s3 >> {log}", "green"),
            )
            await run.awaiting("s2", within=60)
            await worker.kill()  # mid-execution: s1 done, s2 waiting for a human
            await run.decide("s2", D.APPROVE, RESPONDER)  # the server keeps the signal
            await asyncio.sleep(1)
            assert log.read_text().split() == ["s1"]  # no worker: nothing moved
            await worker.start()
            result = await asyncio.wait_for(run.result(), 60)
        finally:
            await worker.stop()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert log.read_text().split() == ["s1", "s2", "s3"]  # resumed, nothing ran twice
    assert harness.trail(run.execution_id)["status"] == "succeeded"


async def test_a_killed_agent_leaves_an_unknown_outcome_for_a_human(
    temporal_env: WorkflowEnvironment,
    engine: Engine,
    app_database_url: str,
    pagerduty: FakePagerDuty,
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    marker = f"ddoc-crash-{uuid.uuid4().hex[:8]}"
    async with running(
        temporal_env.client, engine, pagerduty_url=pagerduty.url, agent=False
    ) as harness:
        env = process_env(temporal_env, app_database_url, harness)
        agent = Process("agent", env, tmp_path / "a")
        await agent.start()
        try:
            run = await harness.start(
                cmd("s1", f"echo start >> {log}; sleep 30 # {marker}", "yellow"),
                cmd("s2", "echo after", "green"),
                execution_policy=policy(heartbeat_timeout_seconds=3),
            )
            await run.awaiting("s1", within=60)
            await run.decide("s1", D.APPROVE, RESPONDER)
            for _ in range(600):
                if log.exists():
                    break
                await asyncio.sleep(0.05)
            await agent.kill()  # mid-command
            state = await run.until(lambda s: s.steps[0].status == StepStatus.UNKNOWN, within=30)
            step = state.steps[0]
            assert step.awaiting is not None and step.awaiting.kind == AwaitKind.OUTCOME
            assert step.awaiting.allowed == ["retry", "done", "skip", "rollback", "abort"]
            assert "the agent stopped answering" in (step.detail or "")
            # A new agent comes up: the step is still not run again by itself.
            await agent.start()
            await asyncio.sleep(3)
            assert log.read_text().split() == ["start"]
            assert (await run.state()).steps[0].status == StepStatus.UNKNOWN
            await run.decide("s1", D.DONE, RESPONDER, comment="checked: it restarted")
            result = await asyncio.wait_for(run.result(), 60)
        finally:
            await agent.stop()
            # The killed agent's command was orphaned: end it.
            pkill = await asyncio.create_subprocess_exec("pkill", "-f", marker)
            await pkill.wait()
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.steps[0].status == StepStatus.SUCCEEDED
    assert result.steps[0].detail == "marked done by Rita"
    assert log.read_text().split() == ["start"]
