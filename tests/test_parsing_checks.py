"""Prechecks and verifications in the deterministic parser (ddoc/runbooks/parsing/checks.py).

The annotated fixtures in tests/fixtures/checks/ (each runbook has a JSON file next to it: per
check the change step's command, the slot, the check's command and the kind of expectation; and
read-only commands that must stay steps) measure recall and precision; the unit tests pin the
expectation, window, refusal, front-matter and round-trip rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddoc.runbooks.model import ParsedRunbook, RiskClass, Step
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.parsing.checks import duration, expectation, window
from tests.test_parsing import occurs_verbatim

FIXTURES = Path(__file__).parent / "fixtures" / "checks"
ANNOTATED = sorted(FIXTURES.glob("*.json"))

Found = tuple[str, str, str, str]  # change command, slot, check command, expectation kind


def _source(annotation: Path) -> Path:
    return next(p for p in FIXTURES.glob(f"{annotation.stem}.*") if p.suffix != ".json")


def _parse(annotation: Path) -> ParsedRunbook:
    fmt = json.loads(annotation.read_text())["format"]
    return parse_runbook(_source(annotation).read_text(), fmt)


def _found(rb: ParsedRunbook) -> set[Found]:
    out: set[Found] = set()
    for step in rb.steps:
        for slot in ("precheck", "verify"):
            check = getattr(step, slot)
            if check is not None:
                assert step.command is not None
                out.add((step.command, slot, check.command, next(iter(check.expect))))
    return out


def _annotated(annotation: Path) -> set[Found]:
    data = json.loads(annotation.read_text())
    return {(c["step"], c["slot"], c["command"], c["expect"]) for c in data["checks"]}


def test_fixtures_are_many_and_varied() -> None:
    assert len(ANNOTATED) >= 12
    assert sum(len(_annotated(a)) for a in ANNOTATED) >= 30
    assert {json.loads(a.read_text())["format"] for a in ANNOTATED} == {"markdown", "text", "html"}


def test_recall_and_precision_on_the_annotated_runbooks() -> None:
    """A check counts when the right change carries it, in the right slot, with the right
    command and kind of expectation."""
    hits = found = wanted = 0
    misses: list[tuple[str, object]] = []
    for annotation in ANNOTATED:
        got, want = _found(_parse(annotation)), _annotated(annotation)
        hits += len(got & want)
        found += len(got)
        wanted += len(want)
        misses += [(annotation.stem, f"missed {m}") for m in want - got]
        misses += [(annotation.stem, f"wrong {m}") for m in got - want]
    recall, precision = hits / wanted, hits / found
    print(
        f"checks: recall {recall:.3f} ({hits}/{wanted}), precision {precision:.3f} ({hits}/{found})"
    )
    assert recall >= 0.9 and precision >= 0.9, misses


@pytest.mark.parametrize("annotation", ANNOTATED, ids=lambda p: p.stem)
def test_negatives_stay_steps_and_commands_are_grounded(annotation: Path) -> None:
    rb = _parse(annotation)
    commands = {s.command for s in rb.steps}
    data = json.loads(annotation.read_text())
    for command in data["not_checks"]:
        assert command in commands, command
    for command in data.get("refused", []):
        assert any(f"`{command}`" in w and "not read-only" in w for w in rb.warnings), command
    source = _source(annotation).read_text()
    for step in rb.steps:
        for check in (step.precheck, step.verify):
            if check is not None:
                assert occurs_verbatim(check.command, source), check.command
                assert check.source is not None
    assert ParsedRunbook.from_dict(json.loads(json.dumps(rb.to_dict()))) == rb


def _step(rb: ParsedRunbook, command: str) -> Step:
    return next(s for s in rb.steps if s.command == command)


# --- expectations and windows -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("words", "expect"),
    [
        ('it should print "PONG"', {"output_pattern": "PONG"}),
        ("the output contains `Bound`", {"output_pattern": "Bound"}),
        ("until every pod is `Running`", {"output_pattern": "Running"}),
        (
            "wait until it says successfully rolled out",
            {"output_pattern": "successfully rolled out"},
        ),
        (
            "you should see Replica_IO_Running: Yes - then go on",
            {"output_pattern": "Replica_IO_Running: Yes"},
        ),
        ("it should exit 0", {"exit_code": 0}),
        ("the check succeeds", {"exit_code": 0}),
        ("it should print active", {"exit_code": 0}),  # not written as the output is
        ("lag should be below 100", {"threshold": {"op": "<", "value": 100}}),
        ("usage under 85%", {"threshold": {"op": "<", "value": 85}}),
        ("at most 3 pending", {"threshold": {"op": "<=", "value": 3}}),
        ("more than 2 ready replicas", {"threshold": {"op": ">", "value": 2}}),
        ("at least 0.5", {"threshold": {"op": ">=", "value": 0.5}}),
        ("the pod shows 0 restarts", {"threshold": {"op": "<=", "value": 0}}),
        ("expect <= 4", {"threshold": {"op": "<=", "value": 4}}),
        ("it should settle under 5 minutes", {"exit_code": 0}),  # a duration, no threshold
    ],
)
def test_expectation_from_words(words: str, expect: dict[str, object]) -> None:
    assert expectation(words) == expect


@pytest.mark.parametrize(
    ("words", "seconds"),
    [
        ("within 5m", 300),
        ("within 5 minutes", 300),
        ("for up to 10 min", 600),
        ("wait 2 minutes, then", 120),
        ("give it 90 seconds", 90),
        ("wait until it shows Running", 300),
        ("within 1h", 3600),
        ("run it once", 0),
    ],
)
def test_window_from_words(words: str, seconds: int) -> None:
    assert window(words) == seconds


def test_retry_interval_and_window_reach_the_check() -> None:
    rb = parse_runbook(
        "1. Restart: `kubectl -n a rollout restart deploy/web`\n"
        "2. Wait until `kubectl -n a get pods -l app=web` shows `Running` "
        "(for up to 10 min, retry every 30s).\n"
    )
    (step,) = rb.steps
    assert step.verify is not None
    assert step.verify.expect == {"output_pattern": "Running"}
    assert (step.verify.within_seconds, step.verify.interval_seconds) == (600, 30)


def test_a_manual_wait_between_change_and_check_is_the_window() -> None:
    rb = parse_runbook(
        "1. Restart: `sudo systemctl restart api`\n"
        "2. Wait 2 minutes.\n"
        "3. Confirm with `systemctl is-active api`.\n"
    )
    restart = _step(rb, "sudo systemctl restart api")
    assert restart.verify is not None and restart.verify.within_seconds == 120
    assert [s.kind.value for s in rb.steps] == ["command", "manual"]


# --- placement --------------------------------------------------------------------------------
def test_before_and_after_phrases_pick_the_slot() -> None:
    rb = parse_runbook(
        "Before you drain it, check that the node is cordoned: `kubectl get node n1`.\n\n"
        "Drain it: `kubectl drain n1 --ignore-daemonsets`.\n\n"
        "Check that the pods are back on other nodes: `kubectl get pods -A -o wide`.\n"
    )
    drain = _step(rb, "kubectl drain n1 --ignore-daemonsets")
    assert drain.precheck is not None and drain.precheck.command == "kubectl get node n1"
    assert drain.verify is not None and drain.verify.command == "kubectl get pods -A -o wide"
    assert [s.id for s in rb.steps] == ["s1"]


def test_diagnosis_and_prerequisites_are_no_checks() -> None:
    rb = parse_runbook(
        "Make sure you have kubectl access to prod: `kubectl auth can-i get pods`.\n\n"
        "Check the pods: `kubectl get pods`.\n\n"
        "Restart it: `kubectl rollout restart deploy/web`.\n"
    )
    assert [s.command for s in rb.steps] == [
        "kubectl auth can-i get pods",
        "kubectl get pods",
        "kubectl rollout restart deploy/web",
    ]
    assert rb.steps[2].precheck is None


@pytest.mark.parametrize(
    "command", ["watch kubectl get pods", "kubectl get pods -w", "sudo journalctl -u api -f"]
)
def test_a_command_that_never_ends_is_no_check(command: str) -> None:
    rb = parse_runbook(f"1. Restart: `sudo systemctl restart api`\n2. Verify with `{command}`.\n")
    assert rb.steps[0].verify is None and rb.steps[1].command == command


def test_first_orders_an_instruction_without_making_a_check() -> None:
    rb = parse_runbook(
        "Topic details: kafka-topics.sh --bootstrap-server k:9092 --describe --topic t\n"
        "Restart the consumers first, this is safe: kubectl rollout restart deploy/consumer\n",
        "text",
    )
    assert [s.command for s in rb.steps] == [
        "kafka-topics.sh --bootstrap-server k:9092 --describe --topic t",
        "kubectl rollout restart deploy/consumer",
    ]
    assert rb.steps[1].precheck is None


def test_a_check_read_by_a_decision_stays_a_step() -> None:
    rb = parse_runbook(
        "1. Restart: `sudo systemctl restart api`\n"
        "2. Verify with `systemctl is-active api`.\n"
        "3. If the command fails, escalate to the API team.\n"
    )
    assert _step(rb, "systemctl is-active api").kind.value == "command"
    assert rb.steps[0].verify is None


def test_branch_targets_are_renumbered_when_checks_leave() -> None:
    rb = parse_runbook(
        "1. Make sure the lock exists: `ls /var/run/app.lock`\n"
        "2. Remove it: `sudo rm /var/run/app.lock`\n"
        "3. If `systemctl is-active app` returns non-zero, go to step 5.\n"
        "4. Restart: `sudo systemctl restart app`\n"
        "5. Escalate to the app team.\n"
    )
    ids = [s.id for s in rb.steps]
    assert ids == [f"s{i}" for i in range(1, len(ids) + 1)]
    decision = next(s for s in rb.steps if s.branches)
    assert decision.branches[0].goto == rb.steps[-1].id


# --- refusals and grounding -------------------------------------------------------------------
def test_a_check_that_changes_something_is_refused_with_a_warning() -> None:
    rb = parse_runbook(
        "1. Restart: `sudo systemctl restart api`\n"
        "2. Verify with `curl -X POST http://localhost:8080/cache/warm`.\n"
    )
    warm = _step(rb, "curl -X POST http://localhost:8080/cache/warm")
    assert warm.risk != RiskClass.GREEN
    assert rb.steps[0].verify is None
    assert any("not read-only" in w and "stays a step" in w for w in rb.warnings), rb.warnings


def test_no_command_is_invented() -> None:
    """A sentence that describes a check without a command gives no check."""
    rb = parse_runbook(
        "1. Restart: `sudo systemctl restart api`\n"
        "2. You should see the dashboard go green within 5 minutes.\n"
    )
    assert rb.steps[0].verify is None


# --- explicit lines ---------------------------------------------------------------------------
def test_explicit_lines_under_a_code_block_step() -> None:
    rb = parse_runbook(
        "1. Scale up:\n\n"
        "   ```bash\n   kubectl -n a scale deploy/web --replicas=6\n   ```\n\n"
        "   precheck: `kubectl -n a get hpa web`\n"
        "   verify: `kubectl -n a get deploy web -o jsonpath='{.status.readyReplicas}'` "
        "within 5m every 20s expect >= 6\n"
    )
    (step,) = rb.steps
    assert step.precheck is not None and step.precheck.command == "kubectl -n a get hpa web"
    assert step.verify is not None
    assert step.verify.expect == {"threshold": {"op": ">=", "value": 6}}
    assert (step.verify.within_seconds, step.verify.interval_seconds) == (300, 20)


def test_an_explicit_line_without_a_step_above_stays_a_step() -> None:
    rb = parse_runbook("verify: `kubectl get pods`\n")
    assert [s.command for s in rb.steps] == ["kubectl get pods"]


# --- front-matter -----------------------------------------------------------------------------
def test_front_matter_mitigated_when() -> None:
    rb = parse_runbook(
        "---\nmitigated_when:\n  alert_resolved: false\n  within: 45m\n  check:\n"
        "    command: kubectl -n a get pods -l app=web\n    expect: contains `Running`\n"
        "    within: 5m\n---\n# Web down\n\n1. Restart: `kubectl -n a rollout restart deploy/web`\n"
    )
    m = rb.mitigated_when
    assert m is not None and (m.alert_resolved, m.within_seconds) == (False, 2700)
    assert m.check is not None and m.check.command == "kubectl -n a get pods -l app=web"
    assert (m.check.expect, m.check.within_seconds) == ({"output_pattern": "Running"}, 300)
    assert rb.warnings == []
    assert ParsedRunbook.from_dict(json.loads(json.dumps(rb.to_dict()))) == rb


@pytest.mark.parametrize(
    ("front", "warning"),
    [
        ("mitigated_when: soon", "should be a mapping"),
        ("mitigated_when:\n  within: a while", "`mitigated_when.within`"),
        ("mitigated_when:\n  alert_resolved: maybe", "alert_resolved"),
        ("mitigated_when:\n  check: {expect: {exit_code: 0}}", "needs a `command`"),
        ("mitigated_when:\n  check: {command: sudo systemctl restart web}", "not read-only"),
        ("mitigated_when:\n  check: {command: curl -sf http://a/h, expect: {regex: x}}", "expect"),
        ("mitigated_when:\n  check: {command: curl -sf http://a/h, every: often}", "every"),
    ],
)
def test_bad_mitigated_when_is_a_warning(front: str, warning: str) -> None:
    rb = parse_runbook(f"---\n{front}\n---\n# Web down\n\nRestart: `sudo systemctl restart web`\n")
    assert any(warning in w for w in rb.warnings), rb.warnings
    if "mapping" not in warning:
        assert rb.mitigated_when is not None
        refused = "not read-only" in warning or "command" in warning
        assert (rb.mitigated_when.check is None) == ("check:" not in front or refused)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1800, 1800), ("90s", 90), ("30m", 1800), ("2 hours", 7200), ("x", None), (True, None)],
)
def test_duration(value: object, seconds: int | None) -> None:
    assert duration(value) == seconds
