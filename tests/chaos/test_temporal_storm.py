"""The Temporal dev server SIGKILLed during a storm of alerts through the API, restarted on the
same --db-filename: deliveries whose execution could not start are refused (5xx) with the alert
and its execution stored; the sender's retry starts it (same workflow id), so every alert ends
with exactly one incident and one execution, each waiting at its approval."""

from __future__ import annotations

import asyncio
import os
import uuid

from sqlalchemy import Engine, text

from tests.chaos import invariants, storm
from tests.chaos.conftest import Chaos, fake_kubectl, process_env
from tests.chaos.processes import Child, TemporalServer, ddoc, wait_healthy
from tests.conftest import Credentials, eventually, free_port

ALERTS = 16
SENDERS = 4


def count(engine: Engine, sql: str, tenant_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"tenant": tenant_id}).scalar_one())


async def test_temporal_killed_mid_storm_and_restarted(
    chaos: Chaos,
    temporal_server: TemporalServer,
    engine: Engine,
    app_database_url: str,
    credentials: Credentials,
    tenant_id: str,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        database_url=app_database_url,
        temporal=temporal_server,
        tenant_id=tenant_id,
        control_queue=f"ddoc.control.{uuid.uuid4().hex[:8]}",
    )
    api = ddoc("api", {**env, "DDOC_API_PORT": str(port)}, chaos.dir / "api.log")
    worker = ddoc("worker", env, chaos.dir / "worker.log")
    path = f"{fake_kubectl(chaos)}:{os.environ.get('PATH', '')}"
    agent = ddoc("agent", {**env, "PATH": path}, chaos.dir / "agent.log")
    children: list[Child] = [api, worker, agent]
    kill_after = chaos.randint("alerts answered 2xx when Temporal is killed", 1, ALERTS - 4)
    outage = chaos.uniform("seconds before Temporal is restarted", 1.0, 5.0)
    fingerprints = [f"{i:016x}" for i in range(1, ALERTS + 1)]

    async def kill(answered: int) -> None:
        temporal_server.kill()
        chaos.note(f"Temporal killed after {answered} alerts answered 2xx")

        async def restart() -> None:
            await asyncio.sleep(outage)
            await asyncio.to_thread(temporal_server.start)
            chaos.note("Temporal restarted on the same --db-filename")

        restarting.append(asyncio.create_task(restart()))

    restarting: list[asyncio.Task[None]] = []
    try:
        for child in children:
            child.start()
        await asyncio.to_thread(wait_healthy, api, base)
        await storm.add_runbook(base, credentials.api_key)
        result = await storm.deliver(
            base,
            credentials.webhook_token,
            fingerprints,
            senders=SENDERS,
            kill_after=kill_after,
            kill=kill,
        )
        await asyncio.gather(*restarting)
        assert sorted(result.accepted) == fingerprints
        chaos.note(f"refused deliveries, retried: {result.refused}")

        waiting_sql = (
            "SELECT count(*) FROM execution_steps s JOIN executions e ON e.id = s.execution_id"
            " WHERE e.tenant_id = :tenant AND s.step_id = 's2' AND s.status = 'awaiting_approval'"
        )

        async def all_waiting() -> bool:
            return await asyncio.to_thread(count, engine, waiting_sql, tenant_id) == ALERTS

        await eventually(all_waiting, within=90)
        await invariants.settled(
            engine, tenant_id, chaos.sentinels, fingerprints, context=chaos.describe()
        )
        executions = "SELECT count(*) FROM executions WHERE tenant_id = :tenant"
        assert count(engine, executions, tenant_id) == ALERTS, chaos.describe()
        for child in children:
            assert child.alive and child.starts == 1, f"{child.name} exited:\n{child.tail()}"
    except BaseException:
        for child in [*children, temporal_server]:
            chaos.note(f"{child.name} log tail:\n{child.tail()}")
        raise
    finally:
        for child in children:
            child.stop()
