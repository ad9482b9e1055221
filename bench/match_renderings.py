"""Matching decisions per alert rendering, and recurrences after picks, on ../shared/corpus.

    .venv/bin/python -m bench.match_renderings [--report bench/results/match_renderings.md]
        [--json bench/results/match_renderings.json]

The labelled set is bench/match_quality.py's: every rule of alert-rules.jsonl whose
`runbook_url` points at a corpus runbook. Each alert is rendered as the sources deliver it:

  alertname         Alertmanager: alertname and the labels its templates use, summary and
                    description annotations;
  title (PagerDuty) a PagerDuty incident titled with the summary, no alertname, no labels;
  title (OpsGenie)  an OpsGenie alert: message = summary, entity = the host or node, tags;
                    no alertname, no description;
  description       a generic alert whose title is the description alone.

First delivery: the product's decision (`Matcher.match`) is attached right / attached wrong /
suggested with the right runbook among the (at most 3) suggestions / suggested without it /
no runbook. Negatives: the rules no corpus runbook covers, and every labelled alert again with
its own runbook archived (leave-one-out): attached (always wrong) / suggested / no runbook.

Recurrences: after the first deliveries, where the right runbook was not attached a responder
picks it (the learned trigger `ddoc.alerts.intake.pick_runbook` records: `learned.record` for the
alert's fingerprint when it is specific). Then every alert is delivered again three times with
other values in its templates and labels (pod names, hosts, IPs, numbers, cluster; "values"),
and once more with other namespaces, deployments and mount points too ("names", a harder case:
those are words, not masked by the fingerprint). Negatives are delivered again after the picks:
none may be attached.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.harness import CORPUS, REPO, SAMPLE_LABELS, add_tenant, alert_rules, corpus_documents
from bench.harness import database as bench_database
from ddoc.alerts import fingerprints, learned
from ddoc.alerts.matching import Matcher, MatchResult
from ddoc.alerts.sources import (
    AlertmanagerWebhook,
    GenericAlert,
    NormalizedAlert,
    OpsgenieWebhook,
    PagerDutyWebhook,
    normalize_alertmanager,
    normalize_generic,
    normalize_opsgenie,
    normalize_pagerduty,
)
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.ingest.sync import import_documents

TENANT = "bench"


@dataclass(frozen=True)
class Occurrence:
    """The values one delivery of an alert carries."""

    name: str
    labels: dict[str, str]
    value: str


FIRST = Occurrence("first", dict(SAMPLE_LABELS), "42")
# Recurrences: what the fingerprint masks changes (pods, hosts, IPs, numbers, clusters).
RECURRENCES = [
    Occurrence(
        "values-1",
        {
            **SAMPLE_LABELS,
            "pod": "api-5f6b7c8d9-k2m4p",
            "node": "worker-11",
            "instance": "10.0.7.41:9100",
            "device": "nvme0n1",
            "persistentvolumeclaim": "data-postgres-2",
            "cluster": "prod-us-2",
        },
        "17",
    ),
    Occurrence(
        "values-2",
        {
            **SAMPLE_LABELS,
            "pod": "api-6c8d9f7b5-q7w8r",
            "node": "ip-10-0-5-22.ec2.internal",
            "instance": "192.168.4.9:9100",
            "device": "sdb3",
            "persistentvolumeclaim": "data-postgres-1",
            "cluster": "prod-ap-3",
        },
        "93.4",
    ),
    Occurrence(
        "values-3",
        {
            **SAMPLE_LABELS,
            "pod": "api-7d9f8c6b5-z9t2n",
            "node": "worker-4",
            "instance": "10.12.0.8:9100",
            "device": "xvda1",
            "persistentvolumeclaim": "data-postgres-7",
            "cluster": "staging-2",
        },
        "250",
    ),
]
# A harder recurrence: names that are words change as well (namespace, workload, mount point).
NAMES = Occurrence(
    "names",
    {
        **SAMPLE_LABELS,
        "namespace": "checkout",
        "pod": "cart-6c8d9f7b5-q7w8r",
        "container": "cart",
        "node": "worker-9",
        "instance": "10.0.9.12:9100",
        "job": "kube-state-metrics",
        "service": "cart",
        "device": "nvme1n1",
        "mountpoint": "/data",
        "persistentvolumeclaim": "orders-db-0",
        "deployment": "cart",
        "statefulset": "kafka",
        "daemonset": "node-agent",
        "cluster": "prod-us-2",
    },
    "7",
)

_LABEL = re.compile(r"\{\{-?\s*\$labels\.(\w+)\s*-?\}\}")
_WITH = re.compile(r"\{\{-?\s*with\s+\$labels\.(\w+)\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}", re.S)
_DOT = re.compile(r"\{\{-?\s*\.\s*-?\}\}")
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.S)


@dataclass(frozen=True)
class Rule:
    alertname: str
    severity: str
    summary: str  # templates
    description: str
    runbook_path: str | None

    def used_labels(self) -> list[str]:
        found = _LABEL.findall(self.summary + " " + self.description)
        found += [m[0] for m in _WITH.findall(self.summary + " " + self.description)]
        return list(dict.fromkeys(found))


def load_rules() -> list[Rule]:
    rows = [json.loads(line) for line in (CORPUS / "alert-rules.jsonl").read_text().splitlines()]
    resolved = alert_rules()  # the runbook of each rule, as bench/match_quality.py resolves it
    assert [r.alertname for r in resolved] == [row["alertname"] for row in rows]
    return [
        Rule(
            alertname=row["alertname"],
            severity=row.get("severity") or "warning",
            summary=row.get("summary") or "",
            description=row.get("description") or "",
            runbook_path=rule.runbook_path,
        )
        for row, rule in zip(rows, resolved, strict=True)
    ]


def render(template: str, occ: Occurrence) -> str:
    """A Prometheus template with this occurrence's labels and value."""

    def label(name: str) -> str:
        return occ.labels.get(name, name)

    value = _WITH.sub(lambda m: _DOT.sub(label(m[1]), m[2]), template)
    value = _LABEL.sub(lambda m: label(m[1]), value)
    value = _TEMPLATE.sub(occ.value, value)
    return " ".join(value.split())


