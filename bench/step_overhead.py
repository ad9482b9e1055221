"""Overhead of one green step on the real Temporal dev server, against a no-op baseline measured
in the same run.

    PYTHONPATH=. .venv/bin/python bench/step_overhead.py [--iterations 200] [--product-iterations 100]

Three client-side latencies (`client.execute_workflow(...)` from call to result), sequential
(one workflow at a time: latency, not throughput) and interleaved a, b, c, a, b, c, … so the
machine's noise hits all three alike:

  (a) baseline: a trivial workflow running ONE no-op activity on a separate task queue, served
      by a worker in this process;
  (b) the same workflow shape, its one activity the real agent command activity
      (`CommandActivities.run_command`, `true` in bash in its own process group) on the
      tenant's agent task queue served by `build_agent`, with the options the execution
      workflow uses (heartbeat timeout, green retry policy);
  (c) the product path: `RunbookExecutionWorkflow` of a 1-step green runbook, with the
      control-plane worker (its database writes: local activities since the `trail-v2` patch)
      and the agent.

Targets, same run: b/a <= 1.5 (dispatching to an agent) and c/a <= 1.5 (the whole product
path, trail included; issue 16).

Real components: embedded PostgreSQL, the Temporal dev server (`WorkflowEnvironment.start_local`),
the control-plane worker and the agent (in this process). Writes bench/results/step_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from sqlalchemy import Engine
    from sqlmodel import Session
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.harness import REPO, database, dev_server, exit_now, machine
    from ddoc.contracts import names
    from ddoc.contracts.execution import (
        CommandRequest,
        CommandResult,
        ExecutionInput,
        ExecutionMode,
        ExecutionPolicy,
        ExecutionResult,
        ExecutionStatus,
    )
    from ddoc.contracts.settings import agent_task_queue
    from ddoc.execution import store as executions
    from ddoc.runbooks import store as runbooks
    from ddoc.runbooks.model import ParsedRunbook
    from tests.engine_harness import ENVIRONMENT, cmd, policy, running
    from workflows import timeouts
    from workflows.execution import RunbookExecutionWorkflow

RESULTS = REPO / "bench" / "results" / "step_overhead.json"
NOWHERE = "http://127.0.0.1:9/v2/enqueue"  # nothing pages here
COMMAND_TIMEOUT_SECONDS = 30
TARGET_RATIO = 1.5  # b/a and c/a, at the median


@activity.defn(name="bench.noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchOneNoop")
class OneNoopWorkflow:
    @workflow.run
    async def run(self, activity_queue: str) -> None:
        await workflow.execute_activity(
            noop, task_queue=activity_queue, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BenchOneCommand")
class OneCommandWorkflow:
    """One agent command with the options `RunbookExecutionWorkflow._execute` uses for a green
    step; nothing else (no database writes, no search attributes)."""

    @workflow.run
    async def run(self, agent_queue: str) -> CommandResult:
        result: CommandResult = await workflow.execute_activity(
            names.RUN_COMMAND,
            CommandRequest(
                execution_id=workflow.info().workflow_id,
                step_id="s1",
                command="true",
                timeout_seconds=COMMAND_TIMEOUT_SECONDS,
            ),
            result_type=CommandResult,
            task_queue=agent_queue,
            schedule_to_start_timeout=timedelta(seconds=60),
            start_to_close_timeout=timedelta(seconds=COMMAND_TIMEOUT_SECONDS)
            + timeouts.COMMAND_START_TO_CLOSE_MARGIN,
            heartbeat_timeout=timedelta(seconds=ExecutionPolicy().heartbeat_timeout_seconds),
            retry_policy=timeouts.GREEN_COMMAND_RETRY,
        )
        return result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "n": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "min_ms": min(latencies),
        "max_ms": max(latencies),
    }


class ProductPath:
    """Executions of a stored 1-step green runbook; the database rows are written before the
    clock starts, so (c) times what the client sees of the workflow, as (a) and (b) do."""

    def __init__(self, engine: Engine, tenant_id: str) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        parsed = ParsedRunbook(
            title="Bench step overhead", summary="", steps=[cmd("s1", "true", "green")]
        )
        with Session(engine) as session:
            saved = runbooks.save(
                session,
                tenant_id=tenant_id,
                content=f"# bench {uuid.uuid4().hex}",
                fmt="markdown",
                parsed=parsed,
                source_path=None,
                actor="bench",
            )
            self.template = executions.build_input(
                execution_id="template",
                tenant_id=tenant_id,
                environment=ENVIRONMENT,
                runbook=saved.runbook,
                version=saved.version,
                mode=ExecutionMode.COPILOT,
                alert=None,
                incident_id=None,
                command_timeout_seconds=COMMAND_TIMEOUT_SECONDS,
                agent_offline_timeout_seconds=60,
                policy=policy(),
                started_by=None,
            )
            session.commit()

    def prepare(self) -> ExecutionInput:
        inp = dataclasses.replace(self.template, execution_id=f"ex-{uuid.uuid4().hex[:12]}")
        with Session(self.engine) as session:
            executions.create(session, inp=inp, started_by="bench")
            session.commit()
        return inp


ANATOMY = (
    "activities",
    "local_activities",
    "workflow_tasks",
    "wft_queue_ms",
    "wft_worker_ms",
    "act_queue_ms",
    "act_worker_ms",
    "server_span_ms",
)


async def anatomy(client: Client, workflow_id: str) -> dict[str, float]:
    """Where one execution's time went, from its history's server timestamps: waiting in task
    queues (scheduled -> started) and in workers (started -> completed), workflow tasks and
    activities apart; the rest of the client's time is the start and result RPCs."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    at: dict[int, float] = {}
    row = dict.fromkeys(ANATOMY, 0.0)
    first = last = 0.0
    for event in history.events:
        t = event.event_time.ToMicroseconds() / 1000
        at[event.event_id] = t
        first, last = first or t, t
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            row["wft_queue_ms"] += (
                t - at[event.workflow_task_started_event_attributes.scheduled_event_id]
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            row["workflow_tasks"] += 1
            row["wft_worker_ms"] += (
                t - at[event.workflow_task_completed_event_attributes.started_event_id]
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            row["activities"] += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            if event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                row["local_activities"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            row["act_queue_ms"] += (
                t - at[event.activity_task_started_event_attributes.scheduled_event_id]
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            row["act_worker_ms"] += (
                t - at[event.activity_task_completed_event_attributes.started_event_id]
            )
    row["server_span_ms"] = last - first
    return row


def median_anatomy(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


async def bench(args: argparse.Namespace, engine: Engine, client: Client) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    workflow_queue = f"bench.wf.{run}"
    noop_queue = f"bench.noop.{run}"
    async with (
        running(client, engine, pagerduty_url=NOWHERE) as h,
        Worker(
            client,
            task_queue=workflow_queue,
            workflows=[OneNoopWorkflow, OneCommandWorkflow],
        ),
        Worker(client, task_queue=noop_queue, activities=[noop]),
    ):
        agent_queue = agent_task_queue(h.tenant_id, ENVIRONMENT)
        product = ProductPath(engine, h.tenant_id)

        async def a(i: int) -> tuple[float, str]:
            wid = f"bench-a-{run}-{i}"
            started = time.perf_counter()
            await client.execute_workflow(
                OneNoopWorkflow.run, noop_queue, id=wid, task_queue=workflow_queue
            )
            elapsed = (time.perf_counter() - started) * 1000
            return elapsed, wid

        async def b(i: int) -> tuple[float, str]:
            wid = f"bench-b-{run}-{i}"
            started = time.perf_counter()
            result = await client.execute_workflow(
                OneCommandWorkflow.run, agent_queue, id=wid, task_queue=workflow_queue
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert result.exit_code == 0, result
            return elapsed, wid

        async def c(i: int) -> tuple[float, str]:
            inp = product.prepare()  # database rows first, outside the timed part
            started = time.perf_counter()
            result: ExecutionResult = await client.execute_workflow(
                RunbookExecutionWorkflow.run,
                inp,
                id=inp.execution_id,
                task_queue=h.control_queue,
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert result.status == ExecutionStatus.SUCCEEDED, result
            return elapsed, inp.execution_id

        paths: dict[str, Callable[[int], Awaitable[tuple[float, str]]]] = {"a": a, "b": b, "c": c}
        wanted = {"a": args.iterations, "b": args.iterations, "c": args.product_iterations}
        for i in range(args.warmup):
            for fn in paths.values():
                await fn(-1 - i)
        latencies: dict[str, list[float]] = {k: [] for k in paths}
        ids: dict[str, list[str]] = {k: [] for k in paths}
        for i in range(max(wanted.values())):
            for key, fn in paths.items():
                if i < wanted[key]:
                    elapsed, wid = await fn(i)
                    latencies[key].append(elapsed)
                    ids[key].append(wid)
        shapes = {
            key: median_anatomy([await anatomy(client, wid) for wid in wids])
            for key, wids in ids.items()
        }
    rows = {key: summary(values) for key, values in latencies.items()}
    ratios = {
        f"{x}/a": {
            "p50": rows[x]["p50_ms"] / rows["a"]["p50_ms"],
            "p99": rows[x]["p99_ms"] / rows["a"]["p99_ms"],
        }
        for x in ("b", "c")
    }
    return {"rows": rows, "ratios": ratios, "shapes": shapes}


LABELS = {
    "a": "(a) 1 no-op activity",
    "b": "(b) 1 agent command `true`",
    "c": "(c) RunbookExecution, 1 green step",
}


def render(found: dict[str, Any]) -> None:
    rows, ratios, shapes = found["rows"], found["ratios"], found["shapes"]
    print(f"{'client-side execute_workflow':<36} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}    n")
    for key, row in rows.items():
        print(
            f"{LABELS[key]:<36} {row['p50_ms']:6.1f}ms {row['p90_ms']:6.1f}ms "
            f"{row['p99_ms']:6.1f}ms {row['mean_ms']:6.1f}ms {row['n']:4d}"
        )
    for key, ratio in ratios.items():
        print(f"ratio {key}: p50 {ratio['p50']:.2f}x  p99 {ratio['p99']:.2f}x")
    for key in ("b/a", "c/a"):
        verdict = "meets" if ratios[key]["p50"] <= TARGET_RATIO else "MISSES"
        print(f"{key} p50 {verdict} the target of <= {TARGET_RATIO}x")
    print()
    print("medians from the histories (server timestamps): queue = scheduled->started,")
    print("worker = started->completed; wft = workflow tasks, act = activities")
    print(
        f"{'':<36} {'acts':>4} {'local':>5} {'wfts':>4} {'wft queue':>10} {'wft worker':>10} "
        f"{'act queue':>10} {'act worker':>10} {'first->last':>11}"
    )
    for key, shape in shapes.items():
        print(
            f"{LABELS[key]:<36} {shape['activities']:4.0f} {shape['local_activities']:5.0f} "
            f"{shape['workflow_tasks']:4.0f} "
            f"{shape['wft_queue_ms']:8.1f}ms {shape['wft_worker_ms']:8.1f}ms "
            f"{shape['act_queue_ms']:8.1f}ms {shape['act_worker_ms']:8.1f}ms "
            f"{shape['server_span_ms']:9.1f}ms"
        )


async def amain(args: argparse.Namespace, engine: Engine) -> dict[str, Any]:
    async with dev_server() as env:
        return await bench(args, engine, env.client)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="for (a) and (b)")
    parser.add_argument("--product-iterations", type=int, default=100, help="for (c)")
    parser.add_argument("--warmup", type=int, default=10, help="per path, not measured")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    started = time.time()
    with database() as engine:
        found = asyncio.run(amain(args, engine))
    render(found)
    result = {
        "benchmark": "step_overhead",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "params": {
            "iterations_a_b": args.iterations,
            "iterations_c": args.product_iterations,
            "warmup_per_path": args.warmup,
            "order": "interleaved a,b,c per iteration, sequential (one workflow at a time)",
            "measured": "client.execute_workflow(...) call to result, milliseconds",
        },
        "paths": {key: LABELS[key] for key in found["rows"]},
        "latency": found["rows"],
        "per_workflow": found["shapes"],
        "ratios": found["ratios"],
        "target_ratio_p50": TARGET_RATIO,
        "meets_target_p50": {
            key: found["ratios"][key]["p50"] <= TARGET_RATIO for key in ("b/a", "c/a")
        },
    }
    path = Path(args.output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    exit_now(main())
