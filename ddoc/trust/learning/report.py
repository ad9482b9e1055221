"""Reports computed on read: one runbook's (effectiveness, dead steps, decay), one incident's
resolution, and the tenant's health (totals, coverage gaps, stale runbooks, usage and the
effectiveness ranking)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from ddoc.platform.tables import (
    Execution,
    ExecutionStep,
    Incident,
    Runbook,
    RunbookSuggestion,
    RunbookVersion,
)
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.selfcheck import store as self_checks
from ddoc.trust.learning.decay import confidence
from ddoc.trust.learning.policy import DEFAULT_POLICY, LearningPolicy
from ddoc.trust.learning.runs import FINISHED, Evidence, load_evidence, seconds
from ddoc.trust.learning.stats import effectiveness, step_stats


def runbook_report(
    session: Session,
    *,
    tenant_id: str,
    runbook: Runbook,
    policy: LearningPolicy = DEFAULT_POLICY,
    evidence: Evidence | None = None,
    version: RunbookVersion | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    version = version or runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
    if evidence is None:
        evidence = load_evidence(
            session, tenant_id=tenant_id, runbook_ids=[runbook.id], window=policy.window
        )[runbook.id]
    parsed = ParsedRunbook.from_dict(version.parsed)
    steps = step_stats(parsed, version.version, evidence, policy)
    return {
        "runbook_id": runbook.id,
        "title": runbook.title,
        "trust_level": runbook.trust_level,
        "version": version.version,
        "window": policy.window,
        "effectiveness": effectiveness(evidence, steps),
        "steps": steps,
        "dead_steps": [s["step_id"] for s in steps if s["dead"]],
        "decay": confidence(
            evidence=evidence,
            version_created_at=version.created_at,
            policy=policy,
            now=now or datetime.now(UTC),
        ),
    }


# --- per incident ---------------------------------------------------------------------------------


def incident_resolution(session: Session, *, tenant_id: str, incident: Incident) -> dict[str, Any]:
    """Alert received → first human or machine action → resolved, and how it ended."""
    execution = (
        session.exec(
            select(Execution).where(
                Execution.id == incident.execution_id, Execution.tenant_id == tenant_id
            )
        ).first()
        if incident.execution_id
        else None
    )
    first_action: datetime | None = None
    if execution is not None:
        rows = session.exec(
            select(ExecutionStep).where(
                ExecutionStep.execution_id == execution.id, ExecutionStep.tenant_id == tenant_id
            )
        ).all()
        moments = [r.started_at for r in rows if r.started_at] + [
            datetime.fromisoformat(d["at"])
            for r in rows
            for d in r.decisions
            if d.get("accepted") and d.get("at")
        ]
        first_action = min(moments, default=None)
    if execution is None:
        outcome = (
            "no_runbook"
            if incident.match_status not in ("attached", "limit_reached")
            else "not_executed"
        )
    elif execution.status in FINISHED:
        outcome = execution.status
    else:
        outcome = "in_progress"
    return {
        "outcome": outcome,
        "resolved": incident.resolved_at is not None,
        "execution_id": execution.id if execution else None,
        "first_action_at": first_action,
        "time_to_first_action_seconds": _round(seconds(incident.opened_at, first_action)),
        "time_to_resolve_seconds": _round(seconds(incident.opened_at, incident.resolved_at)),
    }


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


# --- the tenant's health -------------------------------------------------------------------------


def health(
    session: Session,
    *,
    tenant_id: str,
    days: int = 30,
    policy: LearningPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
    gap_limit: int = 50,
) -> dict[str, Any]:
    """Totals, coverage gaps, stale runbooks, usage and the effectiveness ranking."""
    now = now or datetime.now(UTC)
    since = now.timestamp() - days * 86400
    since_at = datetime.fromtimestamp(since, UTC)
    books = runbooks.list_runbooks(session, tenant_id=tenant_id)
    ids = [b.id for b in books]
    evidence = load_evidence(session, tenant_id=tenant_id, runbook_ids=ids, window=policy.window)
    versions = {
        v.runbook_id: v
        for v in session.exec(
            select(RunbookVersion)
            .join(
                Runbook,
                (col(Runbook.id) == col(RunbookVersion.runbook_id))
                & (col(Runbook.current_version) == col(RunbookVersion.version)),
            )
            .where(RunbookVersion.tenant_id == tenant_id, col(RunbookVersion.runbook_id).in_(ids))
        )
    }
    usage = dict(
        session.exec(
            select(Execution.runbook_id, func.count())
            .where(Execution.tenant_id == tenant_id, col(Execution.created_at) >= since_at)
            .group_by(col(Execution.runbook_id))
        ).all()
    )
    open_suggestions = dict(
        session.exec(
            select(RunbookSuggestion.runbook_id, RunbookSuggestion.id).where(
                RunbookSuggestion.tenant_id == tenant_id, RunbookSuggestion.status == "open"
            )
        ).all()
    )
    rows = []
    for book in books:
        report = runbook_report(
            session,
            tenant_id=tenant_id,
            runbook=book,
            policy=policy,
            evidence=evidence[book.id],
            version=versions[book.id],
            now=now,
        )
        rows.append(
            {
                "runbook_id": book.id,
                "title": book.title,
                "trust_level": book.trust_level,
                "version": report["version"],
                "executions_in_period": usage.get(book.id, 0),
                **{
                    k: report["effectiveness"][k]
                    for k in ("score", "success_rate", "median_time_to_resolve_seconds")
                },
                "executions_counted": report["effectiveness"]["executions"],
                "dead_steps": report["dead_steps"],
                "confidence": report["decay"]["confidence"],
                "stale": report["decay"]["stale"],
                "stale_reasons": report["decay"]["reasons"],
                "open_suggestion": open_suggestions.get(book.id),
            }
        )
    ranking = sorted(
        rows, key=lambda r: (r["score"] is None, -(r["score"] or 0), r["title"].lower())
    )
    counts = session.execute(
        text(
            "SELECT count(*) AS incidents,"
            " count(*) FILTER (WHERE execution_id IS NOT NULL) AS with_execution,"
            " count(*) FILTER (WHERE runbook_id IS NULL) AS without_runbook"
            " FROM incidents WHERE tenant_id = :tenant AND opened_at >= :since"
        ),
        {"tenant": tenant_id, "since": since_at},
    ).one()
    executions_by_status = dict(
        session.exec(
            select(Execution.status, func.count())
            .where(Execution.tenant_id == tenant_id, col(Execution.created_at) >= since_at)
            .group_by(col(Execution.status))
        ).all()
    )
    by_trust: dict[str, int] = defaultdict(int)
    for book in books:
        by_trust[book.trust_level] += 1
    return {
        "generated_at": now,
        "period_days": days,
        "totals": {
            "runbooks": len(books),
            "by_trust_level": dict(by_trust),
            "incidents": counts.incidents,
            "incidents_with_execution": counts.with_execution,
            "incidents_without_runbook": counts.without_runbook,
            "executions": sum(executions_by_status.values()),
            "executions_by_status": executions_by_status,
            "stale_runbooks": sum(1 for r in rows if r["stale"]),
            "open_suggestions": len(open_suggestions),
        },
        "coverage_gaps": coverage_gaps(
            session, tenant_id=tenant_id, since=since_at, limit=gap_limit
        ),
        "stale": [r for r in ranking if r["stale"]],
        "usage": sorted(rows, key=lambda r: (-r["executions_in_period"], r["title"].lower())),
        "ranking": ranking,
        # The tenant's last self-check run (None: never run): its line on the health page.
        "self_check": self_checks.summary(session, tenant_id=tenant_id),
    }


def coverage_gaps(
    session: Session, *, tenant_id: str, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """Alerts and services seen with no runbook attached or picked, most frequent first."""
    rows = session.execute(
        text(
            "SELECT coalesce(labels->>'alertname', title) AS alert, service,"
            " count(*) AS incidents, sum(alert_count) AS alerts, max(last_seen_at) AS last_seen,"
            " bool_or(match_status = 'suggested') AS had_suggestions"
            " FROM incidents WHERE tenant_id = :tenant AND opened_at >= :since"
            " AND runbook_id IS NULL"
            " GROUP BY 1, 2 ORDER BY count(*) DESC, max(last_seen_at) DESC LIMIT :limit"
        ),
        {"tenant": tenant_id, "since": since, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]
