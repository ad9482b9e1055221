"""Score the deterministic parser on the messy dev set (tests/fixtures/messy/gold.yaml).

    .venv/bin/python -m bench.parse_messy [--dir tests/fixtures/messy|tests/fixtures/pastes] [--misses]

34 runbooks pasted the way on-call engineers paste them (Confluence pages as plain text, chat
threads, terse notes, prose in other languages around English commands, sloppy markdown), each
with its gold commands, their risk, and the rollbacks the runbook gives. Scores:

  recall       a gold command is found when some parsed step's command equals it after
               whitespace normalisation (" ".join(s.split())); nothing is split or trimmed;
  risk         over the found gold commands: the (first) matching step's risk == gold risk;
  precision    parsed commands (every step.command, plus step.rollback.command when the
               runbook gave it) that are gold commands or gold rollbacks, over all of them;
  rollbacks    a gold rollback is found when a step whose command is its `of` carries it as
               its runbook-given rollback;
  grounding    parsed commands that are not a substring of the (whitespace-normalised) source.

tests/test_messy_parsing.py asserts the thresholds below with this same scorer.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddoc.runbooks.model import ParsedRunbook, RollbackOrigin
from ddoc.runbooks.parsing import ParseError, parse_runbook

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / "tests" / "fixtures" / "messy"
RISKS = ("green", "yellow", "red")
FORMATS = ("text", "markdown")

MIN_RECALL = 0.95
MIN_RISK_ACCURACY = 0.95
MIN_PRECISION = 0.85
MIN_ROLLBACK_RECALL = 0.9

Parser = Callable[[str, str, str], ParsedRunbook]  # (text, format, source name) -> runbook


def norm(command: str) -> str:
    return " ".join(command.split())


def default_parser(text: str, fmt: str, name: str) -> ParsedRunbook:
    return parse_runbook(text, fmt, source_path=name)


@dataclass(frozen=True)
class GoldCommand:
    command: str
    risk: str


@dataclass(frozen=True)
class GoldRollback:
    command: str
    of: str


@dataclass(frozen=True)
class GoldFile:
    file: str
    format: str
    commands: tuple[GoldCommand, ...]
    rollbacks: tuple[GoldRollback, ...]

    @property
    def shape(self) -> str:
        """confluence | chat | notes | non-english | markdown, from the file name."""
        stem = self.file.split("-", 2)[1]
        if stem in ("slack", "teams", "irc"):
            return "chat"
        if stem in ("es", "de", "fr", "pt", "ja", "nl"):
            return "non-english"
        if stem == "md":
            return "markdown"
        return stem


def load_gold(directory: Path = DEFAULT_DIR) -> list[GoldFile]:
    entries: list[dict[str, Any]] = yaml.safe_load(
        (directory / "gold.yaml").read_text(encoding="utf-8")
    )
    return [
        GoldFile(
            file=e["file"],
            format=e["format"],
            commands=tuple(GoldCommand(c["command"], c["risk"]) for c in e["commands"]),
            rollbacks=tuple(GoldRollback(r["command"], r["of"]) for r in e.get("rollbacks") or []),
        )
        for e in entries
    ]


@dataclass(frozen=True)
class ParsedCommand:
    command: str  # as the parser returned it
    risk: str | None  # None for a rollback command
    risk_reason: str | None = None
    rollback: bool = False  # a runbook-given rollback rather than a step's own command
    rollback_of: str | None = None  # the command of the step it undoes (None: a manual step)


def parsed_commands(parsed: ParsedRunbook) -> list[ParsedCommand]:
    """Every step command, then every runbook-given rollback command, in document order."""
    out = [
        ParsedCommand(s.command, s.risk.value if s.risk is not None else None, s.risk_reason)
        for s in parsed.steps
        if s.command is not None
    ]
    for s in parsed.steps:
        rb = s.rollback
        if rb is not None and rb.command is not None and rb.origin == RollbackOrigin.RUNBOOK:
            out.append(ParsedCommand(rb.command, None, rollback=True, rollback_of=s.command))
    return out


@dataclass
class Miss:
    gold: str
    closest: str | None  # the most similar parsed command of the file
    similarity: float
    note: str | None = None  # e.g. found, but only as another step's rollback


@dataclass
class FileScore:
    file: str
    shape: str
    gold: int
    found: int = 0
    risk_right: int = 0
    rollbacks: int = 0
    rollbacks_found: int = 0
    parsed: int = 0  # parsed commands, steps and runbook rollbacks
    misses: list[Miss] = field(default_factory=list)
    risk_wrong: list[str] = field(default_factory=list)
    rollback_misses: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    ungrounded: list[str] = field(default_factory=list)
    error: str | None = None

    def problems(self) -> list[str]:
        lines = [f"parse failed: {self.error}"] if self.error else []
        for m in self.misses:
            closest = f"{m.closest!r} ({m.similarity:.2f})" if m.closest else "no commands parsed"
            if m.note:
                closest = m.note
            lines.append(f"MISSED  {m.gold!r}\n          closest parsed: {closest}")
        lines += [f"RISK    {r}" for r in self.risk_wrong]
        lines += [f"ROLLBACK {r}" for r in self.rollback_misses]
        lines += [f"EXTRA   {e!r}" for e in self.extra]
        lines += [f"UNGROUNDED {u!r}" for u in self.ungrounded]
        return lines


def score_file(gold: GoldFile, text: str, parse: Parser = default_parser) -> FileScore:
    result = FileScore(gold.file, gold.shape, gold=len(gold.commands))
    result.rollbacks = len(gold.rollbacks)
    try:
        parsed = parse(text, gold.format, gold.file)
    except ParseError as err:
        result.error = str(err)
        result.misses = [Miss(g.command, None, 0.0) for g in gold.commands]
        result.rollback_misses = [
            f"{r.command!r} of {r.of!r}: parse failed" for r in gold.rollbacks
        ]
        return result

    commands = parsed_commands(parsed)
    result.parsed = len(commands)
    steps = [c for c in commands if not c.rollback]
    first_step: dict[str, ParsedCommand] = {}
    for c in steps:
        first_step.setdefault(norm(c.command), c)
    as_rollback = {norm(c.command): c.rollback_of for c in commands if c.rollback}
    candidates = list(dict.fromkeys(norm(c.command) for c in commands))

    for g in gold.commands:
        key = norm(g.command)
        if key not in first_step:
            miss = _closest(key, candidates)
            if key in as_rollback:
                of = as_rollback[key]
                miss.note = f"parsed only as the runbook rollback of {of or 'a manual step'!r}"
            result.misses.append(miss)
            continue
        result.found += 1
        step = first_step[key]
        if step.risk == g.risk:
            result.risk_right += 1
        else:
            result.risk_wrong.append(
                f"{g.command!r}: parsed {step.risk} ({step.risk_reason}), gold {g.risk}"
            )

    for r in gold.rollbacks:
        attached = [
            norm(c.command) for c in commands if c.rollback_of and norm(c.rollback_of) == norm(r.of)
        ]
        if norm(r.command) in attached:
            result.rollbacks_found += 1
            continue
        if norm(r.of) not in first_step:
            why = "its step was not found"
        elif attached:
            why = f"the step carries {attached[0]!r} instead"
        else:
            why = "the step has no runbook-given rollback"
        result.rollback_misses.append(f"{r.command!r} of {r.of!r}: {why}")

    allowed = {norm(g.command) for g in gold.commands} | {norm(r.command) for r in gold.rollbacks}
    result.extra = [c.command for c in commands if norm(c.command) not in allowed]
    flat = norm(text)
    result.ungrounded = [c.command for c in commands if norm(c.command) not in flat]
    return result


def _closest(gold: str, candidates: list[str]) -> Miss:
    best: tuple[float, str | None] = (0.0, None)
    for candidate in candidates:
        ratio = difflib.SequenceMatcher(None, gold, candidate).ratio()
        if ratio > best[0]:
            best = (ratio, candidate)
    return Miss(gold, best[1], best[0])


@dataclass
class Score:
    files: list[FileScore]

    def total(self, attr: str) -> int:
        return sum(int(getattr(f, attr)) for f in self.files)

    @property
    def gold(self) -> int:
        return self.total("gold")

    @property
    def recall(self) -> float:
        return self.total("found") / max(1, self.gold)

    @property
    def risk_accuracy(self) -> float:
        return self.total("risk_right") / max(1, self.total("found"))

    @property
    def precision(self) -> float:
        parsed = self.total("parsed")
        return (parsed - sum(len(f.extra) for f in self.files)) / max(1, parsed)

    @property
    def rollback_recall(self) -> float:
        return self.total("rollbacks_found") / max(1, self.total("rollbacks"))

    def summary(self) -> str:
        return (
            f"recall {self.recall:.3f} ({self.total('found')}/{self.gold})  "
            f"risk accuracy {self.risk_accuracy:.3f} ({self.total('risk_right')}/{self.total('found')})  "
            f"precision {self.precision:.3f} ({sum(len(f.extra) for f in self.files)} extra of {self.total('parsed')})  "
            f"rollbacks {self.rollback_recall:.3f} ({self.total('rollbacks_found')}/{self.total('rollbacks')})  "
            f"ungrounded {sum(len(f.ungrounded) for f in self.files)}"
        )

    def table(self) -> str:
        rows = [f"{'file':40} {'shape':12} gold found extra risk-wrong rollbacks"]
        for f in self.files:
            rows.append(
                f"{f.file:40} {f.shape:12} {f.gold:4} {f.found:5} {len(f.extra):5} "
                f"{len(f.risk_wrong):10} {f.rollbacks_found}/{f.rollbacks}"
                + ("  PARSE FAILED" if f.error else "")
            )
        shapes: dict[str, list[FileScore]] = {}
        for f in self.files:
            shapes.setdefault(f.shape, []).append(f)
        rows.append("")
        for shape, files in shapes.items():
            gold = sum(f.gold for f in files)
            found = sum(f.found for f in files)
            rows.append(
                f"{shape:12} files {len(files):2}  gold {gold:3}  found {found:3} "
                f"({found / max(1, gold):.3f})  risk wrong {sum(len(f.risk_wrong) for f in files)}"
                f"  extra {sum(len(f.extra) for f in files)}"
            )
        return "\n".join(rows)

    def report(self) -> str:
        """Every miss, wrong risk, missing rollback, extra and ungrounded command, per file."""
        blocks = []
        for f in self.files:
            problems = f.problems()
            if problems:
                blocks.append(f"== {f.file}\n  " + "\n  ".join(problems))
        return "\n".join(blocks)


def score(directory: Path = DEFAULT_DIR, parse: Parser = default_parser) -> Score:
    return Score(
        [
            score_file(g, (directory / g.file).read_text(encoding="utf-8"), parse)
            for g in load_gold(directory)
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--misses", action="store_true", help="list every miss per file")
    args = parser.parse_args()
    result = score(args.dir)
    print(result.table())
    print()
    if args.misses:
        print(result.report())
        print()
    print(result.summary())
    ok = (
        result.recall >= MIN_RECALL
        and result.risk_accuracy >= MIN_RISK_ACCURACY
        and result.precision >= MIN_PRECISION
        and result.rollback_recall >= MIN_ROLLBACK_RECALL
    )
    print(
        f"thresholds: recall >= {MIN_RECALL}, risk >= {MIN_RISK_ACCURACY}, "
        f"precision >= {MIN_PRECISION}, rollbacks >= {MIN_ROLLBACK_RECALL}: "
        + ("PASS" if ok else "FAIL")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
