"""Many executions waiting on approvals, held by one worker process: its memory and CPU while
they wait (issue 20, "soak and scale").

    PYTHONPATH=. .venv/bin/python bench/waiting_executions.py [--executions 1000] [--idle 60]

Real components: embedded PostgreSQL and the Temporal dev server in this process's care; the
control-plane worker and the agent together in ONE separate process (the one of
bench/concurrent_executions.py, `--serve`). Each execution runs one green step, then waits for
a responder's approval of a yellow step (copilot, a 30-minute deadline: nothing escalates during
the measure). Once every execution is `awaiting_human` in the database, the worker's RSS and the
CPU of every process are measured over `--idle` seconds of waiting; then every workflow is
terminated. Baseline in the same run: the worker process's RSS right after it started, before
any execution. Writes bench/results/waiting_executions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench import concurrent_executions as ce
from bench.harness import REPO, add_tenant, database, exit_now
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.execution import ExecutionInput
from ddoc.platform.embedded import bin_path, die_with_parent
from tests.engine_harness import cmd, policy
from workflows.execution import RunbookExecutionWorkflow

RESULTS = REPO / "bench" / "results" / "waiting_executions.json"
TENANT, ENVIRONMENT = ce.TENANT, ce.ENVIRONMENT


def prepare(engine: Engine, count: int) -> list[ExecutionInput]:
    return ce.prepare_runbook(
        engine,
        count,
        [cmd("s1", "echo looked", "green"), cmd("s2", "echo changed", "yellow")],
        title="Bench waiting executions",
        execution_policy=policy(wait_seconds={"default": 1800}),
    )


def waiting(engine: Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM executions WHERE id = ANY(:ids)"
                    " AND status = 'awaiting_human'"
                ),
                {"ids": ids},
            ).scalar_one()
        )


async def bench(args: argparse.Namespace, engine: Engine, url: str, logs: Path) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bin_path("temporal"),
        search_attributes=temporal_conn.SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    proc: asyncio.subprocess.Process | None = None
    client: Client = env.client
    try:
        task_queue = f"ddoc.control.bench.{uuid.uuid4().hex[:8]}"
        with (logs / "worker.log").open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ce.SELF),
                "--serve",
                "--address",
                client.service_client.config.target_host,
                "--namespace",
                client.namespace,
                "--database-url",
                url,
                "--task-queue",
                task_queue,
                "--tenant",
                TENANT,
                "--environment",
                ENVIRONMENT,
                "--agent-concurrency",
                str(ce.PRODUCT_AGENT_CONCURRENCY),
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        assert proc.stdout is not None
        if (await asyncio.wait_for(proc.stdout.readline(), 120)).strip() != b"ready":
            raise RuntimeError("the worker process did not start")
        pid = proc.pid
        baseline = ce.proc_status(pid)["VmRSS"] / 1024
        inputs = prepare(engine, args.executions)
        ids = [inp.execution_id for inp in inputs]
        began = time.perf_counter()
        for chunk in range(0, len(inputs), 100):
            await asyncio.gather(
                *(
                    client.start_workflow(
                        RunbookExecutionWorkflow.run,
                        inp,
                        id=inp.execution_id,
                        task_queue=task_queue,
                    )
                    for inp in inputs[chunk : chunk + 100]
                )
            )
        while waiting(engine, ids) < len(ids):
            if time.perf_counter() - began > args.timeout:
                raise RuntimeError(f"only {waiting(engine, ids)} of {len(ids)} waiting")
            await asyncio.sleep(1)
        all_waiting_after = time.perf_counter() - began
        settled = ce.proc_status(pid)
        cpu_before = ce.cpu_snapshot()
        peak = [0]
        stop = asyncio.Event()
        sampler = asyncio.create_task(ce.sample_rss(pid, peak, stop))
        await asyncio.sleep(args.idle)
        stop.set()
        await sampler
        spent = ce.cpu_during(cpu_before, ce.cpu_snapshot(), pid)
        after = ce.proc_status(pid)
        for inp in inputs:
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(inp.execution_id).terminate("bench over")
        worker_cpu = spent["worker process (control + agent)"]
        return {
            "executions_waiting": len(ids),
            "seconds_until_all_waiting": round(all_waiting_after, 1),
            "worker_rss_mb": {
                "before_any_execution": round(baseline, 1),
                "all_waiting": round(settled["VmRSS"] / 1024, 1),
                "after_idle": round(after["VmRSS"] / 1024, 1),
                "peak_during_idle": round(peak[0] / 1024, 1),
                "per_1000_waiting_above_baseline": round(
                    (after["VmRSS"] / 1024 - baseline) * 1000 / len(ids), 1
                ),
            },
            "idle_seconds": args.idle,
            "worker_cpu_percent_while_idle": round(100 * worker_cpu / args.idle, 2),
            "cpu_seconds_while_idle_by_process": spent,
        }
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await env.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60, help="seconds measured while waiting")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    with database() as engine, tempfile.TemporaryDirectory(prefix="ddoc-bench-logs-") as tmp:
        add_tenant(engine, TENANT)
        url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
        found = asyncio.run(bench(args, engine, url, Path(tmp)))
    print(json.dumps(found, indent=2))
    path = Path(args.output).resolve()
    path.write_text(json.dumps({"benchmark": "waiting_executions", **found}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    exit_now(main())
