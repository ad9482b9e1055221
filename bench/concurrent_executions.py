"""Many concurrent executions of a 5-step green runbook, all started at once, on this machine.

    PYTHONPATH=. .venv/bin/python bench/concurrent_executions.py [--executions 500] [--steps 5]
        [--agent-concurrency N]

Real components: embedded PostgreSQL and the Temporal dev server (`WorkflowEnvironment.start_local`)
in this process's care; the control-plane worker (`worker.main.build_worker`) and the agent
(`agent_worker.main.build_agent`) together in ONE separate process (this file with `--serve`),
so its memory can be measured: its peak RSS is `VmHWM` in /proc/<pid>/status, read before it
is stopped. This process only prepares the executions' rows, starts every workflow at once
(`start_workflow` for all, then awaits all results) and checks the database afterwards.

Reported: wall time from the first start to the last result, steps/s and executions/s over
that wall time, p50/p99 of per-execution latency (its start call to its result), the worker
process's peak RSS and CPU time, and whether every execution and every step succeeded (from
the `executions` and `execution_steps` tables): the benchmark fails (exit 1) if not.
Writes bench/results/concurrent_executions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import agent_worker.main as agent_main
from agent_worker.main import build_agent
from bench.harness import REPO, add_tenant, database, exit_now, machine
from ddoc.alerts.paging import PagerDutyEvents
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.execution import (
    ExecutionInput,
    ExecutionMode,
    ExecutionPolicy,
    ExecutionResult,
    ExecutionStatus,
)
from ddoc.execution import store as executions
from ddoc.platform import db
from ddoc.platform.embedded import bin_path, die_with_parent
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook, Step
from tests.engine_harness import cmd, policy
from worker.main import ACTIVITY_THREADS, build_worker
from workflows.execution import RunbookExecutionWorkflow

RESULTS = REPO / "bench" / "results" / "concurrent_executions.json"
SELF = Path(__file__).resolve()
NOWHERE = "http://127.0.0.1:9/v2/enqueue"  # nothing pages here
TENANT = "bench"
ENVIRONMENT = "bench"
PRODUCT_AGENT_CONCURRENCY = agent_main.MAX_CONCURRENT_COMMANDS


# -- the worker process ----------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    """The control-plane worker and the agent in this process, until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    # `build_agent` reads this module global for the agent's max concurrent activities.
    agent_main.MAX_CONCURRENT_COMMANDS = args.agent_concurrency
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = db.make_engine(args.database_url, pool_size=ACTIVITY_THREADS)
    try:
        client = await Client.connect(args.address, namespace=args.namespace)
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
            control = build_worker(
                client,
                engine,
                task_queue=args.task_queue,
                executor=executor,
                pager=PagerDutyEvents(url=NOWHERE),
            )
            agent = build_agent(client, tenant_id=args.tenant, environment=args.environment)
            async with control, agent:
                print("ready", flush=True)
                await stop.wait()
    finally:
        engine.dispose()


# -- the load --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a process."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_snapshot() -> dict[int, tuple[str, float, float]]:
    """Every process: (name, own CPU seconds, CPU seconds of its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        found[int(entry.name)] = (name, own, children)
    return found


def cpu_during(
    before: dict[int, tuple[str, float, float]],
    after: dict[int, tuple[str, float, float]],
    worker: int,
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by who spent them (processes that ended
    meanwhile are missing, except children reaped by a process that still runs)."""
    spent: dict[str, float] = {}

    def add(who: str, seconds: float) -> None:
        spent[who] = round(spent.get(who, 0.0) + seconds, 2)

    for pid, (name, own, children) in after.items():
        _, own0, children0 = before.get(pid, (name, 0.0, 0.0))
        if pid == worker:
            add("worker process (control + agent)", own - own0)
            add("commands run by the agent (bash)", children - children0)
        elif pid == os.getpid():
            add("this load generator", own - own0)
        elif name == "temporal":
            add("temporal dev server", own - own0)
        elif name.startswith("postgres"):
            add("postgres", own - own0)
        else:
            add("everything else on the machine", own - own0)
    return spent


def prepare(engine: Engine, count: int, steps: int) -> list[ExecutionInput]:
    """One stored runbook of `steps` green steps; `count` executions of it with their rows."""
    return prepare_runbook(
        engine,
        count,
        [cmd(f"s{n}", f"echo s{n}", "green") for n in range(1, steps + 1)],
        title="Bench concurrent executions",
    )


