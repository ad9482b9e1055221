"""Soak: a steady alert rate with human approvals, for a while; memory growth, latency drift and
history sizes (issue 20, "soak and scale").

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 1.0]

Real components: embedded PostgreSQL, the Temporal dev server, and `ddoc api`, `ddoc worker` and
`ddoc agent` as processes; this process is the alert source and the responders. Every alert
(its own dedup key) starts a copilot execution: a green step, then a yellow one that waits for
an approval, given over the API after a random 1-10 s; once the execution succeeded, the
alert resolves. Each minute: the RSS of the three processes and the webhook's p50/p99 over that
minute. At the end: RSS growth per hour after the first third (the warm-up), p99 drift (last
minute's / second minute's), executions by status, and the largest workflow history (events).
Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text
from temporalio.client import Client

from bench.concurrent_executions import proc_status
from bench.harness import REPO, database
from bench.webhook_latency import percentile
from ddoc.platform import tenancy
from ddoc.platform.embedded import EmbeddedTemporal, die_with_parent
from tests.conftest import free_port

RESULTS = REPO / "bench" / "results" / "soak.json"
RUNBOOK = """---
title: Soak restart
alerts: [SoakAlert]
---
# Soak restart

1. Look at the service: `echo looking`
2. Restart it: `touch /tmp/ddoc-soak-restart`
"""
MOST = 10_000  # the largest a blast-radius limit takes: every alert here starts an execution


class Soak:
    def __init__(self, http: httpx.AsyncClient, auth: dict[str, str], hook: dict[str, str]):
        self.http, self.auth, self.hook = http, auth, hook
        self.latencies: list[tuple[float, float]] = []  # (when, ms)
        self.approved = 0
        self.resolved = 0
        self.refused: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def body(self, key: str, status: str) -> dict[str, Any]:
        return {
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": "SoakAlert", "instance": key},
                    "annotations": {"summary": "soak"},
                    "fingerprint": key,
                }
            ]
        }

    async def fire(self, key: str) -> None:
        started = time.perf_counter()
        answer = await self.http.post(
            "/webhooks/alertmanager", json=self.body(key, "firing"), headers=self.hook
        )
        self.latencies.append((time.monotonic(), (time.perf_counter() - started) * 1000))
        if answer.status_code != 202:
            self.refused[answer.status_code] = self.refused.get(answer.status_code, 0) + 1
            return
        execution = answer.json()["alerts"][0].get("execution_id")
        if execution:
            self.spawn(self.respond(key, execution))

    async def respond(self, key: str, execution: str) -> None:
        """A responder approves the yellow step after 1-10 s; the alert resolves once the
        execution succeeded."""
        await asyncio.sleep(random.uniform(1, 10))
        for _ in range(60):
            decided = await self.http.post(
                f"/executions/{execution}/decisions",
                json={"step_id": "s2", "decision": "approve"},
                headers=self.auth,
            )
            if decided.status_code == 202:
                self.approved += 1
                break
            await asyncio.sleep(1)
        for _ in range(60):
            found = await self.http.get(f"/executions/{execution}", headers=self.auth)
            if found.status_code == 200 and found.json()["status"] == "succeeded":
                break
            await asyncio.sleep(1)
        resolved = await self.http.post(
            "/webhooks/alertmanager", json=self.body(key, "resolved"), headers=self.hook
        )
        self.resolved += resolved.status_code == 202

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    return {name: round(proc_status(pid)["VmRSS"] / 1024, 1) for name, pid in pids.items()}


def growth_per_hour(samples: list[dict[str, Any]], name: str) -> float | None:
    """RSS growth per hour (% of the post-warm-up level), least squares over the samples after
    the first third of the run."""
    kept = samples[len(samples) // 3 :]
    if len(kept) < 3:
        return None
    xs = [s["minute"] for s in kept]
    ys = [s["rss_mb"][name] for s in kept]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return round(100 * slope * 60 / ys[0], 2)


async def largest_history(client: Client) -> int:
    largest = 0
    async for found in client.list_workflows("WorkflowType = 'RunbookExecution'"):
        handle = client.get_workflow_handle(found.id, run_id=found.run_id)
        largest = max(largest, len([e async for e in handle.fetch_history_events()]))
    return largest


def by_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM executions GROUP BY status"))
        return {row[0]: int(row[1]) for row in rows}


async def soak(args: argparse.Namespace, url: str, temporal: EmbeddedTemporal) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "DDOC_DATABASE_URL": url,
        "DDOC_TEMPORAL_ADDRESS": temporal.address,
        "DDOC_API_PORT": str(port),
        "DDOC_TENANT": "bench",
        "DDOC_ENVIRONMENT": "local",
        "DDOC_LOG_LEVEL": "WARNING",
    }
    procs = {
        role: subprocess.Popen(
            [sys.executable, "-m", "ddoc.cli.main", role],
            env=env,
            preexec_fn=die_with_parent(),
            stdout=subprocess.DEVNULL,
        )
        for role in ("worker", "agent", "api")
    }
    pids = {role: proc.pid for role, proc in procs.items()}
    try:
        auth = {"Authorization": f"Bearer {args.api_key}"}
        hook = {"Authorization": f"Bearer {args.webhook_token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for _ in range(600):
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            added = await http.post("/runbooks", json={"content": RUNBOOK}, headers=auth)
            assert added.status_code == 201, added.text
            limits = {
                "max_concurrent_per_runbook": MOST,
                "max_concurrent_per_service": MOST,
                "max_runs_per_hour": {"copilot": MOST, "autopilot": MOST},
            }
            lifted = await http.patch("/settings", json={"blast_radius": limits}, headers=auth)
            assert lifted.status_code == 200, lifted.text
            run = Soak(http, auth, hook)
            samples: list[dict[str, Any]] = []
            began = time.monotonic()
            fired = 0
            for minute in range(1, args.minutes + 1):
                window_start = time.monotonic()
                while time.monotonic() < began + 60 * minute:
                    run.spawn(run.fire(f"soak-{uuid.uuid4().hex[:12]}"))
                    fired += 1
                    await asyncio.sleep(1 / args.rate)
                window = [ms for at, ms in run.latencies if at >= window_start]
                sample = {
                    "minute": minute,
                    "rss_mb": rss_mb(pids),
                    "webhook_p50_ms": round(statistics.median(window), 1) if window else None,
                    "webhook_p99_ms": round(percentile(window, 99), 1) if window else None,
                    "alerts_fired": fired,
                    "approved": run.approved,
                    "resolved": run.resolved,
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
            await asyncio.wait_for(asyncio.gather(*run.tasks, return_exceptions=True), 300)
            client = await Client.connect(temporal.address)
            p99 = [s["webhook_p99_ms"] for s in samples if s["webhook_p99_ms"] is not None]
            return {
                "minutes": args.minutes,
                "alerts_per_second": args.rate,
                "alerts_fired": fired,
                "approved": run.approved,
                "resolved": run.resolved,
                "refused_by_status": run.refused,
                "rss_growth_percent_per_hour_after_warmup": {
                    name: growth_per_hour(samples, name) for name in pids
                },
                "p99_drift_last_over_second_minute": round(p99[-1] / p99[1], 2)
                if len(p99) > 2
                else None,
                "largest_execution_history_events": await largest_history(client),
                "samples": samples,
            }
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1.0, help="alerts per second")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    args.api_key = "ddoc_bench_" + uuid.uuid4().hex
    args.webhook_token = "ddwh_bench_" + uuid.uuid4().hex
    with database() as engine, tempfile.TemporaryDirectory() as tmp:
        tenancy.bootstrap(
            engine, tenant_id="bench", api_key=args.api_key, webhook_token=args.webhook_token
        )
        temporal = EmbeddedTemporal(Path(tmp), port=free_port(), ui_port=None)
        temporal.start()
        try:
            url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
            found = asyncio.run(soak(args, url, temporal))
            found["executions_by_status"] = by_status(engine)
        finally:
            temporal.stop()
    summary = {k: v for k, v in found.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    Path(args.output).write_text(json.dumps({"benchmark": "soak", **found}, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
