"""Matching quality on ../shared/corpus: top-1/top-3 per alert rendering and retrieval method,
and how often an alert that no runbook covers would be attached anyway.

    .venv/bin/python -m bench.match_quality [--report bench/results/match_quality.md]

Labelled set: every rule of alert-rules.jsonl whose runbook_url points at a corpus runbook.
Renderings of each alert:
  alertmanager  an Alertmanager v4 alert with alertname, summary and description;
  pagerduty     a PagerDuty incident whose title is the summary (no alertname);
  description   a generic alert whose title is the description alone.
Negatives: rules with no runbook in the corpus, and every positive again with its own runbook
archived (leave-one-out), so nothing in the index is right.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.harness import (
    REPO,
    SAMPLE_LABELS,
    AlertRule,
    add_tenant,
    alert_rules,
    corpus_documents,
    database,
)
from ddoc.alerts.matching import Matcher
from ddoc.alerts.sources import (
    AlertmanagerWebhook,
    GenericAlert,
    NormalizedAlert,
    PagerDutyWebhook,
    normalize_alertmanager,
    normalize_generic,
    normalize_pagerduty,
)
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.ingest.sync import import_documents

TENANT = "bench"
METHODS = ("explicit", "fulltext", "vector", "all")  # all: explicit if any, else fused


def render_alertmanager(rule: AlertRule) -> NormalizedAlert:
    body = AlertmanagerWebhook.model_validate(
        {
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": rule.alertname,
                        "severity": rule.severity,
                        "namespace": SAMPLE_LABELS["namespace"],
                    },
                    "annotations": {"summary": rule.summary, "description": rule.description},
                    "fingerprint": rule.alertname.lower(),
                }
            ]
        }
    )
    return normalize_alertmanager(body)[0]


def render_pagerduty(rule: AlertRule) -> NormalizedAlert:
    body = PagerDutyWebhook.model_validate(
        {
            "event": {
                "id": "01" + rule.alertname,
                "event_type": "incident.triggered",
                "data": {
                    "id": "Q" + rule.alertname[:10],
                    "title": rule.summary or rule.description,
                    "urgency": "high",
                },
            }
        }
    )
    return normalize_pagerduty(body)[0]


def render_description(rule: AlertRule) -> NormalizedAlert:
    return normalize_generic(GenericAlert(title=rule.description or rule.summary or "alert"))[0]


RENDERINGS: dict[str, Callable[[AlertRule], NormalizedAlert]] = {
    "alertmanager": render_alertmanager,
    "pagerduty": render_pagerduty,
    "description": render_description,
}


def runbook_ids(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT source_path, id FROM runbooks")).all()
    return {row.source_path: row.id for row in rows}


def set_archived(engine: Engine, runbook_id: str, archived: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE runbooks SET archived_at = CASE WHEN :a THEN now() END WHERE id = :id"),
            {"a": archived, "id": runbook_id},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report", type=Path, default=REPO / "bench" / "results" / "match_quality.md"
    )
    args = parser.parse_args()
    rules = alert_rules()
    positives = [r for r in rules if r.runbook_path]
    uncovered = [r for r in rules if not r.runbook_path]
    embedder = default_embedder()
    embedder.warm_up()
    matcher = Matcher(embedder)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line)
        lines.append(line)

    with database() as engine:
        add_tenant(engine, TENANT)
        documents = corpus_documents()
        started = time.perf_counter()
        report = import_documents(
            engine, tenant_id=TENANT, documents=documents, actor="bench", embedder=embedder
        )
        say(
            f"indexed {len(documents)} corpus runbooks in {time.perf_counter() - started:.1f}s "
            f"({report.count('failed')} failed)"
        )
        ids = runbook_ids(engine)
        say(
            f"labelled alerts: {len(positives)} (rules whose runbook is in the corpus); "
            f"uncovered rules: {len(uncovered)}"
        )
        say()
        say("| rendering | method | top-1 | top-3 |")
        say("| --- | --- | --- | --- |")
        confidences: dict[str, list[float]] = {"positive": [], "negative": []}
        decisions: dict[str, dict[str, int]] = {}
        with Session(engine) as session:
            for name, render in RENDERINGS.items():
                for method in METHODS:
                    top1 = top3 = 0
                    for rule in positives:
                        truth = ids[rule.runbook_path or ""]
                        alert = render(rule)
                        explicit = matcher.match(
                            session, tenant_id=TENANT, alert=alert, methods="explicit"
                        )
                        if method == "explicit" or (method == "all" and explicit.candidates):
                            ranked = [c.runbook_id for c in explicit.candidates]
                        else:
                            ranked = [
                                c.runbook_id
                                for _, c in matcher.rank(
                                    session, tenant_id=TENANT, alert=alert, methods=method
                                )
                            ]
                        top1 += bool(ranked[:1] == [truth])
                        top3 += truth in ranked[:3]
                    say(
                        f"| {name} | {method} | {top1 / len(positives):.1%} | {top3 / len(positives):.1%} |"
                    )
                # The product's decision (explicit, then hybrid with thresholds).
                counts = {"right": 0, "wrong": 0, "suggested": 0, "none": 0}
                for rule in positives:
                    alert = render(rule)
                    result = matcher.match(session, tenant_id=TENANT, alert=alert)
                    ranked = matcher.rank(session, tenant_id=TENANT, alert=alert)
                    if ranked:
                        confidences["positive"].append(ranked[0][0])
                    if result.attached is None:
                        counts["suggested" if result.candidates else "none"] += 1
                    elif result.attached.runbook_id == ids[rule.runbook_path or ""]:
                        counts["right"] += 1
                    else:
                        counts["wrong"] += 1
                decisions[name] = counts
            negatives = {"attached": 0, "suggested": 0, "none": 0, "total": 0}
            for render in RENDERINGS.values():
                for rule in uncovered:
                    _count_negative(matcher, session, render(rule), negatives, confidences)
                for rule in positives:
                    truth = ids[rule.runbook_path or ""]
                    set_archived(engine, truth, True)
                    session.expire_all()
                    _count_negative(matcher, session, render(rule), negatives, confidences)
                    set_archived(engine, truth, False)
        say()
        say("Product decision per rendering (explicit, then hybrid with the default thresholds):")
        say()
        say("| rendering | attached right | attached wrong | suggested | no runbook |")
        say("| --- | --- | --- | --- | --- |")
        for name, c in decisions.items():
            total = len(positives)
            say(
                f"| {name} | {c['right'] / total:.1%} | {c['wrong'] / total:.1%} | "
                f"{c['suggested'] / total:.1%} | {c['none'] / total:.1%} |"
            )
        say()
        total = negatives["total"]
        say(
            f"Negatives ({total}: uncovered rules and leave-one-out, all renderings): "
            f"attached {negatives['attached'] / total:.1%}, suggested {negatives['suggested'] / total:.1%}, "
            f"no runbook {negatives['none'] / total:.1%}"
        )
        say()
        for kind, values in confidences.items():
            if values:
                q = statistics.quantiles(values, n=20)
                say(
                    f"top confidence, {kind}: p5 {q[0]:.3f}  p25 {q[4]:.3f}  median {statistics.median(values):.3f}  "
                    f"p75 {q[14]:.3f}  p95 {q[18]:.3f}  max {max(values):.3f}"
                )
        thresholds = matcher.thresholds
        say()
        say(
            f"thresholds: attach {thresholds.attach}, suggest {thresholds.suggest}, margin {thresholds.margin}"
        )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("# Match quality\n\n" + "\n".join(lines) + "\n")
    return 0


def _count_negative(
    matcher: Matcher,
    session: Session,
    alert: NormalizedAlert,
    negatives: dict[str, int],
    confidences: dict[str, list[float]],
) -> None:
    result = matcher.match(session, tenant_id=TENANT, alert=alert)
    ranked = matcher.rank(session, tenant_id=TENANT, alert=alert)
    if ranked:
        confidences["negative"].append(ranked[0][0])
    negatives["total"] += 1
    if result.attached is not None:
        negatives["attached"] += 1
    elif result.candidates:
        negatives["suggested"] += 1
    else:
        negatives["none"] += 1


if __name__ == "__main__":
    sys.exit(main())
