"""The messy-paste dev set (tests/fixtures/pastes, written by hand for this project): Confluence
pages pasted as text, chat threads, notes, prose in several languages around English commands.

Scored by bench/parse_pastes.py, the same scorer the benchmark prints: exact command spans
(whitespace-normalised), risk on the commands found, rollbacks attached to their step, and
commands the parser returned that are not gold.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.parse_pastes import DEFAULT_DIR, Totals, score
from ddoc.parsing import parse_runbook


@pytest.fixture(scope="module")
def totals() -> Totals:
    return score(DEFAULT_DIR)


def report(totals: Totals) -> str:
    lines = []
    for f in totals.files:
        for line in f.misses + f.risk_wrong + [f"extra {e!r}" for e in f.extra]:
            lines.append(f"{f.name}: {line}")
    return "\n".join(lines)


def test_the_dev_set_is_large_enough_and_its_gold_is_verbatim() -> None:
    entries = yaml.safe_load((DEFAULT_DIR / "gold.yaml").read_text(encoding="utf-8"))
    assert len(entries) >= 30
    assert sum(len(e["commands"]) for e in entries) >= 120
    for entry in entries:
        text = (DEFAULT_DIR / entry["file"]).read_text(encoding="utf-8")
        for gold in entry["commands"]:
            assert gold["command"] in text, (entry["file"], gold["command"])
            assert gold["risk"] in ("green", "yellow", "red")


def test_exact_span_recall(totals: Totals) -> None:
    assert totals.recall >= 0.95, report(totals)


def test_risk_accuracy(totals: Totals) -> None:
    assert totals.risk_accuracy >= 0.95, report(totals)


def test_precision_and_rollbacks(totals: Totals) -> None:
    assert totals.precision >= 0.9, report(totals)
    assert totals.rollback_recall >= 0.9, report(totals)


@pytest.mark.parametrize("path", sorted(p for p in DEFAULT_DIR.iterdir() if p.suffix != ".yaml"))
def test_every_parsed_command_is_verbatim(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    flat = " ".join(text.split())
    for fmt in ("text", "markdown"):
        for step in parse_runbook(text, fmt, source_path=path.name).steps:
            if step.command is not None:
                assert " ".join(step.command.split()) in flat, (fmt, step.command)
