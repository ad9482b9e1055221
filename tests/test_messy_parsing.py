"""The messy dev sets: hand-written runbook pastes with gold commands, written by two authors
independently (tests/fixtures/messy: 34 pastes, 190 commands; tests/fixtures/pastes: 34 pastes,
129 commands), so that neither is the only text the parser was tuned on.

Confluence pages pasted as plain text, Slack/Teams/IRC threads, terse engineer notes, prose in
six other languages around English commands, sloppy markdown. Scored by bench/parse_messy.py
(the same scorer `python -m bench.parse_messy` prints): exact command spans after whitespace
normalisation, risk of the commands found, rollbacks attached to their step, extra commands.
On failure the message lists every miss per file with the closest parsed command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.parse_messy import (
    DEFAULT_DIR,
    FORMATS,
    MIN_PRECISION,
    MIN_RECALL,
    MIN_RISK_ACCURACY,
    MIN_ROLLBACK_RECALL,
    RISKS,
    GoldFile,
    Score,
    load_gold,
    norm,
    parsed_commands,
    score,
)
from ddoc.runbooks.parsing import parse_runbook

PASTES = DEFAULT_DIR.parent / "pastes"
DEV_SETS = [DEFAULT_DIR, PASTES]
GOLD = load_gold(DEFAULT_DIR)
ALL_GOLD = [(d, g) for d in DEV_SETS for g in load_gold(d)]


@pytest.fixture(scope="module", params=DEV_SETS, ids=lambda d: d.name)
def result(request: pytest.FixtureRequest) -> Score:
    directory: Path = request.param
    return score(directory)


def failure(result: Score, what: str) -> str:
    return f"{what}\n{result.summary()}\n\n{result.table()}\n\n{result.report()}"


def test_the_dev_set_is_large_and_varied() -> None:
    assert len(GOLD) >= 30
    assert sum(len(g.commands) for g in GOLD) >= 150
    shapes = {g.shape for g in GOLD}
    assert shapes == {"confluence", "chat", "notes", "non-english", "markdown"}
    pastes = load_gold(PASTES)
    assert len(pastes) >= 30
    assert {g.shape for g in pastes} == shapes
    for directory in DEV_SETS:
        on_disk = {p.name for p in directory.iterdir() if p.name != "gold.yaml"}
        assert on_disk == {g.file for g in load_gold(directory)}, "a fixture without gold"


@pytest.mark.parametrize(("directory", "gold"), ALL_GOLD, ids=lambda g: getattr(g, "file", ""))
def test_gold_is_verbatim_in_its_file(directory: Path, gold: GoldFile) -> None:
    text = (directory / gold.file).read_text(encoding="utf-8")
    assert gold.format in FORMATS
    commands = [g.command for g in gold.commands]
    assert 2 <= len(commands) <= 8
    assert len(set(map(norm, commands))) == len(commands), "a gold command is listed twice"
    for g in gold.commands:
        assert g.command in text, g.command
        assert g.command == g.command.strip(), g.command
        assert g.risk in RISKS, g
    for r in gold.rollbacks:
        assert r.command in text, r.command
        assert r.of in commands, f"{r.of!r} is not a gold command of {gold.file}"


@pytest.mark.parametrize(("directory", "gold"), ALL_GOLD, ids=lambda g: getattr(g, "file", ""))
def test_every_parsed_command_is_grounded_in_its_source(directory: Path, gold: GoldFile) -> None:
    text = (directory / gold.file).read_text(encoding="utf-8")
    flat = norm(text)
    for fmt in FORMATS:  # a paste may be sent as either
        parsed = parse_runbook(text, fmt, source_path=gold.file)
        ungrounded = [c.command for c in parsed_commands(parsed) if norm(c.command) not in flat]
        assert not ungrounded, (fmt, ungrounded)


def test_exact_span_recall(result: Score) -> None:
    recall = result.recall
    assert recall >= MIN_RECALL, failure(result, f"recall {recall:.3f} < {MIN_RECALL}")


def test_risk_accuracy(result: Score) -> None:
    accuracy = result.risk_accuracy
    assert accuracy >= MIN_RISK_ACCURACY, failure(
        result, f"risk accuracy {accuracy:.3f} < {MIN_RISK_ACCURACY}"
    )


def test_precision(result: Score) -> None:
    precision = result.precision
    assert precision >= MIN_PRECISION, failure(
        result, f"precision {precision:.3f} < {MIN_PRECISION}"
    )


def test_rollbacks_are_attached_to_their_step(result: Score) -> None:
    recall = result.rollback_recall
    assert recall >= MIN_ROLLBACK_RECALL, failure(
        result, f"rollback recall {recall:.3f} < {MIN_ROLLBACK_RECALL}"
    )
