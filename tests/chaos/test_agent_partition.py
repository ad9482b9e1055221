"""The agent cut off from Temporal for 60 s (a TCP proxy between them drops all traffic) in the
middle of a green and of a yellow step, then reconnected.

- Yellow (a state change, run at most once): the server hears no heartbeat, so the step's
  outcome is unknown and a human is asked; it is never run again by itself.
- Green (read-only): retried by itself once the agent is back; running it twice is allowed.
The execution then finishes once a human answered what it asks."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from ddoc.contracts.execution import DecisionKind, ExecutionStatus, StepStatus
from tests.chaos import invariants
from tests.chaos.conftest import Chaos, harness_env
from tests.chaos.processes import Child, TemporalServer, ddoc
from tests.chaos.proxy import PartitionProxy
from tests.chaos.responder import drive
from tests.engine_harness import ENVIRONMENT, RESPONDER, cmd, running
from tests.fakes.pagerduty import FakePagerDuty

PARTITION_SECONDS = 60.0
RUNS_FOR = 4  # seconds each step's command runs: the partition starts within them


@pytest.mark.parametrize("risk", ["green", "yellow"])
async def test_agent_partitioned_from_temporal_mid_step(
    risk: str,
    chaos: Chaos,
    temporal_server: TemporalServer,
    engine: Engine,
    app_database_url: str,
    pagerduty: FakePagerDuty,
) -> None:
    client = await Client.connect(temporal_server.address)
    s = chaos.sentinels
    # A yellow command's file is once-only (the invariant counts its lines); a green one's not.
    marker = s / ("once.s1" if risk == "yellow" else "runs.s1")
    steps = [
        cmd("s1", f"echo s1 >> {marker}; sleep {RUNS_FOR}", risk),
        cmd("s2", f"echo s2 >> {s}/once.s2", "yellow"),
    ]
    delay = chaos.uniform("seconds into s1 when the partition starts", 0.0, RUNS_FOR - 1.0)
    proxy = PartitionProxy("127.0.0.1", temporal_server.port)
    proxy_port = await proxy.start()
    children: list[Child] = []
    async with running(
        client, engine, pagerduty_url=pagerduty.url, control=False, agent=False
    ) as harness:
        env = harness_env(harness, app_database_url, temporal_server, pagerduty.url, ENVIRONMENT)
        worker = ddoc("worker", env, chaos.dir / "worker.log")
        agent_env = {**env, "DDOC_TEMPORAL_ADDRESS": f"127.0.0.1:{proxy_port}"}
        agent = ddoc("agent", agent_env, chaos.dir / "agent.log")
        children = [worker, agent]
        try:
            worker.start()
            agent.start()
            run = await harness.start(*steps)
            if risk == "yellow":
                await run.awaiting("s1", within=90)
                await run.decide("s1", DecisionKind.APPROVE, RESPONDER)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while not marker.exists():
                assert loop.time() < deadline, "s1 never started on the agent"
                await asyncio.sleep(0.01)
            await asyncio.sleep(delay)
            proxy.partition()
            chaos.note(f"agent partitioned from Temporal for {PARTITION_SECONDS:.0f} s")
            await asyncio.sleep(PARTITION_SECONDS)
            proxy.heal()
            chaos.note(f"partition healed; {proxy.dropped} bytes dropped")
            assert agent.alive, f"the agent exited during the partition:\n{agent.tail()}"
            result = await drive(run, chaos, within=90)
        except BaseException:
            for child in children:
                chaos.note(f"{child.name} log tail:\n{child.tail()}")
            raise
        finally:
            for child in children:
                child.stop()
            await proxy.close()
        assert result.status == ExecutionStatus.SUCCEEDED, chaos.describe()
        first = result.steps[0]
        assert first.status == StepStatus.SUCCEEDED, chaos.describe()
        asked = [n for n in chaos.notes if n.startswith("s1 awaited outcome")]
        chaos.note(f"s1's command ran {len(marker.read_text().splitlines())} time(s)")
        if risk == "yellow":
            assert asked and first.detail == "marked done by Rita", chaos.describe()
            assert len(marker.read_text().splitlines()) == 1
        else:
            assert not asked, chaos.describe()
            assert len(marker.read_text().splitlines()) >= 1
        await invariants.settled(
            engine, harness.tenant_id, chaos.sentinels, context=chaos.describe()
        )
        assert invariants.sentinel_runs(s).get("once.s2") == 1, chaos.describe()
