"""The audit trail's cost: appending one event, and verifying a chain of 100,000.

    PYTHONPATH=. .venv/bin/python bench/audit_chain.py [--events 100000] [--appends 2000]

Embedded PostgreSQL. (a) `audit.append`, one event per transaction (as the product writes
them: advisory lock, previous hash, insert), median and p99 per event, beside a plain insert of
the same row without the chain in the same run; (b) a chain of N events is built (hashes
computed exactly as `append` does, inserted in batches) and `audit.verify` walks it.
Writes bench/results/audit_chain.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.harness import REPO, database
from ddoc.platform import audit, tenancy

RESULTS = REPO / "bench" / "results" / "audit_chain.json"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def appends(engine: Engine, count: int) -> dict[str, Any]:
    chained: list[float] = []
    plain: list[float] = []
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id="bench-append")
        session.execute(text("CREATE TABLE IF NOT EXISTS plain_events (LIKE audit_events)"))
        session.commit()
    for n in range(count):
        data = {"exit_code": 0, "command": f"kubectl rollout restart deploy/api-{n}"}
        with Session(engine) as session:
            started = time.perf_counter()
            audit.append(
                session,
                tenant_id="bench-append",
                actor="user:ana",
                action="step.succeeded",
                subject=f"ex-1/s{n}",
                data=data,
            )
            session.commit()
            chained.append((time.perf_counter() - started) * 1000)
        with Session(engine) as session:
            started = time.perf_counter()
            session.execute(
                text(
                    "INSERT INTO plain_events (tenant_id, seq, at, actor, action, subject, data,"
                    " prev_hash, hash) VALUES ('bench-append', :seq, clock_timestamp(),"
                    " 'user:ana', 'step.succeeded', :subject, CAST(:data AS jsonb), '', '')"
                ),
                {"seq": n, "subject": f"ex-1/s{n}", "data": json.dumps(data)},
            )
            session.commit()
            plain.append((time.perf_counter() - started) * 1000)
    return {
        "appends": count,
        "append_ms": {
            "p50": round(statistics.median(chained), 3),
            "p99": round(percentile(chained, 99), 3),
        },
        "plain_insert_ms": {
            "p50": round(statistics.median(plain), 3),
            "p99": round(percentile(plain, 99), 3),
        },
        "ratio_p50": round(statistics.median(chained) / statistics.median(plain), 2),
    }


def build_chain(engine: Engine, tenant_id: str, count: int, batch: int = 5000) -> float:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        session.commit()
    started = time.perf_counter()
    prev = audit.GENESIS_HASH
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for seq in range(1, count + 1):
        at = base + timedelta(milliseconds=seq)
        data = {"exit_code": 0, "command": f"echo {seq}", "approved_by": ["user:ana"]}
        digest = audit.event_hash(
            prev_hash=prev,
            tenant_id=tenant_id,
            seq=seq,
            at=at,
            actor="user:ana",
            action="step.succeeded",
            subject=f"ex/s{seq}",
            data=data,
        )
        rows.append(
            {
                "tenant": tenant_id,
                "seq": seq,
                "at": at,
                "subject": f"ex/s{seq}",
                "data": json.dumps(data),
                "prev": prev,
                "hash": digest,
            }
        )
        prev = digest
        if len(rows) == batch or seq == count:
            with Session(engine) as session:
                session.execute(
                    text(
                        "INSERT INTO audit_events (tenant_id, seq, at, actor, action, subject,"
                        " data, prev_hash, hash) VALUES (:tenant, :seq, :at, 'user:ana',"
                        " 'step.succeeded', :subject, CAST(:data AS jsonb), :prev, :hash)"
                    ),
                    rows,
                )
                session.commit()
            rows = []
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    with database() as engine:
        found = appends(engine, args.appends)
        built = build_chain(engine, "bench-verify", args.events)
        runs = []
        for _ in range(3):
            with Session(engine) as session:
                started = time.perf_counter()
                result = audit.verify(session, tenant_id="bench-verify")
                runs.append(time.perf_counter() - started)
            assert result.ok and result.checked == args.events, result
    found.update(
        {
            "verify_events": args.events,
            "verify_seconds_median_of_3": round(statistics.median(runs), 2),
            "verify_events_per_second": round(args.events / statistics.median(runs)),
            "build_seconds": round(built, 1),
        }
    )
    print(json.dumps(found, indent=2))
    Path(args.output).write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
