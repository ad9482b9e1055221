"""The control-plane worker SIGKILLed while an autopilot execution rolls back (its undo steps
run on the agent, one after another), then restarted: Temporal replays the saga where it was,
every undo ran exactly once, and the execution ends failed (a step failed, its changes undone)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Engine

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus, StepStatus
from tests.chaos import invariants
from tests.chaos.conftest import Chaos, harness_env
from tests.chaos.processes import Child, TemporalServer, ddoc
from tests.engine_harness import ENVIRONMENT, cmd, running
from tests.fakes.pagerduty import FakePagerDuty

CHANGES = 3


async def _until(probe_path: list[Path], within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not all(p.exists() for p in probe_path):
        assert loop.time() < deadline, f"not all of {probe_path} appeared within {within}s"
        await asyncio.sleep(0.01)


async def test_worker_killed_during_a_compensation(
    chaos: Chaos,
    temporal_server: TemporalServer,
    engine: Engine,
    app_database_url: str,
    pagerduty: FakePagerDuty,
) -> None:
    from temporalio.client import Client

    client = await Client.connect(temporal_server.address)
    s = chaos.sentinels
    steps = [
        cmd(
            f"s{i}",
            f"echo change >> {s}/once.s{i}",
            "yellow",
            rollback=f"echo undo >> {s}/once.s{i}-undo; sleep 0.5",
        )
        for i in range(1, CHANGES + 1)
    ]
    failing = cmd(f"s{CHANGES + 1}", f"echo fail >> {s}/once.fail; exit 1", "yellow")
    undone = chaos.randint("undo steps finished when the worker is killed", 1, CHANGES)
    delay = chaos.uniform("then seconds before the kill", 0.0, 0.45)
    outage = chaos.uniform("seconds before the worker is restarted", 0.5, 3.0)
    children: list[Child] = []
    async with running(
        client, engine, pagerduty_url=pagerduty.url, control=False, agent=False
    ) as harness:
        env = harness_env(harness, app_database_url, temporal_server, pagerduty.url, ENVIRONMENT)
        worker = ddoc("worker", env, chaos.dir / "worker.log")
        agent = ddoc("agent", env, chaos.dir / "agent.log")
        children = [worker, agent]
        try:
            worker.start()
            agent.start()
            run = await harness.start(*steps, failing, mode=ExecutionMode.AUTOPILOT)
            # Undo runs newest first (s3, s2, s1), each for 0.5 s: the kill lands while undo
            # number `undone` runs, or just after it finished.
            order = [s / f"once.s{i}-undo" for i in range(CHANGES, 0, -1)]
            await _until(order[:undone], within=90)
            await asyncio.sleep(delay)
            worker.kill()
            chaos.note(
                "worker killed with undo files " + ", ".join(p.name for p in order if p.exists())
            )
            await asyncio.sleep(outage)
            worker.start()
            result = await asyncio.wait_for(run.result(), 90)
        except BaseException:
            for child in children:
                chaos.note(f"{child.name} log tail:\n{child.tail()}")
            raise
        finally:
            for child in children:
                child.stop()
        assert result.status == ExecutionStatus.FAILED, chaos.describe()
        undos = [x for x in result.steps if x.undoes]
        assert [x.undoes for x in undos] == ["s3", "s2", "s1"], chaos.describe()
        assert all(x.status == StepStatus.SUCCEEDED for x in undos), chaos.describe()
        await invariants.settled(
            engine, harness.tenant_id, chaos.sentinels, context=chaos.describe()
        )
        runs = invariants.sentinel_runs(chaos.sentinels)
        expected = {f"once.s{i}{x}": 1 for i in range(1, CHANGES + 1) for x in ("", "-undo")}
        assert runs == {**expected, "once.fail": 1}, chaos.describe()
        assert harness.trail(run.execution_id)["status"] == "failed", chaos.describe()
