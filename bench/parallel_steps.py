"""A runbook of six independent green diagnostics, walked in order and as one parallel group, in
the same run (issue 21: target >= 3x faster wall time on the agent).

    PYTHONPATH=. .venv/bin/python bench/parallel_steps.py [--rounds 10] [--seconds 1.0]

Each diagnostic is a real command on the real agent (`sleep <seconds>; uptime`-like work: a
fixed wait, as a `kubectl get`, a `curl` of a health endpoint or a log query waits on a remote
system). The two runbooks are the same six steps; the second has them in one `parallel` group.
Rounds alternate sequential, parallel, sequential, ... so the machine's noise hits both alike.
Measured: `RunbookExecutionWorkflow` from start to result (client side), and the group's span on
the agent (the trail's first start to last finish). Reported: medians, and their ratio.

Real components: embedded PostgreSQL, the Temporal dev server (`WorkflowEnvironment.start_local`),
the control-plane worker and the agent (this process). Writes bench/results/parallel_steps.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client

from bench.harness import REPO, database, dev_server, exit_now, machine
from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from tests.engine_harness import cmd, running

RESULTS = REPO / "bench" / "results" / "parallel_steps.json"
NOWHERE = "http://127.0.0.1:9/v2/enqueue"  # nothing pages here
STEPS = 6
TARGET = 3.0


def diagnostics(seconds: float, group: str | None) -> list[Any]:
    return [
        cmd(f"d{i}", f"sleep {seconds}; echo diagnostic {i}; uname -s", "green", parallel=group)
        for i in range(1, STEPS + 1)
    ]


def _at(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


async def bench(args: argparse.Namespace, engine: Engine, client: Client) -> dict[str, Any]:
    walls: dict[str, list[float]] = {"sequential": [], "parallel": []}
    spans: dict[str, list[float]] = {"sequential": [], "parallel": []}
    async with running(client, engine, pagerduty_url=NOWHERE) as h:
        shapes = {
            "sequential": diagnostics(args.seconds, None),
            "parallel": diagnostics(args.seconds, "p1"),
        }
        for round_ in range(args.warmup + args.rounds):
            for kind, steps in shapes.items():
                started = time.perf_counter()
                run = await h.start(*steps, mode=ExecutionMode.AUTOPILOT)
                result = await run.result()
                wall = time.perf_counter() - started
                assert result.status == ExecutionStatus.SUCCEEDED, result
                trail = h.trail(run.execution_id)["steps"]
                outputs = [s["output"] for s in trail]
                assert all(o and "diagnostic" in o for o in outputs), outputs
                span = (
                    max(_at(s["finished_at"]) for s in trail)
                    - min(_at(s["started_at"]) for s in trail)
                ).total_seconds()
                if round_ >= args.warmup:
                    walls[kind].append(wall)
                    spans[kind].append(span)
                    n = round_ - args.warmup + 1
                    print(f"round {n} {kind:<10} {wall:6.2f}s (agent {span:5.2f}s)")
    median = {
        kind: {
            "wall_s": round(statistics.median(walls[kind]), 3),
            "agent_span_s": round(statistics.median(spans[kind]), 3),
        }
        for kind in walls
    }
    ratio = {
        "wall": round(median["sequential"]["wall_s"] / median["parallel"]["wall_s"], 2),
        "agent_span": round(
            median["sequential"]["agent_span_s"] / median["parallel"]["agent_span_s"], 2
        ),
    }
    return {"walls": walls, "spans": spans, "median": median, "ratio": ratio}


async def amain(args: argparse.Namespace, engine: Engine) -> dict[str, Any]:
    async with dev_server() as env:
        return await bench(args, engine, env.client)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="measured, per shape")
    parser.add_argument("--warmup", type=int, default=1, help="per shape, not measured")
    parser.add_argument("--seconds", type=float, default=1.0, help="each diagnostic's wait")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    started = time.time()
    with database() as engine:
        found = asyncio.run(amain(args, engine))
    result = {
        "benchmark": "parallel_steps",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "params": {"steps": STEPS, "seconds_each": args.seconds, "rounds": args.rounds},
        **found,
        "target_ratio": TARGET,
        "meets_target": found["ratio"]["wall"] >= TARGET,
    }
    print(json.dumps({"median": found["median"], "ratio": found["ratio"]}, indent=2))
    path = Path(args.output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    os.chdir(REPO)
    exit_now(main())
