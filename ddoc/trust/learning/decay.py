"""Confidence decay: halves every `stale_after_days` without a success, and drops with recent
failures and an old version; under `review_below` the runbook is flagged stale."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ddoc.trust.learning.policy import LearningPolicy
from ddoc.trust.learning.runs import BAD, Evidence


def confidence(
    *,
    evidence: Evidence,
    version_created_at: datetime,
    policy: LearningPolicy,
    now: datetime,
) -> dict[str, Any]:
    """1.0 for a runbook that just worked; halves every `stale_after_days` without a success
    (since the version was written when it never succeeded), x0.8 per failure among the last
    `failure_window` executions, x0.8 once the version is older than `old_version_days`."""
    since = evidence.last_success_at or version_created_at
    idle_days = max(0.0, (now - since).total_seconds() / 86400)
    age_days = max(0.0, (now - version_created_at).total_seconds() / 86400)
    failures = sum(1 for e in evidence.executions[: policy.failure_window] if e.status in BAD)
    value = 0.5 ** (idle_days / policy.stale_after_days) * 0.8**failures
    reasons = []
    if evidence.last_success_at is None:
        if evidence.executions:
            reasons.append(f"never succeeded in {len(evidence.executions)} execution(s)")
        if idle_days >= policy.stale_after_days / 2:
            reasons.append(f"never executed successfully in {idle_days:.0f} days")
    elif idle_days >= policy.stale_after_days / 2:
        reasons.append(f"last success {idle_days:.0f} days ago")
    if failures:
        reasons.append(
            f"{failures} of the last {min(policy.failure_window, len(evidence.executions))} "
            "execution(s) failed or rolled back"
        )
    if age_days > policy.old_version_days:
        value *= 0.8
        reasons.append(f"current version is {age_days:.0f} days old")
    value = round(value, 3)
    return {
        "confidence": value,
        "stale": value < policy.review_below,
        "reasons": reasons,
        "last_success_at": evidence.last_success_at,
        "days_since_success": round(idle_days, 1) if evidence.last_success_at else None,
        "version_age_days": round(age_days, 1),
    }
