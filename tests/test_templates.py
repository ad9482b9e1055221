"""The template library (ddoc/runbooks/templates): every template parses into a clean runbook,
and every alert it names attaches it through the real matcher."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.alerts.matching import Matcher
from ddoc.alerts.sources import GenericAlert, NormalizedAlert, normalize_generic
from ddoc.platform.errors import NotFound
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.model import ParsedRunbook, RiskClass, StepKind, VariableSource
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.templates import Template, TemplateNotFound, for_alert, template, templates
from tests.conftest import store_runbooks

REPO = Path(__file__).resolve().parents[1]
TENANT = "templates"
TEMPLATES = templates()
NAMES = [t.name for t in TEMPLATES]

# Values of the labels the community rule sets put on these alerts, as an alert would carry them.
TYPICAL_LABELS = {
    "namespace": "payments",
    "pod": "checkout-7c9d8f6b5-x2kqz",
    "container": "checkout",
    "deployment": "checkout",
    "node": "worker-3",
    "instance": "10.0.4.17:9100",
    "job": "node-exporter",
    "service": "checkout",
    "persistentvolumeclaim": "data-postgres-0",
    "job_name": "nightly-report-28911520",
    "mountpoint": "/var/lib/containerd",
    "device": "/dev/nvme0n1p1",
    "fstype": "ext4",
    "horizontalpodautoscaler": "checkout",
}


def parsed(t: Template) -> ParsedRunbook:
    return parse_runbook(t.content, "markdown", source_path=f"templates/{t.name}.md")


def alert_for(alert_name: str, t: Template) -> NormalizedAlert:
    labels = {"alertname": alert_name, "severity": "warning", "prometheus": "monitoring/k8s"}
    for variable in parsed(t).variables:
        assert variable.key is not None
        labels[variable.key] = TYPICAL_LABELS.get(variable.key, f"sample-{variable.key}")
    alert = GenericAlert.model_validate({"title": f"{alert_name} is firing", "labels": labels})
    return normalize_generic(alert)[0]


# --- the library -------------------------------------------------------------------------------


def test_the_library_has_at_least_15_templates_sorted_by_name() -> None:
    assert len(TEMPLATES) >= 15
    assert sorted(NAMES) == NAMES
    assert all(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", name) for name in NAMES)
    assert all(t.title and t.alerts for t in TEMPLATES)


@pytest.mark.parametrize("name", NAMES)
def test_a_template_parses_into_a_clean_runbook(name: str) -> None:
    t = template(name)
    rb = parsed(t)
    assert rb.warnings == []
    assert rb.quality.score >= 90, rb.quality.flags
    assert [f.code for f in rb.quality.flags] == []
    assert rb.title == t.title
    assert rb.triggers.alerts == t.alerts
    assert rb.summary
    assert rb.prerequisites
    commands = [s for s in rb.steps if s.kind == StepKind.COMMAND]
    assert any(s.risk == RiskClass.GREEN for s in commands)  # the diagnosis
    assert any(s.risk in (RiskClass.YELLOW, RiskClass.RED) for s in commands)  # the mitigation
    for step in commands:
        assert step.command and step.risk is not None, step.id
        if step.risk != RiskClass.GREEN:
            assert step.rollback is not None, f"{step.id} ({step.risk}) has no rollback"
    ids = {s.id for s in rb.steps}
    for step in rb.steps:
        assert all(b.goto is None or b.goto in ids for b in step.branches), step.id


@pytest.mark.parametrize("name", NAMES)
def test_a_templates_variables_are_the_alerts_labels(name: str) -> None:
    t = template(name)
    variables = parsed(t).variables
    assert all(v.source == VariableSource.LABEL for v in variables), variables
    assert all(v.syntax.startswith("{{") for v in variables), variables
    # every `{{x}}` written in a command or a rollback is one of them
    rb = parsed(t)
    written = "\n".join(
        f"{s.command or ''}\n{s.rollback.command if s.rollback and s.rollback.command else ''}"
        for s in rb.steps
    )
    placeholders = set(re.findall(r"\{\{\s*(?:\$labels\.)?(\w+)\s*\}\}", written))
    assert placeholders == {v.key for v in variables}


def test_the_library_has_decisions() -> None:
    decisions = {
        t.name: sum(s.kind == StepKind.DECISION for s in parsed(t).steps) for t in TEMPLATES
    }
    assert sum(decisions.values()) >= 1
    assert all(decisions.values()), decisions


def test_no_alert_name_is_in_two_templates() -> None:
    owners = Counter(a.casefold() for t in TEMPLATES for a in {a.casefold() for a in t.alerts})
    assert [a for a, n in owners.items() if n > 1] == []


def test_for_alert_finds_the_template_whatever_the_case() -> None:
    for t in TEMPLATES:
        for name in t.alerts:
            assert [found.name for found in for_alert(name)] == [t.name]
            assert [found.name for found in for_alert(name.upper())] == [t.name]
    assert [t.name for t in for_alert("kubepodcrashlooping")] == ["kube-pod-crash-looping"]
    assert for_alert("NoSuchAlert") == []


def test_an_unknown_template_is_not_found_and_the_error_names_the_others() -> None:
    with pytest.raises(TemplateNotFound) as info:
        template("nope")
    assert isinstance(info.value, NotFound)
    message = str(info.value)
    assert "'nope'" in message
    assert all(name in message for name in NAMES)


def test_templates_are_copies() -> None:
    first = templates()[0]
    first.alerts.append("Changed")
    assert "Changed" not in templates()[0].alerts


def test_the_templates_ship_as_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "runbooks/templates/*.md" in config["tool"]["setuptools"]["package-data"]["ddoc"]
    on_disk = sorted(p.stem for p in (REPO / "ddoc" / "runbooks" / "templates").glob("*.md"))
    assert on_disk == NAMES


# --- matching ----------------------------------------------------------------------------------


def test_every_alert_of_a_template_attaches_it(engine: Engine) -> None:
    store_runbooks(engine, TENANT, {f"templates/{t.name}.md": t.content for t in TEMPLATES})
    matcher = Matcher(default_embedder())
    missed = []
    with Session(engine) as session:
        for t in TEMPLATES:
            for alert_name in t.alerts:
                result = matcher.match(session, tenant_id=TENANT, alert=alert_for(alert_name, t))
                top = result.candidates[0].source_path if result.candidates else None
                attached = result.attached.source_path if result.attached else None
                expected = f"templates/{t.name}.md"
                if (result.status, top, attached) != ("attached", expected, expected):
                    missed.append((alert_name, result.status, top, attached))
                elif result.attached is not None:
                    assert result.attached.method == "explicit"
                    assert f"declares alert {alert_name!r} in its triggers" in (
                        result.attached.reasons
                    )
    assert missed == []
