"""Parse every runbook of ../shared/corpus: per-file report and deterministic-parser throughput.

    .venv/bin/python bench/parse_corpus.py [--corpus ../shared/corpus] [--runs 5] [--report F]

Prints throughput (runbooks/s, median of --runs full passes, risk classification included) and
writes a per-file table (steps, commands, risk classes, quality, warnings) to --report.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from ddoc.runbooks.parsing import ParseError, parse_runbook

REPO = Path(__file__).resolve().parents[1]
FORMATS = {".md": "markdown", ".txt": "text", ".html": "html"}


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.suffix in FORMATS and p.name not in {"LICENSE", "PROVENANCE.md", "README.md"}
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--report", type=Path, default=REPO / "bench" / "results" / "parse_corpus.md"
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    files = corpus_files(args.corpus)
    texts = [(p, p.read_text(encoding="utf-8"), FORMATS[p.suffix]) for p in files]

    rows = []
    failures = []
    totals: Counter[str] = Counter()
    for path, text, fmt in texts:
        rel = path.relative_to(args.corpus).as_posix()
        try:
            parsed = parse_runbook(text, fmt, source_path=rel)
        except ParseError as err:
            failures.append((rel, str(err)))
            continue
        risks = Counter(s.risk.value for s in parsed.steps if s.risk)
        commands = sum(1 for s in parsed.steps if s.command)
        kinds = Counter(s.kind.value for s in parsed.steps)
        totals.update({"files": 1, "steps": len(parsed.steps), "commands": commands, **risks})
        if not parsed.steps:
            totals["no_steps"] += 1
        rows.append(
            f"| {rel} | {len(parsed.steps)} | {commands} | {risks['green']}/{risks['yellow']}/{risks['red']}"
            f" | {kinds['decision']} | {len(parsed.variables)} | {parsed.quality.score}"
            f" | {', '.join(sorted({f.code for f in parsed.quality.flags}))} |"
        )

    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        for path, text, fmt in texts:
            with contextlib.suppress(ParseError):
                parse_runbook(text, fmt, source_path=path.name)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    rate = len(texts) / median

    args.report.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "| file | steps | commands | green/yellow/red | decisions | variables | quality | flags |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    args.report.write_text(
        f"# Corpus parse report\n\n{len(texts)} files, {totals['steps']} steps, "
        f"{totals['commands']} commands (green {totals['green']}, yellow {totals['yellow']}, "
        f"red {totals['red']}); {totals['no_steps']} files with no steps; "
        f"{len(failures)} failures.\n\n" + header + "\n".join(rows) + "\n"
    )
    print(f"files: {len(texts)}  parsed: {totals['files']}  failures: {len(failures)}")
    for rel, err in failures:
        print(f"  FAILED {rel}: {err}")
    print(
        f"steps: {totals['steps']}  commands: {totals['commands']}  "
        f"green/yellow/red: {totals['green']}/{totals['yellow']}/{totals['red']}  "
        f"no steps: {totals['no_steps']}"
    )
    print(
        f"throughput: {rate:.0f} runbooks/s (median of {args.runs} passes: "
        f"{median * 1000:.0f} ms; min {min(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms)"
    )
    print(f"report: {args.report}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