def _labels(rule: Rule, occ: Occurrence) -> dict[str, str]:
    labels = {"namespace": occ.labels["namespace"]}
    for name in rule.used_labels():
        labels[name] = occ.labels.get(name, name)
    return labels


def render_alertname(rule: Rule, occ: Occurrence, seq: int) -> NormalizedAlert:
    labels = {"alertname": rule.alertname, "severity": rule.severity, **_labels(rule, occ)}
    body = AlertmanagerWebhook.model_validate(
        {
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": render(rule.summary, occ),
                        "description": render(rule.description, occ),
                    },
                    "fingerprint": f"{rule.alertname.lower()}-{seq}",
                }
            ]
        }
    )
    return normalize_alertmanager(body)[0]


def render_pagerduty(rule: Rule, occ: Occurrence, seq: int) -> NormalizedAlert:
    title = render(rule.summary, occ) or render(rule.description, occ)
    body = PagerDutyWebhook.model_validate(
        {
            "event": {
                "id": f"01{rule.alertname}{seq}",
                "event_type": "incident.triggered",
                "data": {"id": f"Q{rule.alertname[:10]}{seq}", "title": title, "urgency": "high"},
            }
        }
    )
    return normalize_pagerduty(body)[0]


def render_opsgenie(rule: Rule, occ: Occurrence, seq: int) -> NormalizedAlert:
    title = render(rule.summary, occ) or render(rule.description, occ)
    labels = _labels(rule, occ)
    host = labels.get("node") or labels.get("instance", "").split(":")[0] or None
    body = OpsgenieWebhook.model_validate(
        {
            "action": "Create",
            "alert": {
                "alertId": f"og-{rule.alertname}-{seq}",
                "message": title,
                "entity": host,
                "tags": [f"severity:{rule.severity}", f"namespace:{labels['namespace']}"],
            },
        }
    )
    return normalize_opsgenie(body)[0]


def render_description(rule: Rule, occ: Occurrence, seq: int) -> NormalizedAlert:
    title = render(rule.description, occ) or render(rule.summary, occ) or "alert"
    return normalize_generic(GenericAlert(title=title, dedup_key=f"{rule.alertname}-{seq}"))[0]


Renderer = Callable[[Rule, Occurrence, int], NormalizedAlert]
RENDERINGS: dict[str, Renderer] = {
    "alertname": render_alertname,
    "title (PagerDuty)": render_pagerduty,
    "title (OpsGenie)": render_opsgenie,
    "description": render_description,
}
OUTCOMES = ("right", "wrong", "suggested_hit", "suggested_miss", "none")
NEGATIVE_OUTCOMES = ("attached", "suggested", "none")


def outcome(result: MatchResult, truth: str) -> str:
    if result.attached is not None:
        return "right" if result.attached.runbook_id == truth else "wrong"
    if result.candidates:
        hit = truth in [c.runbook_id for c in result.candidates[:3]]
        return "suggested_hit" if hit else "suggested_miss"
    return "none"


def negative_outcome(result: MatchResult) -> str:
    if result.attached is not None:
        return "attached"
    return "suggested" if result.candidates else "none"


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


