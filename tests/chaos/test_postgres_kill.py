"""PostgreSQL SIGKILLed (the postmaster and every backend, as when its container dies) during a
storm of webhook deliveries, while executions write their trail, then restarted on the same data
directory: every alert answered 2xx is stored, a sender retrying what failed gets each alert in
once, and every execution reaches its approval wait with its trail written.

The scenario's PostgreSQL keeps the default durability (fsync, synchronous commit): a commit
answered before the kill must survive it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from ddoc.cli.up import API_DB_ROLE
from ddoc.platform import db, tenancy
from ddoc.platform.embedded import EmbeddedPostgres
from tests.chaos import invariants, storm
from tests.chaos.conftest import Chaos, fake_kubectl, process_env
from tests.chaos.processes import Child, TemporalServer, ddoc, kill_postgres, wait_healthy
from tests.conftest import eventually, free_port

ALERTS = 16
SENDERS = 4


@pytest.fixture
def chaos_postgres(chaos: Chaos) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(chaos.dir / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def count(engine: Engine, sql: str, tenant_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"tenant": tenant_id}).scalar_one())


async def test_postgres_killed_mid_intake_and_mid_trail(
    chaos: Chaos,
    chaos_postgres: EmbeddedPostgres,
    temporal_server: TemporalServer,
) -> None:
    pg = chaos_postgres
    pg.ensure_database("ddoc")
    owner = db.make_engine(pg.url("ddoc"), pool_size=2)
    db.migrate(owner)
    pg.ensure_login(API_DB_ROLE, member_of=db.APP_ROLE)
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    api_key, token = f"ddoc_chaos_{uuid.uuid4().hex}", f"ddwh_chaos_{uuid.uuid4().hex}"
    tenancy.bootstrap(owner, tenant_id=tenant_id, api_key=api_key, webhook_token=token)
    app_url = pg.url("ddoc", user=API_DB_ROLE)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        database_url=app_url,
        temporal=temporal_server,
        tenant_id=tenant_id,
        control_queue=f"ddoc.control.{uuid.uuid4().hex[:8]}",
    )
    api = ddoc("api", {**env, "DDOC_API_PORT": str(port)}, chaos.dir / "api.log")
    worker = ddoc("worker", env, chaos.dir / "worker.log")
    path = f"{fake_kubectl(chaos)}:{os.environ.get('PATH', '')}"
    agent = ddoc("agent", {**env, "PATH": path}, chaos.dir / "agent.log")
    children: list[Child] = [api, worker, agent]
    kill_after = chaos.randint("alerts answered 2xx when PostgreSQL is killed", 2, ALERTS - 4)
    outage = chaos.uniform("seconds before PostgreSQL is restarted", 1.0, 4.0)
    fingerprints = [f"{i:016x}" for i in range(1, ALERTS + 1)]
    exits: list[str] = []

    async def supervise() -> None:
        """Restart a `ddoc` process that exited, as compose's `restart: unless-stopped` does."""
        while True:
            for child in children:
                if child.proc is not None and not child.alive:
                    exits.append(f"{child.name} exited with code {child.proc.returncode}")
                    chaos.note(f"{exits[-1]}; restarted:\n{child.tail(6)}")
                    child.start()
            await asyncio.sleep(0.5)

    supervisor: asyncio.Task[None] | None = None
    try:
        for child in children:
            child.start()
        supervisor = asyncio.create_task(supervise())
        await asyncio.to_thread(wait_healthy, api, base)
        await storm.add_runbook(base, api_key)

        async def kill_and_restart(answered: int) -> None:
            """PostgreSQL dies; the other senders go on (and are refused) while it is down."""
            victims = await asyncio.to_thread(kill_postgres, pg)
            chaos.note(f"PostgreSQL killed ({victims} processes) after {answered} alerts 2xx")
            await asyncio.sleep(outage)
            await asyncio.to_thread(pg.start)
            chaos.note("PostgreSQL restarted")

        delivered = await storm.deliver(
            base,
            token,
            fingerprints,
            senders=SENDERS,
            kill_after=kill_after,
            kill=kill_and_restart,
        )
        assert sorted(delivered.accepted) == fingerprints  # each once it was answered 2xx
        chaos.note(f"refused deliveries, retried: {delivered.refused}")
        # A delivery the database could not take is a 503 to retry, never a 500.
        assert [r for r in delivered.refused if r.endswith(": 500")] == [], delivered.refused

        waiting_sql = (
            "SELECT count(*) FROM execution_steps s JOIN executions e ON e.id = s.execution_id"
            " WHERE e.tenant_id = :tenant AND s.step_id = 's2' AND s.status = 'awaiting_approval'"
        )

        async def all_waiting() -> bool:
            return await asyncio.to_thread(count, owner, waiting_sql, tenant_id) == ALERTS

        await eventually(all_waiting, within=90)
        await invariants.settled(
            owner, tenant_id, chaos.sentinels, fingerprints, context=chaos.describe()
        )
        assert count(owner, "SELECT count(*) FROM executions WHERE tenant_id = :tenant",
                     tenant_id) == ALERTS  # fmt: skip
        assert invariants.sentinel_runs(chaos.sentinels) == {}  # no restart approved
        # No process gives up on a restarting database (the worker's Slack notifier listens
        # again, the API answers 503 meanwhile).
        assert exits == [], f"processes exited while PostgreSQL restarted: {exits}"
    except BaseException:
        for child in children:
            chaos.note(f"{child.name} log tail:\n{child.tail()}")
        raise
    finally:
        if supervisor is not None:
            supervisor.cancel()
        for child in children:
            child.stop()
        owner.dispose()
