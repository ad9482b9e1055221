"""Webhook latency and throughput on loopback, beside a raw Temporal `start_workflow` baseline
measured in the same run against the same server.

    .venv/bin/python -m bench.webhook_latency [--alerts 1000] [--concurrency 32]

Real components: embedded PostgreSQL, the Temporal dev server, and `ddoc api`, `ddoc worker`
and `ddoc agent` as separate processes; this process only generates load. Every alert has its
own dedup key, so each one opens an incident, is matched (explicit trigger) and starts an
execution workflow: the full intake path. Reported: p50/p99 latency and alerts/s, and the same
for the baseline; "alert received → runbook attached" is the webhook's own latency, because
the runbook is attached (and the execution started) before the webhook answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.harness import REPO, database
from ddoc.platform import tenancy
from ddoc.platform.embedded import EmbeddedTemporal, die_with_parent
from tests.conftest import free_port

RUNBOOK = """---
title: Bench check
alerts: [BenchAlert]
---
# Bench check

1. Confirm the host answers: `true`
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_load(
    count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies, time.perf_counter() - started


def report(name: str, latencies: list[float], elapsed: float) -> dict[str, float]:
    row = {
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "rate": len(latencies) / elapsed,
    }
    print(
        f"{name:<28} p50 {row['p50']:7.1f} ms  p95 {row['p95']:7.1f} ms  "
        f"p99 {row['p99']:7.1f} ms  {row['rate']:7.1f}/s  (n={len(latencies)})"
    )
    return row


async def bench(args: argparse.Namespace, database_url: str, temporal: EmbeddedTemporal) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DDOC_DATABASE_URL": database_url,
        "DDOC_TEMPORAL_ADDRESS": temporal.address,
        "DDOC_API_PORT": str(port),
        "DDOC_TENANT": "bench",
        "DDOC_ENVIRONMENT": "local",
        "DDOC_LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ddoc.cli.main",
                role,
                *([f"--workers={args.api_workers}"] if role == "api" else []),
            ],
            env=env,
            preexec_fn=die_with_parent(),
            stdout=subprocess.DEVNULL,
        )
        for role in ("worker", "agent", "api")
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(600):
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            auth = {"Authorization": f"Bearer {args.api_key}"}
            added = await http.post("/runbooks", json={"content": RUNBOOK}, headers=auth)
            assert added.status_code == 201, added.text
            # Every alert here starts an execution of the one runbook: lift the blast-radius
            # limits (docs/LIMITS.md) that would otherwise hold most of them back.
            most = 10_000  # the largest a limit takes
            lifted = await http.patch(
                "/settings",
                json={
                    "blast_radius": {
                        "max_concurrent_per_runbook": most,
                        "max_concurrent_per_service": most,
                        "max_runs_per_hour": {"copilot": most, "autopilot": most},
                    }
                },
                headers=auth,
            )
            assert lifted.status_code == 200, lifted.text
            client = await Client.connect(temporal.address)
            run = uuid.uuid4().hex[:8]

            async def start(i: int) -> None:
                await client.start_workflow(
                    "BaselineNoop", id=f"baseline-{run}-{i}", task_queue="bench.baseline"
                )

            hook = {"Authorization": f"Bearer {args.webhook_token}"}

            async def fire(i: int, expect: str = "started") -> None:
                body = {
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {"alertname": "BenchAlert", "instance": f"host-{i}"},
                            "annotations": {"summary": "bench"},
                            "fingerprint": f"{run}{i:08d}",
                        }
                    ]
                }
                response = await http.post("/webhooks/alertmanager", json=body, headers=hook)
                assert response.status_code == 202, response.text
                assert response.json()["alerts"][0]["status"] == expect

            # Warm both paths, then measure them alternately so noise hits both.
            await run_load(20, 4, lambda i: start(10_000_000 + i))
            await run_load(20, 4, lambda i: fire(10_000_000 + i))
            rows: dict[str, list[dict[str, float]]] = {"baseline": [], "webhook": []}
            per_round = args.alerts // args.rounds
            for r in range(args.rounds):
                lat, el = await run_load(
                    per_round, args.concurrency, lambda i, r=r: start(r * per_round + i)
                )
                rows["baseline"].append(report(f"start_workflow round {r + 1}", lat, el))
                lat, el = await run_load(
                    per_round, args.concurrency, lambda i, r=r: fire(r * per_round + i)
                )
                rows["webhook"].append(report(f"webhook round {r + 1}", lat, el))
            print()
            med = {
                k: {
                    m: statistics.median(row[m] for row in v) for m in ("p50", "p95", "p99", "rate")
                }
                for k, v in rows.items()
            }
            for k, v in med.items():
                print(
                    f"median of rounds, {k:<9} p50 {v['p50']:.1f} ms  p95 {v['p95']:.1f} ms  "
                    f"p99 {v['p99']:.1f} ms  {v['rate']:.0f}/s"
                )
            # Each round's ratio compares two measurements taken moments apart; their median is
            # the figure least moved by the machine's noise.
            ratios = [
                w["p99"] / b["p99"] for w, b in zip(rows["webhook"], rows["baseline"], strict=True)
            ]
            print(
                "webhook p99 / start_workflow p99 per round: "
                + ", ".join(f"{r:.2f}x" for r in ratios)
                + f"; median {statistics.median(ratios):.2f}x"
            )
            print(
                f"alert received -> runbook attached (execution started): p95 {med['webhook']['p95']:.1f} ms"
            )
            # Incidents arriving a few at a time (the usual case): received -> attached + started.
            lat, el = await run_load(200, 4, lambda i: fire(20_000_000 + i))
            report("webhook, 4 concurrent", lat, el)
            # A storm: repeats of alerts already open (no new execution, no Temporal call).
            storm = []
            for r in range(args.rounds):
                lat, el = await run_load(
                    per_round, args.concurrency, lambda i: fire(i % 50, expect="duplicate")
                )
                storm.append(report(f"repeat deliveries round {r + 1}", lat, el))
            print(
                f"median of rounds, repeats   p50 {statistics.median(s['p50'] for s in storm):.1f} ms"
                f"  p99 {statistics.median(s['p99'] for s in storm):.1f} ms"
                f"  {statistics.median(s['rate'] for s in storm):.0f}/s"
            )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=1)
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
            asyncio.run(bench(args, url, temporal))
        finally:
            temporal.stop()
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