class Run:
    def __init__(self, engine: Engine, matcher: Matcher, ids: dict[str, str]) -> None:
        self.engine = engine
        self.matcher = matcher
        self.ids = ids
        self.timings: list[float] = []
        self.seq = 0

    def match(self, session: Session, alert: NormalizedAlert) -> MatchResult:
        started = time.perf_counter()
        result = self.matcher.match(session, tenant_id=TENANT, alert=alert)
        self.timings.append(time.perf_counter() - started)
        return result

    def deliver(self, render: Renderer, rule: Rule, occ: Occurrence) -> NormalizedAlert:
        self.seq += 1
        return render(rule, occ, self.seq)

    def positives(
        self, session: Session, render: Renderer, rules: list[Rule], occ: Occurrence
    ) -> tuple[Counter[str], list[tuple[Rule, NormalizedAlert, str]]]:
        counts: Counter[str] = Counter()
        details = []
        for rule in rules:
            alert = self.deliver(render, rule, occ)
            result = self.match(session, alert)
            got = outcome(result, self.ids[rule.runbook_path or ""])
            counts[got] += 1
            if got == "wrong" and result.attached and result.attached.learned_trigger_id:
                counts["wrong_learned"] += 1
            details.append((rule, alert, got))
        return counts, details

    def negatives(
        self,
        session: Session,
        render: Renderer,
        uncovered: list[Rule],
        positives: list[Rule],
        occ: Occurrence,
    ) -> tuple[Counter[str], list[str]]:
        counts: Counter[str] = Counter()
        attached: list[str] = []
        for rule in uncovered:
            result = self.match(session, self.deliver(render, rule, occ))
            self._count_negative(counts, result)
            if result.attached is not None:
                attached.append(f"{rule.alertname} → {result.attached.source_path}")
        for rule in positives:
            truth = self.ids[rule.runbook_path or ""]
            set_archived(self.engine, truth, True)
            session.expire_all()
            result = self.match(session, self.deliver(render, rule, occ))
            set_archived(self.engine, truth, False)
            self._count_negative(counts, result)
            if result.attached is not None:
                attached.append(
                    f"{rule.alertname} (own runbook archived) → {result.attached.source_path}"
                )
        session.expire_all()
        return counts, attached

    @staticmethod
    def _count_negative(counts: Counter[str], result: MatchResult) -> None:
        counts[negative_outcome(result)] += 1
        if result.attached is not None and result.attached.learned_trigger_id:
            counts["attached_learned"] += 1

    def pick(self, session: Session, alert: NormalizedAlert, runbook_id: str) -> bool:
        """What a responder's pick records (ddoc.alerts.intake.pick_runbook)."""
        fingerprint = fingerprints.of_alert(alert)
        if not fingerprint.specific:
            return False
        learned.record(
            session,
            tenant_id=TENANT,
            fingerprint=fingerprint,
            runbook_id=runbook_id,
            incident_id=None,
            actor="bench",
            actor_name="bench",
        )
        return True


def rates(counts: Counter[str], keys: tuple[str, ...]) -> dict[str, float]:
    n = sum(counts[k] for k in keys)
    extra = {k: counts[k] / (n or 1) for k in ("wrong_learned", "attached_learned")}
    return {k: counts[k] / (n or 1) for k in keys} | extra | {"total": n}


