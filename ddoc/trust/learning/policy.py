"""The learning loop's knobs: how many executions it looks at, what makes a step dead and how
fast confidence decays."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearningPolicy:
    window: int = 20  # the recent finished executions looked at, per runbook
    dead_step_ratio: float = 0.5  # skipped in more than this share of executions...
    dead_step_min_runs: int = 3  # ...that reached the step, with at least this many
    stale_after_days: float = 90.0  # confidence halves this often without a success
    review_below: float = 0.5  # confidence under which a runbook is flagged for review
    old_version_days: float = 365.0  # a version older than this costs confidence too
    failure_window: int = 5  # recent executions whose failures cost confidence


DEFAULT_POLICY = LearningPolicy()
