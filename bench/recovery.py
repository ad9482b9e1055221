"""Recovery time after each kill: a process SIGKILLed and restarted at once, and how long until
an alert is accepted again and a waiting execution, approved, goes on (issue 20).

    .venv/bin/python -m bench.recovery [--rounds 3]

Real processes, as in the chaos suite (tests/chaos/processes.py): embedded PostgreSQL, the
Temporal dev server on a persistent --db-filename, `ddoc api`, `ddoc worker` and `ddoc agent`.
Each round: an alert starts a copilot execution that waits for the approval of its yellow step;
then the victim is SIGKILLed and started again right away (a `ddoc` process that exits meanwhile,
e.g. when PostgreSQL is gone, is restarted as a supervisor would). Measured from the kill:
`accepted` until a new alert is answered 2xx, `resumed` until the waiting execution's approved
step has run (the approval retried until taken). Medians per victim; writes
bench/results/recovery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import REPO
from ddoc.cli.up import API_DB_ROLE
from ddoc.platform import db, tenancy
from ddoc.platform.embedded import EmbeddedPostgres
from tests.chaos.processes import Child, TemporalServer, ddoc, kill_postgres, wait_healthy
from tests.conftest import free_port

RESULTS = REPO / "bench" / "results" / "recovery.json"
RUNBOOK = """---
title: Recovery restart
alerts: [RecoveryAlert]
---
# Recovery restart

