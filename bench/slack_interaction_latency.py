"""Latency of `POST /slack/interactions`: from the signed request to Slack's 200.

    PYTHONPATH=. .venv/bin/python bench/slack_interaction_latency.py [--clicks 200]

A real API (uvicorn, in this process) with Slack configured, the control-plane worker and an
agent on the Temporal dev server, embedded PostgreSQL, and the fake Slack Web API of the tests.
Each measured click is an Approve, signed like Slack signs it, on an execution whose yellow
step is waiting: the full path (signature and replay check, responder lookup, the workflow's
live state, the policy check, the signal). Baseline in the same run: `GET /health` (which asks
Temporal and PostgreSQL). Slack allows 3 s. Writes bench/results/slack_interaction_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from agent_worker.main import build_agent
from api.app import create_app
from bench.harness import REPO, database, dev_server
from ddoc.contracts.settings import Settings, TemporalSettings
from ddoc.platform import tenancy, users
from ddoc.slack.inbound import button_value
from tests.fakes.slack import FakeSlack, block_actions_payload, interaction_body, signed_headers
from worker.main import ACTIVITY_THREADS, build_worker

RESULTS = REPO / "bench" / "results" / "slack_interaction_latency.json"
SECRET = "bench-signing-secret"
ANA = "U0ANA00001"
RUNBOOK = "# Bench\n\n1. Restart: `touch /nonexistent-dir/bench-{n}`\n"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 2),
        "p90": round(percentile(ms, 90), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    async with dev_server() as env:
        with FakeSlack(bot_token="xoxb-bench", users={ANA: {"email": "ana@example.com"}}) as slack:
            return await _run(args, env, database_url, slack)


async def _run(
    args: argparse.Namespace, env: WorkflowEnvironment, database_url: str, slack: FakeSlack
) -> dict[str, Any]:
    from ddoc.platform import db

    engine = db.make_engine(database_url, pool_size=ACTIVITY_THREADS)
    tenant, api_key = "bench", f"ddoc_bench_{uuid.uuid4().hex}"
    tenancy.bootstrap(engine, tenant_id=tenant, api_key=api_key)
    with Session(engine) as session:
        users.add(
            session,
            tenant_id=tenant,
            email="ana@example.com",
            display_name="Ana",
            roles=["approver"],
            slack_user_id=ANA,
            actor="bench",
        )
        session.commit()
    config = env.client.service_client.config
    port = free_port()
    settings = Settings(
        database_url=database_url,
        temporal=TemporalSettings(address=config.target_host, namespace=env.client.namespace),
        api_port=port,
        tenant=tenant,
        environment="bench",
        control_task_queue=f"ddoc.control.{uuid.uuid4().hex[:8]}",
        slack_bot_token="xoxb-bench",
        slack_signing_secret=SECRET,
        slack_channel="C0BENCH",
        slack_api_url=slack.base_url,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the API stopped while starting")
        await asyncio.sleep(0.02)
    headers = {"Authorization": f"Bearer {api_key}"}
    clicks: list[float] = []
    health: list[float] = []
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        control = build_worker(
            env.client, engine, task_queue=settings.control_task_queue, executor=executor
        )
        agent = build_agent(env.client, tenant_id=tenant, environment="bench")
        async with (
            control,
            agent,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            waiting = await _waiting_executions(http, headers, args.clicks + args.warmup)
            for index, execution_id in enumerate(waiting):
                body = interaction_body(
                    block_actions_payload(
                        user_id=ANA,
                        team_id="T0BENCH",
                        action_id="ddoc_approve_s1",
                        value=button_value(execution_id, "s1", "approve"),
                    )
                )
                signed = signed_headers(SECRET, body)
                started = time.perf_counter()
                response = await http.post("/slack/interactions", content=body, headers=signed)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text
                started = time.perf_counter()
                assert (await http.get("/health")).status_code == 200
                health_ms = (time.perf_counter() - started) * 1000
                if index >= args.warmup:
                    clicks.append(elapsed)
                    health.append(health_ms)
            refused = slack.calls_to("chat.postEphemeral")
            assert not refused, f"clicks were refused: {refused[:3]}"
    server.should_exit = True
    await serving
    engine.dispose()
    click_summary, health_summary = summary(clicks), summary(health)
    return {
        "clicks": click_summary,
        "health_baseline": health_summary,
        "ratio_p50": round(click_summary["p50"] / health_summary["p50"], 2),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }


async def _waiting_executions(
    http: httpx.AsyncClient, headers: dict[str, str], count: int
) -> list[str]:
    ids = []
    for n in range(count):
        runbook = await http.post(
            "/runbooks", json={"content": RUNBOOK.format(n=n)}, headers=headers
        )
        started = await http.post(
            "/executions", json={"runbook_id": runbook.json()["id"]}, headers=headers
        )
        ids.append(started.json()["id"])
    for execution_id in ids:
        for _ in range(600):
            body = (await http.get(f"/executions/{execution_id}", headers=headers)).json()
            if body["status"] == "awaiting_human":
                break
            await asyncio.sleep(0.05)
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    with database() as engine:
        url = engine.url.render_as_string(hide_password=False)
        found = asyncio.run(bench(args, url))
    print("POST /slack/interactions (signed Approve, full path)")
    print(f"  clicks        {found['clicks']}")
    print(f"  GET /health   {found['health_baseline']}")
    print(f"  ratio p50     {found['ratio_p50']}x")
    Path(args.output).write_text(json.dumps(found, indent=2) + "\n")
    print(f"wrote {args.output}")
    sys.stdout.flush()
    os._exit(0)  # the SDK's runtime has been seen to crash at interpreter exit


if __name__ == "__main__":
    main()
