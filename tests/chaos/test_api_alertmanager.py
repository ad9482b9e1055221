"""The API SIGKILLed while a real Alertmanager (Debian's prometheus-alertmanager) delivers a group
of alerts, then restarted: Alertmanager retries the group, and every alert ends up in exactly one
incident with one execution; the yellow restart of each runs once, after its approval."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, text

from tests.chaos import invariants
from tests.chaos.conftest import Chaos, fake_kubectl, process_env
from tests.chaos.processes import Child, TemporalServer, ddoc, wait_healthy
from tests.conftest import Credentials, eventually, free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager not installed")

ALERTS = 12
RUNBOOK = """---
title: Chaos pod down
alerts: [ChaosPodDown]
---
# Chaos pod down

A pod of the chaos namespace is down.

## Steps

1. Say which pod:

   ```bash
   echo "pod=$POD"
   ```

2. Restart it:

   ```bash
   kubectl -n $NAMESPACE rollout restart deployment/$POD
   ```
"""


def start_alertmanager(
    workdir: Path, webhook: str, token: str
) -> tuple[subprocess.Popen[bytes], str]:
    workdir.mkdir()
    config = {
        "route": {
            "receiver": "ddoc",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "ddoc",
                "webhook_configs": [
                    {
                        "url": webhook,
                        "max_alerts": 1000,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert BINARY is not None
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "alertmanager.log").open("wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


def count(engine: Engine, sql: str, tenant_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"tenant": tenant_id}).scalar_one())


async def test_api_killed_while_alertmanager_delivers_a_group(
    chaos: Chaos,
    temporal_server: TemporalServer,
    engine: Engine,
    app_database_url: str,
    credentials: Credentials,
    tenant_id: str,
    control_queue: str,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(
        database_url=app_database_url,
        temporal=temporal_server,
        tenant_id=tenant_id,
        control_queue=control_queue,
    )
    api = ddoc("api", {**env, "DDOC_API_PORT": str(port)}, chaos.dir / "api.log")
    worker = ddoc("worker", env, chaos.dir / "worker.log")
    path = f"{fake_kubectl(chaos)}:{os.environ.get('PATH', '')}"
    agent = ddoc("agent", {**env, "PATH": path}, chaos.dir / "agent.log")
    children: list[Child] = [api, worker, agent]
    am: subprocess.Popen[bytes] | None = None
    admin = {"Authorization": f"Bearer {credentials.api_key}"}
    try:
        for child in children:
            child.start()
        await asyncio.to_thread(wait_healthy, api, base)
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as http:
            added = await http.post(
                "/runbooks", json={"content": RUNBOOK, "source_path": "chaos-pod-down.md"}
            )
            assert added.status_code == 201, added.text
            most = 10_000  # every alert here starts the one runbook: lift the blast radius
            lifted = await http.patch(
                "/settings",
                json={
                    "blast_radius": {
                        "max_concurrent_per_runbook": most,
                        "max_concurrent_per_service": most,
                        "max_runs_per_hour": {"copilot": most, "autopilot": most},
                    }
                },
            )
            assert lifted.status_code == 200, lifted.text

        kill_after = chaos.randint("alerts stored when the API is killed", 1, ALERTS - 1)
        outage = chaos.uniform("seconds before the API is restarted", 0.5, 4.0)
        am, am_url = start_alertmanager(
            chaos.dir / "alertmanager", f"{base}/webhooks/alertmanager", credentials.webhook_token
        )
        async with httpx.AsyncClient(base_url=am_url, timeout=10) as am_http:

            async def ready() -> bool:
                try:
                    return (await am_http.get("/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, within=30)
            group = [
                {
                    "labels": {
                        "alertname": "ChaosPodDown",
                        "namespace": "chaos",
                        "pod": f"pod-{i}",
                    },
                    "annotations": {"summary": f"pod-{i} is down"},
                }
                for i in range(ALERTS)
            ]
            assert (await am_http.post("/api/v2/alerts", json=group)).status_code == 200
            stored = "SELECT count(*) FROM alerts WHERE tenant_id = :tenant"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while count(engine, stored, tenant_id) < kill_after:
                assert loop.time() < deadline, "Alertmanager delivered nothing within 60 s"
                await asyncio.sleep(0.005)
            api.kill()
            chaos.note(f"API killed with {count(engine, stored, tenant_id)} alert(s) stored")
            await asyncio.sleep(outage)
            api.start()
            await asyncio.to_thread(wait_healthy, api, base)
            fingerprints = [a["fingerprint"] for a in (await am_http.get("/api/v2/alerts")).json()]
        assert len(fingerprints) == ALERTS

        # Alertmanager retries; every alert gets its incident and execution, whose restart waits.
        waiting_sql = (
            "SELECT count(*) FROM execution_steps s JOIN executions e ON e.id = s.execution_id"
            " WHERE e.tenant_id = :tenant AND s.step_id = 's2' AND s.status = 'awaiting_approval'"
        )

        async def all_waiting() -> bool:
            return await asyncio.to_thread(count, engine, waiting_sql, tenant_id) == ALERTS

        await eventually(all_waiting, within=90)
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as http:
            incidents: list[dict[str, Any]] = (await http.get("/incidents?limit=100")).json()
            assert len(incidents) == ALERTS, incidents
            assert len({i["execution_id"] for i in incidents}) == ALERTS
            for incident in incidents:
                decided = await http.post(
                    f"/executions/{incident['execution_id']}/decisions",
                    json={"step_id": "s2", "decision": "approve"},
                )
                assert decided.status_code == 202, decided.text
        done_sql = (
            "SELECT count(*) FROM executions WHERE tenant_id = :tenant AND status = 'succeeded'"
        )

        async def all_done() -> bool:
            return await asyncio.to_thread(count, engine, done_sql, tenant_id) == ALERTS

        await eventually(all_done, within=90)
        await invariants.settled(
            engine, tenant_id, chaos.sentinels, fingerprints, context=chaos.describe()
        )
        runs = invariants.sentinel_runs(chaos.sentinels)
        assert runs == {f"once.pod-{i}": 1 for i in range(ALERTS)}, chaos.describe()
    except BaseException:
        for child in children:
            chaos.note(f"{child.name} log tail:\n{child.tail()}")
        raise
    finally:
        if am is not None:
            am.terminate()
            am.wait(10)
        for child in children:
            child.stop()