def ambiguous(rules: list[Rule], render: Renderer) -> set[str]:
    """Alerts whose fingerprint is also another runbook's alert's (the same title, say): no
    learned trigger can tell them apart."""
    runbooks_of: dict[str, set[str | None]] = {}
    for rule in rules:
        digest = fingerprints.of_alert(render(rule, FIRST, 0)).digest
        runbooks_of.setdefault(digest, set()).add(rule.runbook_path)
    return {
        rule.alertname
        for rule in rules
        if len(runbooks_of[fingerprints.of_alert(render(rule, FIRST, 0)).digest]) > 1
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--report", type=Path, default=REPO / "bench" / "results" / "match_renderings.md"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--label", default="", help="a name for this run in the report")
    args = parser.parse_args()
    rules = load_rules()
    positives = [r for r in rules if r.runbook_path]
    uncovered = [r for r in rules if not r.runbook_path]
    embedder = default_embedder()
    embedder.warm_up()
    matcher = Matcher(embedder)
    lines: list[str] = []
    data: dict[str, Any] = {"label": args.label, "first": {}, "negatives": {}, "recurrence": {}}

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    with bench_database() as engine:
        add_tenant(engine, TENANT)
        documents = corpus_documents()
        import_documents(
            engine, tenant_id=TENANT, documents=documents, actor="bench", embedder=embedder
        )
        ids = runbook_ids(engine)
        run = Run(engine, matcher, ids)
        say(
            f"{len(documents)} runbooks; {len(positives)} labelled alerts, {len(uncovered)} uncovered"
        )
        t = matcher.thresholds
        say(f"thresholds: attach {t.attach}, suggest {t.suggest}, margin {t.margin}")
        say()
        firsts: dict[str, list[tuple[Rule, NormalizedAlert, str]]] = {}
        with Session(engine) as session:
            say("First delivery (share of the labelled alerts):")
            say()
            say(
                "| rendering | attached right | attached wrong | suggested, right in top 3 "
                "| suggested, right not offered | no runbook |"
            )
            say("| --- | --- | --- | --- | --- | --- |")
            run.timings.clear()
            for name, render in RENDERINGS.items():
                counts, firsts[name] = run.positives(session, render, positives, FIRST)
                r = rates(counts, OUTCOMES)
                data["first"][name] = r
                say(
                    f"| {name} | {r['right']:.1%} | {r['wrong']:.1%} | {r['suggested_hit']:.1%}"
                    f" | {r['suggested_miss']:.1%} | {r['none']:.1%} |"
                )
            data["first_match_ms_median"] = statistics.median(run.timings) * 1000
            say()
            say(f"median match time, first deliveries: {data['first_match_ms_median']:.1f} ms")
            say()
            say("Negatives, first delivery (uncovered rules + leave-one-out):")
            say()
            say("| rendering | attached (wrong) | suggested | no runbook | n |")
            say("| --- | --- | --- | --- | --- |")
            wrongly: list[str] = []
            for name, render in RENDERINGS.items():
                counts, attached = run.negatives(session, render, uncovered, positives, FIRST)
                wrongly += [f"{name}: {a}" for a in attached]
                r = rates(counts, NEGATIVE_OUTCOMES)
                data["negatives"][name] = r
                say(
                    f"| {name} | {r['attached']:.1%} | {r['suggested']:.1%} | {r['none']:.1%}"
                    f" | {r['total']} |"
                )
            for line in wrongly:
                say(f"- attached: {line}")
            # Picks: where the right runbook was not attached, a responder picks it.
            picks = unlearnable = 0
            for name in RENDERINGS:
                for rule, alert, got in firsts[name]:
                    if got != "right":
                        if run.pick(session, alert, ids[rule.runbook_path or ""]):
                            picks += 1
                        else:
                            unlearnable += 1
            session.commit()
            say()
            say(f"picks recorded: {picks} (not learnable, fingerprint not specific: {unlearnable})")
            say()
            say("Recurrences after picks (share of deliveries):")
            say()
            say(
                "| rendering | recurrence | attached right | attached wrong (by a learned"
                " trigger) | suggested | no runbook | right, alerts with a title of their own |"
            )
            say("| --- | --- | --- | --- | --- | --- | --- |")
            run.timings.clear()
            for name, render in RENDERINGS.items():
                shared = ambiguous(positives, render)
                values: Counter[str] = Counter()
                own: Counter[str] = Counter()
                for occ in RECURRENCES:
                    counts, details = run.positives(session, render, positives, occ)
                    values.update(counts)
                    own.update(got for rule, _, got in details if rule.alertname not in shared)
                harder, details = run.positives(session, render, positives, NAMES)
                own_harder = Counter(g for rule, _, g in details if rule.alertname not in shared)
                for label, counts, mine in (
                    ("values (3)", values, own),
                    ("names", harder, own_harder),
                ):
                    r = rates(counts, OUTCOMES)
                    r["right_own_title"] = rates(mine, OUTCOMES)["right"]
                    r["shared_titles"] = len(shared)
                    data["recurrence"].setdefault(name, {})[label] = r
                    suggested = r["suggested_hit"] + r["suggested_miss"]
                    say(
                        f"| {name} | {label} | {r['right']:.1%} | {r['wrong']:.1%}"
                        f" ({r['wrong_learned']:.1%}) | {suggested:.1%} | {r['none']:.1%}"
                        f" | {r['right_own_title']:.1%} ({len(positives) - len(shared)}) |"
                    )
            data["recurrence_match_ms_median"] = statistics.median(run.timings) * 1000
            say()
            say("Negatives after picks (recurrence values):")
            say()
            say(
                "| rendering | attached (wrong) | of which by a learned trigger | suggested"
                " | no runbook | n |"
            )
            say("| --- | --- | --- | --- | --- | --- |")
            wrongly = []
            for name, render in RENDERINGS.items():
                counts, attached = run.negatives(
                    session, render, uncovered, positives, RECURRENCES[0]
                )
                wrongly += [f"{name}: {a}" for a in attached]
                r = rates(counts, NEGATIVE_OUTCOMES)
                data["negatives_after_picks"] = data.get("negatives_after_picks", {}) | {name: r}
                say(
                    f"| {name} | {r['attached']:.1%} | {r['attached_learned']:.1%}"
                    f" | {r['suggested']:.1%} | {r['none']:.1%} | {r['total']} |"
                )
            for line in wrongly:
                say(f"- attached: {line}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    title = f"# Match decisions per rendering{f' ({args.label})' if args.label else ''}\n\n"
    args.report.write_text(title + "\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