def prepare_runbook(
    engine: Engine,
    count: int,
    steps: list[Step],
    *,
    title: str,
    execution_policy: ExecutionPolicy | None = None,
) -> list[ExecutionInput]:
    """One stored runbook; `count` copilot executions of it with their rows (as intake writes
    them)."""
    parsed = ParsedRunbook(title=title, summary="", steps=steps)
    with Session(engine) as session:
        saved = runbooks.save(
            session,
            tenant_id=TENANT,
            content=f"# bench {uuid.uuid4().hex}",
            fmt="markdown",
            parsed=parsed,
            source_path=None,
            actor="bench",
        )
        template = executions.build_input(
            execution_id="template",
            tenant_id=TENANT,
            environment=ENVIRONMENT,
            runbook=saved.runbook,
            version=saved.version,
            mode=ExecutionMode.COPILOT,
            alert=None,
            incident_id=None,
            policy=execution_policy or policy(),
        )
        inputs = [
            dataclasses.replace(template, execution_id=f"ex-{uuid.uuid4().hex[:12]}")
            for _ in range(count)
        ]
        for inp in inputs:
            executions.create(session, inp=inp, started_by="bench")
        session.commit()
    return inputs


def status_counts(engine: Engine, table: str, ids: list[str]) -> dict[str, int]:
    column = "id" if table == "executions" else "execution_id"
    query = text(
        f"SELECT status, count(*) FROM {table} "
        f"WHERE tenant_id = :tenant AND {column} = ANY(:ids) GROUP BY status"
    )
    with engine.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query, {"tenant": TENANT, "ids": ids})}


async def load(
    client: Client, inputs: list[ExecutionInput], task_queue: str
) -> tuple[float, list[float], list[ExecutionResult], float]:
    """Start every execution at once, then await every result. Returns the wall time (first
    start call to last result), per-execution latencies (ms), the results, and the time all
    the start calls took."""
    started_at: dict[str, float] = {}
    finished_at: dict[str, float] = {}

    async def start(inp: ExecutionInput) -> WorkflowHandle[Any, ExecutionResult]:
        started_at[inp.execution_id] = time.perf_counter()
        return await client.start_workflow(
            RunbookExecutionWorkflow.run, inp, id=inp.execution_id, task_queue=task_queue
        )

    async def result(handle: WorkflowHandle[Any, ExecutionResult]) -> ExecutionResult:
        found = await handle.result()
        finished_at[handle.id] = time.perf_counter()
        return found

    first = time.perf_counter()
    handles = await asyncio.gather(*(start(inp) for inp in inputs))
    starts_done = time.perf_counter() - first
    results = await asyncio.gather(*(result(h) for h in handles))
    wall = max(finished_at.values()) - min(started_at.values())
    latencies = [(finished_at[i] - started_at[i]) * 1000 for i in started_at]
    return wall, latencies, list(results), starts_done


