"""The runbook health report is computed on read: how long does it take as a tenant grows?

    PYTHONPATH=. .venv/bin/python bench/health_report.py [--runbooks 100 1000] [--runs 30]

Embedded PostgreSQL. For each size: N runbooks of 5 steps, each with `--runs` finished
executions (5 step rows each, a mix of outcomes) and an incident per execution, inserted in
bulk; then `learning.health` (what `/reports/health` and `/ui/health` serve) is timed 5 times,
and `learning.runbook_report` for one runbook (`/runbooks/{id}/stats`) 20 times. Baseline in the
same run: a plain `SELECT count(*)` over the execution steps. Medians.
Writes bench/results/health_report.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.harness import REPO, database
from ddoc.platform import tenancy
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.parsing import runbook_parser
from ddoc.trust import learning

RESULTS = REPO / "bench" / "results" / "health_report.json"
RUNBOOK = """# Service {n} is slow

1. Look at the pods: `kubectl get pods -n svc{n}`
2. Read the logs: `kubectl logs deploy/svc{n} -n svc{n} --tail=200`
3. Restart it: `kubectl rollout restart deploy/svc{n} -n svc{n}`
4. Clear the cache: `redis-cli -n {n} FLUSHDB`
5. Check again: `kubectl get pods -n svc{n}`
"""
OUTCOMES = ("succeeded", "succeeded", "succeeded", "failed", "rolled_back")


def copy_rows(
    session: Session, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """COPY through psycopg: the fastest way to put a million rows in."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def populate(engine: Engine, tenant: str, count: int, runs: int) -> list[str]:
    parse = runbook_parser(None)
    ids = []
    for n in range(count):
        content = RUNBOOK.format(n=n)
        saved = runbooks.store(
            engine,
            tenant_id=tenant,
            content=content,
            fmt="markdown",
            parsed=parse(content, "markdown", f"svc{n}.md", None),
            source_path=f"svc{n}.md",
            actor="bench",
        )
        ids.append(saved.runbook.id)
    now = datetime.now(UTC)
    executions, steps, incidents = [], [], []
    for n, runbook_id in enumerate(ids):
        for r in range(runs):
            at = now - timedelta(hours=r + 1, minutes=n % 60)
            execution_id = f"ex_{uuid.uuid4().hex[:16]}"
            incident_id = f"in_{uuid.uuid4().hex[:16]}"
            status = OUTCOMES[(n + r) % len(OUTCOMES)]
            incidents.append(
                (incident_id, tenant, f"k{n}-{r}", "alertmanager", "resolved", f"svc{n} slow",
                 "attached", runbook_id, 1, execution_id, at, at, at + timedelta(minutes=9))
            )  # fmt: skip
            executions.append(
                (execution_id, tenant, incident_id, runbook_id, 1, "copilot", status, "bench",
                 True, at, at + timedelta(minutes=4))
            )  # fmt: skip
            for s in range(5):
                outcome = "skipped" if s == 3 and r % 3 else "succeeded"
                steps.append(
                    (execution_id, f"s{s + 1}", tenant, s, "command", f"step {s + 1}", outcome,
                     at + timedelta(seconds=10 * s), at + timedelta(seconds=10 * s + 3))
                )  # fmt: skip
    with Session(engine) as session:
        copy_rows(
            session,
            "incidents",
            ["id", "tenant_id", "dedup_key", "source", "status", "title", "match_status",
             "runbook_id", "runbook_version", "execution_id", "opened_at", "last_seen_at",
             "resolved_at"],
            incidents,
        )  # fmt: skip
        copy_rows(
            session,
            "executions",
            ["id", "tenant_id", "incident_id", "runbook_id", "runbook_version", "mode", "status",
             "environment", "workflow_started", "created_at", "finished_at"],
            executions,
        )  # fmt: skip
        copy_rows(
            session,
            "execution_steps",
            ["execution_id", "step_id", "tenant_id", "position", "kind", "text", "status",
             "started_at", "finished_at"],
            steps,
        )  # fmt: skip
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
    return ids


def timed(fn: Any, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def measure(engine: Engine, count: int, runs: int) -> dict[str, Any]:
    tenant = f"bench{count}"
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant)
        session.commit()
    started = time.perf_counter()
    ids = populate(engine, tenant, count, runs)
    load_seconds = time.perf_counter() - started

    def report() -> None:
        with Session(engine) as session:
            health = learning.health(session, tenant_id=tenant, days=60)
            assert health["totals"]["runbooks"] == count

    def one() -> None:
        with Session(engine) as session:
            runbook = runbooks.get(session, tenant_id=tenant, runbook_id=ids[0])
            stats = learning.runbook_report(session, tenant_id=tenant, runbook=runbook)
            assert stats["effectiveness"]["executions"] == min(runs, learning.DEFAULT_POLICY.window)

    def baseline() -> None:
        with Session(engine) as session:
            session.execute(
                text("SELECT count(*) FROM execution_steps WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()

    health_ms = timed(report, 5)
    scan_ms = timed(baseline, 5)
    return {
        "runbooks": count,
        "executions": count * runs,
        "step_rows": count * runs * 5,
        "populate_seconds": round(load_seconds, 1),
        "health_report_ms_p50": health_ms,
        "count_steps_scan_ms_p50": scan_ms,
        "health_vs_scan": round(health_ms / scan_ms, 1) if scan_ms else None,
        "runbook_stats_ms_p50": timed(one, 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runbooks", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    results = []
    with database() as engine:
        for count in args.runbooks:
            result = measure(engine, count, args.runs)
            print(json.dumps(result), flush=True)
            results.append(result)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"runs_per_runbook": args.runs, "sizes": results}, indent=2))


if __name__ == "__main__":
    main()