1. Look: `echo looking`
2. Restart: `touch {sentinel}`
"""
VICTIMS = ("api", "worker", "agent", "temporal", "postgres")


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pg = EmbeddedPostgres(tmp / "pg")
        self.temporal = TemporalServer(tmp / "temporal", free_port())
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tenant = "recovery"
        self.api_key = f"ddoc_bench_{uuid.uuid4().hex}"
        self.token = f"ddwh_bench_{uuid.uuid4().hex}"
        self.children: dict[str, Child] = {}
        self.restarting: str | None = None
        self.exits: list[str] = []  # ddoc processes that exited by themselves

    def start(self) -> None:
        self.pg.start()
        self.pg.ensure_database("ddoc")
        owner = db.make_engine(self.pg.url("ddoc"), pool_size=2)
        db.migrate(owner)
        self.pg.ensure_login(API_DB_ROLE, member_of=db.APP_ROLE)
        tenancy.bootstrap(
            owner, tenant_id=self.tenant, api_key=self.api_key, webhook_token=self.token
        )
        owner.dispose()
        self.temporal.start()
        env = {
            "DDOC_DATABASE_URL": self.pg.url("ddoc", user=API_DB_ROLE),
            "DDOC_TEMPORAL_ADDRESS": self.temporal.address,
            "DDOC_CONTROL_TASK_QUEUE": "ddoc.control.recovery",
            "DDOC_TENANT": self.tenant,
            "DDOC_ENVIRONMENT": "recovery",
        }
        for role in ("worker", "agent", "api"):
            extra = {"DDOC_API_PORT": str(self.port)} if role == "api" else {}
            self.children[role] = ddoc(role, {**env, **extra}, self.tmp / f"{role}.log")
            self.children[role].start()
        wait_healthy(self.children["api"], self.base)

    def kill_and_restart(self, victim: str) -> None:
        self.restarting = victim  # the supervisor leaves it to this
        try:
            self._kill_and_restart(victim)
        finally:
            self.restarting = None

    def _kill_and_restart(self, victim: str) -> None:
        if victim == "postgres":
            kill_postgres(self.pg)
            self.pg.start()
        elif victim == "temporal":
            self.temporal.kill()
            self.temporal.start()
        else:
            self.children[victim].kill()
            self.children[victim].start()

    async def supervise(self) -> None:
        """Start again any `ddoc` process that exited (a lost database ends some of them)."""
        while True:
            for name, child in self.children.items():
                if name != self.restarting and not child.alive:
                    assert child.proc is not None
                    print(f"  {name} exited ({child.proc.returncode}): restarted", flush=True)
                    self.exits.append(f"{name}: {child.proc.returncode}")
                    child.start()
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()
        self.temporal.stop()
        self.pg.stop()


async def fire(http: httpx.AsyncClient, token: str) -> str | None:
    body = {
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "RecoveryAlert", "instance": uuid.uuid4().hex[:8]},
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ]
    }
    try:
        answer = await http.post(
            "/webhooks/alertmanager", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError:
        return None
    if answer.status_code != 202:
        print(f"  webhook {answer.status_code}: {answer.text[:120]}", flush=True)
        return None
    found: str | None = answer.json()["alerts"][0]["execution_id"]
    return found


async def until(probe: Any, within: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if await probe():
                return time.monotonic()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not within {within}s")


async def measure(
    stack: Stack, rounds: int, sentinel: Path, victims: list[str]
) -> dict[str, list[dict[str, float]]]:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    found: dict[str, list[dict[str, float]]] = {victim: [] for victim in victims}
    async with httpx.AsyncClient(base_url=stack.base, headers=auth, timeout=10) as http:
        added = await http.post("/runbooks", json={"content": RUNBOOK.format(sentinel=sentinel)})
        assert added.status_code == 201, added.text
        # Every probe's execution waits for an approval that never comes: lift the blast-radius
        # limits (docs/LIMITS.md), which would otherwise hold back the sixth.
        most = 10_000
        limits = {
            "max_concurrent_per_runbook": most,
            "max_concurrent_per_service": most,
            "max_runs_per_hour": {"copilot": most, "autopilot": most},
        }
        lifted = await http.patch("/settings", json={"blast_radius": limits})
        assert lifted.status_code == 200, lifted.text
        supervisor = asyncio.create_task(stack.supervise())
        try:
            for _ in range(rounds):
                for victim in victims:
                    execution = await fire(http, stack.token)
                    assert execution is not None

                    async def waiting(execution: str = execution) -> bool:
                        view = await http.get(f"/executions/{execution}")
                        return view.status_code == 200 and any(
                            s["id"] == "s2" and s["status"] == "awaiting_approval"
                            for s in view.json()["steps"]
                        )

                    await until(waiting)
                    killed = time.monotonic()
                    await asyncio.to_thread(stack.kill_and_restart, victim)

                    async def accepted() -> bool:
                        return await fire(http, stack.token) is not None

                    async def approved(execution: str = execution) -> bool:
                        answer = await http.post(
                            f"/executions/{execution}/decisions",
                            json={"step_id": "s2", "decision": "approve"},
                        )
                        return answer.status_code == 202

                    async def ran(execution: str = execution) -> bool:
                        view = await http.get(f"/executions/{execution}")
                        return view.status_code == 200 and any(
                            s["id"] == "s2" and s["status"] == "succeeded"
                            for s in view.json()["steps"]
                        )

                    accepted_at = await until(accepted)
                    await until(approved)
                    resumed_at = await until(ran)
                    row = {"accepted": accepted_at - killed, "resumed": resumed_at - killed}
                    found[victim].append({k: round(v, 2) for k, v in row.items()})
                    print(victim, found[victim][-1], flush=True)
        finally:
            supervisor.cancel()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--victims", default=",".join(VICTIMS), help="comma-separated")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddoc-recovery-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start()
            victims = args.victims.split(",")
            rows = asyncio.run(measure(stack, args.rounds, Path(tmp) / "restarted", victims))
        except BaseException:
            for child in stack.children.values():
                print(f"--- {child.name} (started {child.starts}x) ---\n{child.tail(15)}")
            raise
        finally:
            stack.stop()
    medians = {
        victim: {m: statistics.median(r[m] for r in found) for m in ("accepted", "resumed")}
        for victim, found in rows.items()
    }
    print(json.dumps(medians, indent=2))
    result = {"benchmark": "recovery", "rounds": args.rounds, "median_seconds": medians}
    Path(args.output).write_text(json.dumps({**result, "runs": rows}, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