async def sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError, KeyError):
            peak[0] = max(peak[0], proc_status(pid)["VmRSS"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def bench(
    args: argparse.Namespace, engine: Engine, database_url: str, logs: Path
) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bin_path("temporal"),
        search_attributes=temporal_conn.SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    proc: asyncio.subprocess.Process | None = None
    log_path = logs / "worker.log"
    try:
        client = env.client
        task_queue = f"ddoc.control.bench.{uuid.uuid4().hex[:8]}"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SELF),
                "--serve",
                "--address",
                client.service_client.config.target_host,
                "--namespace",
                client.namespace,
                "--database-url",
                database_url,
                "--task-queue",
                task_queue,
                "--tenant",
                TENANT,
                "--environment",
                ENVIRONMENT,
                "--agent-concurrency",
                str(args.agent_concurrency),
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"the worker process did not start; see {log_path}")
        pid = proc.pid
        idle = proc_status(pid)
        print(f"worker process {pid} ready, RSS {idle['VmRSS'] / 1024:.0f} MB idle")
        inputs = prepare(engine, args.executions, args.steps)
        ids = [inp.execution_id for inp in inputs]
        # A few executions first, so the worker's imports and caches are warm.
        await load(client, prepare(engine, args.warmup, args.steps), task_queue)
        warm = proc_status(pid)
        cpu_before = cpu_snapshot()
        peak = [0]
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, peak, stop))
        try:
            wall, latencies, results, starts_took = await asyncio.wait_for(
                load(client, inputs, task_queue), args.timeout
            )
        finally:
            stop.set()
            await sampler
        cpu_spent = cpu_during(cpu_before, cpu_snapshot(), pid)
        final = proc_status(pid)
        executions_by_status = status_counts(engine, "executions", ids)
        steps_by_status = status_counts(engine, "execution_steps", ids)
        workflow_statuses: dict[str, int] = {}
        for r in results:
            workflow_statuses[r.status.value] = workflow_statuses.get(r.status.value, 0) + 1
        n, steps = args.executions, args.steps
        all_succeeded = (
            executions_by_status == {ExecutionStatus.SUCCEEDED.value: n}
            and steps_by_status == {"succeeded": n * steps}
            and workflow_statuses == {ExecutionStatus.SUCCEEDED.value: n}
        )
        return {
            "wall_seconds": wall,
            "start_calls_seconds": starts_took,
            "executions_per_second": n / wall,
            "steps_per_second": n * steps / wall,
            "latency_ms": {
                "p50": statistics.median(latencies),
                "p90": percentile(latencies, 90),
                "p99": percentile(latencies, 99),
                "min": min(latencies),
                "max": max(latencies),
                "mean": statistics.fmean(latencies),
            },
            "worker_process": {
                "what": "control-plane worker + agent, one process",
                "peak_rss_mb_vmhwm": final["VmHWM"] / 1024,
                "peak_rss_mb_sampled_during_load": peak[0] / 1024,
                "rss_mb_idle_after_start": idle["VmRSS"] / 1024,
                "rss_mb_after_warmup": warm["VmRSS"] / 1024,
                "rss_mb_at_end": final["VmRSS"] / 1024,
                "cpu_seconds_during_load": cpu_spent["worker process (control + agent)"],
                "note": "RSS excludes the bash processes the agent spawns",
            },
            "cpu_seconds_during_load_by_process": cpu_spent,
            "executions_by_status": executions_by_status,
            "steps_by_status": steps_by_status,
            "workflow_results_by_status": workflow_statuses,
            "all_succeeded": all_succeeded,
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


def render(found: dict[str, Any], args: argparse.Namespace) -> None:
    lat, worker = found["latency_ms"], found["worker_process"]
    n, steps = args.executions, args.steps
    print(f"{n} concurrent executions x {steps} green steps ({n * steps} agent commands)")
    print(
        f"agent max concurrent commands: {args.agent_concurrency} "
        f"(product default MAX_CONCURRENT_COMMANDS = {PRODUCT_AGENT_CONCURRENCY}); "
        f"control worker max concurrent activities: {ACTIVITY_THREADS}"
    )
    print(f"wall, first start -> last result   {found['wall_seconds']:8.2f} s")
    print(f"all {n} start calls returned in    {found['start_calls_seconds']:8.2f} s")
    print(f"throughput                         {found['steps_per_second']:8.1f} steps/s")
    print(f"                                   {found['executions_per_second']:8.1f} executions/s")
    print(
        f"per-execution latency              p50 {lat['p50'] / 1000:.2f} s  "
        f"p90 {lat['p90'] / 1000:.2f} s  p99 {lat['p99'] / 1000:.2f} s  "
        f"max {lat['max'] / 1000:.2f} s"
    )
    print(
        f"worker process (control + agent)   peak RSS {worker['peak_rss_mb_vmhwm']:.0f} MB "
        f"(VmHWM; idle {worker['rss_mb_idle_after_start']:.0f} MB), "
        f"CPU {worker['cpu_seconds_during_load']:.1f} s during the load"
    )
    cpu = found["cpu_seconds_during_load_by_process"]
    busy = sum(cpu.values())
    print(
        f"CPU during the load ({os.cpu_count()} cores x {found['wall_seconds']:.0f} s = "
        f"{(os.cpu_count() or 1) * found['wall_seconds']:.0f} core-s; {busy:.0f} core-s used):"
    )
    for who, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {who:<34} {seconds:7.1f} s")
    print(f"executions by status (database)    {found['executions_by_status']}")
    print(f"steps by status (database)         {found['steps_by_status']}")
    print(f"all succeeded                      {found['all_succeeded']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--agent-concurrency",
        type=int,
        default=PRODUCT_AGENT_CONCURRENCY,
        help="the agent's max concurrent commands (default: the product's)",
    )
    parser.add_argument("--warmup", type=int, default=10, help="executions run before the load")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole load")
    parser.add_argument("--output", default=str(RESULTS))
    # --serve: run the control worker and the agent (the benchmark starts this itself).
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", default=TENANT, help=argparse.SUPPRESS)
    parser.add_argument("--environment", default=ENVIRONMENT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args))
        return 0
    started = time.time()
    with database() as engine, tempfile.TemporaryDirectory(prefix="ddoc-bench-logs-") as tmp:
        add_tenant(engine, TENANT)
        url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
        try:
            found = asyncio.run(bench(args, engine, url, Path(tmp)))
        except BaseException:
            log = Path(tmp) / "worker.log"
            if log.exists():
                print("--- worker process log (tail) ---", file=sys.stderr)
                print(log.read_text()[-4000:], file=sys.stderr)
            raise
    render(found, args)
    result = {
        "benchmark": "concurrent_executions",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine(),
        "params": {
            "executions": args.executions,
            "steps_per_execution": args.steps,
            "step_commands": [f"echo s{n}" for n in range(1, args.steps + 1)],
            "risk": "green (runs without approval)",
            "agent_max_concurrent_commands": args.agent_concurrency,
            "product_default_max_concurrent_commands": PRODUCT_AGENT_CONCURRENCY,
            "control_worker_max_concurrent_activities": ACTIVITY_THREADS,
            "warmup_executions": args.warmup,
            "started": "start_workflow for all at once, then all results awaited",
        },
        **found,
    }
    path = Path(args.output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    if not found["all_succeeded"]:
        print("FAILED: not every execution and step succeeded (see the counts above)")
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    exit_now(main())
