"""Effectiveness: per step of the current version, how often it was reached, run, skipped,
edited, failed and rolled back (a step skipped in more than half of the executions that reached
it is dead), and the runbook's success rate, median time to resolve and score from 0 to 100
(success rate, lowered by half the mean skip rate)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from ddoc.runbooks.model import ParsedRunbook
from ddoc.trust.learning.policy import LearningPolicy
from ddoc.trust.learning.runs import FINISHED, Evidence, seconds

# A step that ran (a failed verification ran too: it counts as a failure of the step).
_RAN = ("succeeded", "failed", "verification_failed")


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return round(statistics.median(found), 3) if found else None


def step_stats(
    parsed: ParsedRunbook, version: int, evidence: Evidence, policy: LearningPolicy
) -> list[dict[str, Any]]:
    """Per step of the current version, over its recent executions of that version."""
    runs = [e for e in evidence.executions if e.runbook_version == version]
    table: dict[str, dict[str, Any]] = {
        s.id: {
            "step_id": s.id,
            "text": s.text,
            "command": s.command,
            "reached": 0,
            "executed": 0,
            "skipped": 0,
            "edited": 0,
            "failed": 0,
            "rolled_back": 0,
            "durations": [],
        }
        for s in parsed.steps
    }
    for execution in runs:
        rows = evidence.steps.get(execution.id, [])
        undone = {r.undoes for r in rows if r.undoes and r.status == "succeeded"}
        for row in rows:
            entry = table.get(row.step_id)
            if entry is None or row.undoes is not None or row.status == "pending":
                continue
            entry["reached"] += 1
            if row.status in _RAN:
                entry["executed"] += 1
            if row.status == "skipped":
                entry["skipped"] += 1
            if row.status in ("failed", "verification_failed"):
                entry["failed"] += 1
            if row.original_command is not None:
                entry["edited"] += 1
            if row.status == "rolled_back" or row.step_id in undone:
                entry["rolled_back"] += 1
            duration = seconds(row.started_at, row.finished_at)
            if duration is not None and row.status in _RAN:
                entry["durations"].append(duration)
    result = []
    for entry in table.values():
        reached = entry["reached"]
        durations = entry.pop("durations")
        entry["median_duration_seconds"] = _median(durations)
        entry["skip_rate"] = round(entry["skipped"] / reached, 3) if reached else None
        entry["dead"] = (
            reached >= policy.dead_step_min_runs
            and entry["skipped"] / reached > policy.dead_step_ratio
        )
        result.append(entry)
    return result


def effectiveness(evidence: Evidence, steps: list[dict[str, Any]]) -> dict[str, Any]:
    finished = evidence.executions
    succeeded = sum(1 for e in finished if e.status == "succeeded")
    rate = succeeded / len(finished) if finished else None
    resolve_times = [
        seconds(i.opened_at, i.resolved_at) for i in evidence.incidents.values() if i.resolved_at
    ]
    skip_rates = [s["skip_rate"] for s in steps if s["skip_rate"] is not None]
    mean_skip = statistics.fmean(skip_rates) if skip_rates else 0.0
    return {
        "executions": len(finished),
        "by_status": {
            status: n
            for status in FINISHED
            if (n := sum(1 for e in finished if e.status == status))
        },
        "success_rate": round(rate, 3) if rate is not None else None,
        "median_time_to_resolve_seconds": _median(t for t in resolve_times if t is not None),
        "mean_skip_rate": round(mean_skip, 3),
        "score": round(100 * rate * (1 - 0.5 * mean_skip), 1) if rate is not None else None,
    }
