"""The attach rule's thresholds against first deliveries on ../shared/corpus.

    .venv/bin/python -m bench.match_sweep [--report bench/results/match_sweep.md]

Ranks every labelled alert (renderings of bench/match_renderings.py) and every negative
(uncovered rules, and leave-one-out: the alert again with its own runbook archived) once, then
applies `ddoc.alerts.matching.decide` with each combination of attach threshold, margin over the next
candidate, full-text agreement and title words: how many are attached right, attached wrong,
and how many negatives would be attached. Explicit matches (alert names) are left out: the
thresholds do not apply to them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from bench.harness import REPO, add_tenant, corpus_documents
from bench.harness import database as bench_database
from bench.match_renderings import (
    FIRST,
    RENDERINGS,
    TENANT,
    load_rules,
    runbook_ids,
    set_archived,
)
from ddoc.alerts.matching import Matcher, Ranked, Thresholds, decide
from ddoc.alerts.sources import NormalizedAlert
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.ingest.sync import import_documents


@dataclass
class Case:
    rendering: str
    alert: NormalizedAlert
    truth: str | None  # None: a negative
    ranked: list[Ranked]


def collect(matcher: Matcher, session: Session, engine, ids) -> list[Case]:  # type: ignore[no-untyped-def]
    rules = load_rules()
    cases: list[Case] = []
    seq = 0
    for name, render in RENDERINGS.items():
        for rule in rules:
            seq += 1
            alert = render(rule, FIRST, seq)
            if matcher.match(session, tenant_id=TENANT, alert=alert, methods="explicit").candidates:
                continue
            truth = ids[rule.runbook_path] if rule.runbook_path else None
            ranked = matcher.ranked(session, tenant_id=TENANT, alert=alert)
            cases.append(Case(name, alert, truth, ranked))
            if truth is not None:  # leave-one-out
                set_archived(engine, truth, True)
                session.expire_all()
                ranked = matcher.ranked(session, tenant_id=TENANT, alert=alert)
                set_archived(engine, truth, False)
                cases.append(Case(name, alert, None, ranked))
    return cases


def evaluate(
    cases: list[Case], thresholds: Thresholds
) -> dict[str, tuple[int, int, int, int, int]]:
    out: dict[str, list[int]] = {}
    for case in cases:
        counts = out.setdefault(case.rendering, [0, 0, 0, 0, 0])  # right wrong pos neg-att neg
        result = decide(case.alert, case.ranked, thresholds)
        if case.truth is None:
            counts[4] += 1
            counts[3] += result.attached is not None
        else:
            counts[2] += 1
            if result.attached is not None:
                counts[0 if result.attached.runbook_id == case.truth else 1] += 1
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--report", type=Path, default=REPO / "bench" / "results" / "match_sweep.md"
    )
    args = parser.parse_args()
    embedder = default_embedder()
    embedder.warm_up()
    # Titles are counted per tenant every few minutes: here, at once (leave-one-out archives).
    matcher = Matcher(embedder)
    with bench_database() as engine:
        add_tenant(engine, TENANT)
        import_documents(
            engine, tenant_id=TENANT, documents=corpus_documents(), actor="bench", embedder=embedder
        )
        ids = runbook_ids(engine)
        with Session(engine) as session:
            cases = collect(matcher, session, engine, ids)
    lines = [
        "| attach | margin | full-text agrees | title words | right | wrong | negatives attached |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = []
    for attach, margin, fts, title in itertools.product(
        (0.55, 0.6, 0.65, 0.7, 0.75, 0.78),
        (0.0, 0.02, 0.04, 0.06, 0.08, 0.10),
        (True, False),
        (True, False),
    ):
        t = Thresholds(
            attach=attach, margin=margin, require_fulltext_agreement=fts, require_title_words=title
        )
        per = evaluate(cases, t)
        right = sum(v[0] for v in per.values())
        wrong = sum(v[1] for v in per.values())
        pos = sum(v[2] for v in per.values())
        neg_att = sum(v[3] for v in per.values())
        neg = sum(v[4] for v in per.values())
        rows.append((attach, margin, fts, title, right / pos, wrong / pos, neg_att / neg, per))
    for attach, margin, fts, title, right, wrong, neg_att, per in rows:
        detail = "; ".join(f"{k}: {v[0]}/{v[2]} right, {v[3]}/{v[4]} neg" for k, v in per.items())
        lines.append(
            f"| {attach} | {margin} | {fts} | {title} | {right:.1%} | {wrong:.1%} | {neg_att:.1%} |"
            f" <!-- {detail} -->"
        )
    text = "# Attach rule sweep\n\n" + "\n".join(lines) + "\n"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
