"""Every process the execution needs SIGKILLed, one after another in a seeded order, while a
yellow step waits for its approval: the wait survives each kill (still waiting, with its reason,
in the workflow and in the database), the approval is given at a seeded point (possibly while a
process is down, and refused while Temporal is), and the step then runs exactly once."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from ddoc.contracts.execution import AwaitKind, DecisionKind, ExecutionStatus
from tests.chaos import invariants
from tests.chaos.conftest import Chaos, harness_env
from tests.chaos.processes import Child, TemporalServer, ddoc
from tests.chaos.responder import drive, state
from tests.engine_harness import ENVIRONMENT, RESPONDER, cmd, running
from tests.fakes.pagerduty import FakePagerDuty


async def test_each_process_killed_while_a_step_waits_for_approval(
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
        cmd("s2", f"echo s2 >> {s}/once.s2", "yellow"),
        cmd("s3", f"echo s3 >> {s}/green.s3", "green"),
    ]
    children: list[Child] = []
    async with running(
        client, engine, pagerduty_url=pagerduty.url, control=False, agent=False
    ) as harness:
        env = harness_env(harness, app_database_url, temporal_server, pagerduty.url, ENVIRONMENT)
        worker = ddoc("worker", env, chaos.dir / "worker.log")
        agent = ddoc("agent", env, chaos.dir / "agent.log")
        children = [worker, agent]
        victims: list[Child] = [worker, agent, temporal_server]
        chaos.rng.shuffle(victims)
        chaos.note("kill order: " + ", ".join(v.name for v in victims))
        approve_at = chaos.randint("victims killed before the approval is given", 0, 3)
        approved = False
        try:
            worker.start()
            agent.start()
            run = await harness.start(*steps)
            await run.awaiting("s2", within=90)
            for i, victim in enumerate(victims):
                victim.kill()
                outage = chaos.uniform(f"seconds {victim.name} stays down", 0.5, 4.0)
                await asyncio.sleep(outage)
                if i + 1 == approve_at:
                    try:
                        decided = run.decide("s2", DecisionKind.APPROVE, RESPONDER)
                        await asyncio.wait_for(decided, 10)
                        approved = True
                        chaos.note(f"s2 approved while {victim.name} is down")
                    except (RPCError, TimeoutError) as e:
                        chaos.note(f"approval refused while {victim.name} is down: {e}")
                victim.start()
                chaos.note(f"{victim.name} restarted")
            # Nothing ran without the approval.
            assert approved or not (s / "once.s2").exists(), chaos.describe()
            if not approved:
                # Still waiting after every kill, with its reason, in the workflow and the trail.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                current = await state(run)
                while current is None and loop.time() < deadline:
                    await asyncio.sleep(0.2)
                    current = await state(run)
                assert current is not None, f"no state within 60 s; {chaos.describe()}"
                waiting = {x.step_id: x.awaiting for x in current.steps if x.awaiting}
                assert waiting.get("s2") is not None, chaos.describe()
                assert waiting["s2"].kind == AwaitKind.APPROVAL, chaos.describe()
                await invariants.settled(engine, harness.tenant_id, s, context=chaos.describe())
            result = await drive(run, chaos, within=100)
            for child in children:
                assert child.alive, f"{child.name} exited:\n{child.tail()}"
        except BaseException:
            for child in [*children, temporal_server]:
                chaos.note(f"{child.name} log tail:\n{child.tail()}")
            raise
        finally:
            for child in children:
                child.stop()
        assert result.status == ExecutionStatus.SUCCEEDED, chaos.describe()
        await invariants.settled(engine, harness.tenant_id, s, context=chaos.describe())
        assert invariants.sentinel_runs(s) == {"once.s2": 1}, chaos.describe()
        assert (s / "green.s3").exists(), chaos.describe()
        trail = harness.trail(run.execution_id)
        assert trail["status"] == "succeeded", chaos.describe()
