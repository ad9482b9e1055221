"""The Temporal dev server SIGKILLed mid-execution, then restarted on the same --db-filename:
the execution goes on where it was (a human approves what waits), and no command ran twice.

The kill lands at a seeded moment after the first yellow step was approved: while its command
runs on the agent, while its result is reported, or while the next step waits for approval. If
the agent could not report a result while the server was down, the step's outcome is unknown
and a human is asked (the engine never reruns a yellow step by itself): the scenario then says
it was done, as an operator who checked would."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from temporalio.client import Client

from ddoc.contracts.execution import DecisionKind, ExecutionStatus
from tests.chaos import invariants
from tests.chaos.conftest import Chaos, harness_env
from tests.chaos.processes import Child, TemporalServer, ddoc
from tests.chaos.responder import drive
from tests.engine_harness import ENVIRONMENT, RESPONDER, cmd, running
from tests.fakes.pagerduty import FakePagerDuty


async def test_temporal_killed_mid_execution_and_restarted(
    chaos: Chaos,
    temporal_server: TemporalServer,
    engine: Engine,
    app_database_url: str,
    pagerduty: FakePagerDuty,
) -> None:
    client = await Client.connect(temporal_server.address)
    s = chaos.sentinels
    steps = [
        cmd("s1", f"echo s1 >> {s}/green.s1", "green"),
        cmd("s2", f"sleep 0.5; echo s2 >> {s}/once.s2", "yellow"),
        cmd("s3", f"echo s3 >> {s}/once.s3", "yellow"),
        cmd("s4", f"echo s4 >> {s}/green.s4", "green"),
    ]
    delay = chaos.uniform("seconds after approving s2 before the kill", 0.0, 2.0)
    outage = chaos.uniform("seconds before Temporal is restarted", 1.0, 5.0)
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
            run = await harness.start(*steps)
            await run.awaiting("s2", within=90)
            await run.decide("s2", DecisionKind.APPROVE, RESPONDER)
            await asyncio.sleep(delay)
            temporal_server.kill()
            chaos.note(
                "Temporal killed; sentinels: " + ", ".join(sorted(p.name for p in s.iterdir()))
            )
            await asyncio.sleep(outage)
            temporal_server.start()
            chaos.note("Temporal restarted on the same --db-filename")
            result = await drive(run, chaos, within=100)
            for child in children:
                assert child.alive, f"{child.name} exited with the server down:\n{child.tail()}"
        except BaseException:
            for child in [*children, temporal_server]:
                chaos.note(f"{child.name} log tail:\n{child.tail()}")
            raise
        finally:
            for child in children:
                child.stop()
        assert result.status == ExecutionStatus.SUCCEEDED, chaos.describe()
        await invariants.settled(
            engine, harness.tenant_id, chaos.sentinels, context=chaos.describe()
        )
        runs = invariants.sentinel_runs(chaos.sentinels)
        assert runs == {"once.s2": 1, "once.s3": 1}, chaos.describe()
        assert harness.trail(run.execution_id)["status"] == "succeeded", chaos.describe()
