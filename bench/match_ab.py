"""Match time of this tree's matcher against another commit's, interleaved in one run.

    .venv/bin/python -m bench.match_ab --baseline 160216e [--rounds 3]

`ddoc/alerts/matching.py` and `ddoc/runbooks/search.py` of the baseline commit (read with `git show`) are
loaded beside this tree's, both matchers run against one database holding the corpus, and every
title-only and description-only delivery of bench/match_renderings.py is matched by both in
alternating order, so noise from the machine hits both alike. Prints p50 and p99 of each.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlmodel import Session

from bench.harness import REPO, add_tenant, corpus_documents, database
from bench.match_renderings import FIRST, RENDERINGS, TENANT, load_rules
from ddoc.alerts.matching import Matcher
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.ingest.sync import import_documents


def _load(name: str, source: str, folder: Path) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def baseline_matcher(rev: str, embedder: Any, folder: Path) -> Any:
    def show(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout

    search = _load("ddoc_baseline_search", show("ddoc/runbooks/search.py"), folder)
    matching = _load("ddoc_baseline_matching", show("ddoc/alerts/matching.py"), folder)
    matching.search = search  # type: ignore[attr-defined]
    return matching.Matcher(embedder)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a commit of this repository")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedder = default_embedder()
    embedder.warm_up()
    rules = load_rules()
    with tempfile.TemporaryDirectory() as tmp, database() as engine:
        matchers = {"this tree": Matcher(embedder), args.baseline: None}
        matchers[args.baseline] = baseline_matcher(args.baseline, embedder, Path(tmp))
        add_tenant(engine, TENANT)
        import_documents(
            engine, tenant_id=TENANT, documents=corpus_documents(), actor="bench", embedder=embedder
        )
        alerts = [
            render(rule, FIRST, seq)
            for name, render in RENDERINGS.items()
            if name != "alertname"
            for seq, rule in enumerate(rules)
        ]
        times: dict[str, list[float]] = {label: [] for label in matchers}
        with Session(engine) as session:
            for alert in alerts[:30]:  # warm-up
                for matcher in matchers.values():
                    matcher.match(session, tenant_id=TENANT, alert=alert)
            for round_ in range(args.rounds):
                for i, alert in enumerate(alerts):
                    order = list(matchers.items())
                    if (i + round_) % 2:
                        order.reverse()
                    for label, matcher in order:
                        started = time.perf_counter()
                        matcher.match(session, tenant_id=TENANT, alert=alert)
                        times[label].append(time.perf_counter() - started)
    for label, values in times.items():
        p99 = statistics.quantiles(values, n=100)[98]
        print(
            f"{label}: {len(values)} matches, p50 {statistics.median(values) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
