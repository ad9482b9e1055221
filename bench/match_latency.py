"""Match latency at 100, 1,000 and 10,000 runbooks in one tenant.

    .venv/bin/python -m bench.match_latency [--sizes 100,1000,10000] [--queries 200]

The index is filled with the corpus runbooks plus synthetic variants of them (titles, alert
names and summaries recombined), embedded with the real model and stored in pgvector (HNSW).
Each query is a PagerDuty-style alert with no alertname, so every match runs full-text search
and vector search: the slow path. Latency is `Matcher.match` in-process, embedding the alert
included, measured after a warm-up; median and p99 over the queries, per index size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from sqlmodel import Session

from bench.harness import add_tenant, alert_rules, corpus_documents, database
from bench.match_quality import render_pagerduty
from ddoc.alerts.matching import Matcher
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Runbook, RunbookVersion
from ddoc.runbooks import search
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import parse_runbook

TENANT = "bench"


def synthetic(base: list[ParsedRunbook], count: int, rng: random.Random) -> list[ParsedRunbook]:
    words = [w for p in base for w in p.summary.split() if w.isalpha() and len(w) > 3]
    out = []
    for i in range(count):
        template = base[i % len(base)]
        extra = " ".join(rng.sample(words, 6))
        out.append(
            ParsedRunbook(
                title=f"{template.title} ({extra.split()[0]} variant {i})",
                summary=f"{template.summary[:300]} {extra}",
                steps=template.steps,
                triggers=template.triggers.__class__(
                    alerts=[f"{a}V{i}" for a in template.triggers.alerts],
                    services=template.triggers.services,
                ),
            )
        )
    return out


def fill(engine: object, parsed: list[ParsedRunbook], embedder: object) -> None:
    batch = 256
    for start in range(0, len(parsed), batch):
        chunk = parsed[start : start + batch]
        embeddings = runbooks.embed(embedder, chunk)  # type: ignore[arg-type]
        with Session(engine) as session:  # type: ignore[call-overload]
            for doc, embedding in zip(chunk, embeddings, strict=True):
                runbook = Runbook(
                    id=new_id("rb"),
                    tenant_id=TENANT,
                    title=doc.title,
                    current_version=1,
                    alert_names=doc.triggers.alerts,
                    services=doc.triggers.services,
                )
                session.add(runbook)
                session.flush()
                session.add(
                    RunbookVersion(
                        id=new_id("rbv"),
                        tenant_id=TENANT,
                        runbook_id=runbook.id,
                        version=1,
                        format="markdown",
                        content=doc.title,
                        content_sha256=runbook.id,
                        parsed=doc.to_dict(),
                    )
                )
                assert embedding is not None
                search.index_runbook(
                    session,
                    runbook_id=runbook.id,
                    tenant_id=TENANT,
                    version=1,
                    parsed=doc,
                    embedding=embedding.vector,
                    model=embedding.model,
                )
            session.commit()
        print(f"  indexed {start + len(chunk)}/{len(parsed)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng = random.Random(42)
    embedder = default_embedder()
    embedder.warm_up()
    matcher = Matcher(embedder)
    base = [
        parse_runbook(d.content, d.format, source_path=d.source_path) for d in corpus_documents()
    ]
    rules = [r for r in alert_rules() if r.summary]
    queries = [render_pagerduty(rng.choice(rules)) for _ in range(args.queries)]
    print("| runbooks | match p50 | match p99 | queries |")
    print("| --- | --- | --- | --- |")
    with database() as engine:
        add_tenant(engine, TENANT)
        indexed = 0
        for size in sizes:
            needed = size - indexed
            batch = base[:needed] if indexed == 0 else []
            batch += synthetic(base, needed - len(batch), rng)
            fill(engine, batch, embedder)
            indexed = size
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
            latencies = []
            with Session(engine) as session:
                for alert in queries[:20]:
                    matcher.match(session, tenant_id=TENANT, alert=alert)
                for alert in queries:
                    started = time.perf_counter()
                    matcher.match(session, tenant_id=TENANT, alert=alert)
                    latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            print(
                f"| {size} | {statistics.median(latencies):.1f} ms | {p99:.1f} ms | {len(latencies)} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
