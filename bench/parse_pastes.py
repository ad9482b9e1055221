"""Score the deterministic parser on messy pastes with gold answers (Confluence text, chat
threads, notes): exact command spans, risk, rollbacks, extra commands.

    .venv/bin/python -m bench.parse_pastes [--dir tests/fixtures/pastes] [--verbose]

A gold command is found when a step's command equals it after whitespace normalisation; risk
is scored on the found ones; a gold rollback is found when the step whose command is its `of`
carries it (runbook-given). Extra commands are parsed commands that are not gold.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddoc.parsing import parse_runbook
from ddoc.runbook import RollbackOrigin

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / "tests" / "fixtures" / "pastes"


def norm(command: str) -> str:
    return " ".join(command.split())


@dataclass
class FileScore:
    name: str
    gold: int = 0
    found: int = 0
    risk_right: int = 0
    rollbacks: int = 0
    rollbacks_found: int = 0
    extra: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    risk_wrong: list[str] = field(default_factory=list)


def score_file(directory: Path, entry: dict[str, Any]) -> FileScore:
    name = entry["file"]
    text = (directory / name).read_text(encoding="utf-8")
    parsed = parse_runbook(text, entry.get("format", "text"), source_path=name)
    by_command = {norm(s.command): s for s in parsed.steps if s.command is not None}
    result = FileScore(name)
    gold_commands = {norm(g["command"]) for g in entry["commands"]}
    for gold in entry["commands"]:
        result.gold += 1
        step = by_command.get(norm(gold["command"]))
        if step is None:
            closest = difflib.get_close_matches(norm(gold["command"]), list(by_command), n=1)
            result.misses.append(
                f"{gold['command']!r} (closest: {closest[0] if closest else None!r})"
            )
            continue
        result.found += 1
        if step.risk is not None and step.risk.value == gold["risk"]:
            result.risk_right += 1
        else:
            result.risk_wrong.append(
                f"{gold['command']!r}: {step.risk} ({step.risk_reason}), gold {gold['risk']}"
            )
    for gold in entry.get("rollbacks") or []:
        result.rollbacks += 1
        step = by_command.get(norm(gold["of"]))
        rollback = step.rollback if step is not None else None
        if (
            rollback is not None
            and rollback.origin == RollbackOrigin.RUNBOOK
            and rollback.command is not None
            and norm(gold["command"]) in norm(rollback.command)
        ):
            result.rollbacks_found += 1
        else:
            result.misses.append(f"rollback {gold['command']!r} of {gold['of']!r}")
    result.extra = [c for c in by_command if c not in gold_commands]
    return result


@dataclass
class Totals:
    files: list[FileScore]

    def _sum(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def recall(self) -> float:
        return self._sum("found") / max(1, self._sum("gold"))

    @property
    def risk_accuracy(self) -> float:
        return self._sum("risk_right") / max(1, self._sum("found"))

    @property
    def rollback_recall(self) -> float:
        return self._sum("rollbacks_found") / max(1, self._sum("rollbacks"))

    @property
    def precision(self) -> float:
        found = self._sum("found")
        return found / max(1, found + sum(len(f.extra) for f in self.files))


def score(directory: Path = DEFAULT_DIR) -> Totals:
    entries = yaml.safe_load((directory / "gold.yaml").read_text(encoding="utf-8"))
    return Totals([score_file(directory, e) for e in entries])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    totals = score(args.dir)
    print(f"{'file':44} gold found risk extra")
    for f in totals.files:
        print(f"{f.name:44} {f.gold:4} {f.found:5} {f.risk_right:4} {len(f.extra):5}")
        if args.verbose:
            for line in f.misses + f.risk_wrong + [f"extra {e!r}" for e in f.extra]:
                print(f"    {line}")
    print(
        f"recall {totals.recall:.3f}  risk accuracy {totals.risk_accuracy:.3f}  "
        f"precision {totals.precision:.3f}  rollbacks {totals.rollback_recall:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
