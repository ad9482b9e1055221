"""Fire drills: a team practises a runbook against a sandbox environment, and gets a score card.

A drill is an execution in mode `drill`: approvals as in copilot, its commands on the sandbox
environment's own agent task queue (`ddoc.agent.<tenant>.<sandbox>`), a simulated alert, and
escalations that are recorded but page nobody (the workflow never calls the pager in a drill).
It is marked everywhere it shows (its mode, Slack's header, the console) and it teaches the
trust levels, the breaker and the graded outcomes nothing (they count copilot and autopilot
runs only).

The score card is read from the execution's trail when asked for, so it is always the trail's:
time to the first human action, the wait of each approval, the steps skipped or edited by hand,
the steps that failed in the sandbox, and how it compares with the team's previous drills of the
same runbook.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from ddoc.contracts.execution import AlertContext, DecisionKind, ExecutionStatus, StepStatus
from ddoc.execution import store as executions
from ddoc.execution.views import ExecutionView
from ddoc.platform.tables import Drill

SANDBOX = "sandbox"  # the environment a drill runs in when none is named
_MACHINE_SOURCES = {"temporal", "autopilot", "replay"}
_FAILED = (StepStatus.FAILED, StepStatus.UNKNOWN, StepStatus.VERIFICATION_FAILED)


@dataclass
class DrillRequest:
    team: str = "on-call"
    environment: str | None = None  # the sandbox; default SANDBOX
    alert_title: str | None = None  # default "DRILL: <runbook title>"
    service: str | None = None


def simulated_alert(execution_id: str, title: str, service: str | None) -> AlertContext:
    return AlertContext(
        title=title,
        source="drill",
        dedup_key=f"drill:{execution_id}",
        service=service,
        severity="high",
        labels={"ddoc_drill": "true"},
    )


def record(
    session: Session,
    *,
    tenant_id: str,
    execution_id: str,
    runbook_id: str,
    team: str,
    environment: str,
    alert_title: str,
    started_by: str,
) -> None:
    session.add(
        Drill(
            execution_id=execution_id,
            tenant_id=tenant_id,
            runbook_id=runbook_id,
            team=team,
            environment=environment,
            alert_title=alert_title,
            started_by=started_by,
        )
    )


@dataclass
class ApprovalWait:
    step_id: str
    seconds: float


@dataclass
class ScoreCard:
    status: ExecutionStatus
    finished: bool
    duration_seconds: float | None
    time_to_first_action_seconds: float | None  # None: nobody acted (yet)
    approvals: list[ApprovalWait] = field(default_factory=list)
    median_approval_seconds: float | None = None
    skipped_steps: list[str] = field(default_factory=list)  # skipped by a human
    edited_steps: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)  # failed (or unknown) in the sandbox
    escalations: int = 0  # recorded; in a drill none pages anyone
    # Against the team's earlier finished drills of the same runbook (None: this is its first).
    previous_drills: int = 0
    vs_previous: dict[str, float | None] | None = None


def score(view: ExecutionView, events: list[dict[str, Any]]) -> ScoreCard:
    """The score card of one drill, from its trail and its events."""
    actions = [
        _at(d.at)
        for s in view.steps
        for d in s.decisions
        if d.accepted and d.source not in _MACHINE_SOURCES
    ]
    asked: dict[str, list[datetime]] = {}
    began: list[datetime] = [_at(s.started_at) for s in view.steps if s.started_at]
    for event in events:
        when = event["data"].get("asked_at")
        if when:
            began.append(_at(when))
        if event["type"] == "step.awaiting_approval" and event["step_id"]:
            # The workflow's time (as the decisions'); the write's for older events.
            asked.setdefault(event["step_id"], []).append(_at(when or event["at"]))
    # From the first thing the drill did (workflow time, as the decisions are), else its row.
    start = min(began) if began else view.created_at
    first = (min(actions) - start).total_seconds() if actions else None
    approvals: list[ApprovalWait] = []
    for step in view.steps:
        for d in step.decisions:
            if not d.accepted or d.decision != DecisionKind.APPROVE:
                continue
            at = _at(d.at)
            since = [t for t in asked.get(step.id, []) if t <= at]
            if since:
                approvals.append(ApprovalWait(step.id, round((at - max(since)).total_seconds(), 3)))
    finished = view.finished_at is not None
    return ScoreCard(
        status=view.status,
        finished=finished,
        duration_seconds=(view.finished_at - view.created_at).total_seconds()
        if view.finished_at
        else None,
        time_to_first_action_seconds=round(first, 3) if first is not None else None,
        approvals=approvals,
        median_approval_seconds=statistics.median(a.seconds for a in approvals)
        if approvals
        else None,
        skipped_steps=[
            s.id
            for s in view.steps
            if s.status == StepStatus.SKIPPED and (s.detail or "").startswith("skipped")
        ],
        edited_steps=[s.id for s in view.steps if s.edited_by],
        failed_steps=[s.id for s in view.steps if s.status in _FAILED],
        escalations=sum(1 for e in events if e["type"] == "escalated"),
    )


@dataclass
class DrillView:
    execution_id: str
    runbook_id: str
    team: str
    environment: str
    alert_title: str
    started_by: str
    created_at: datetime
    score: ScoreCard


def list_drills(
    session: Session,
    *,
    tenant_id: str,
    runbook_id: str | None = None,
    team: str | None = None,
    limit: int = 100,
) -> list[DrillView]:
    """Drills newest first, each with its score card compared with the same team's earlier
    finished drills of the same runbook."""
    query = select(Drill).where(Drill.tenant_id == tenant_id)
    if runbook_id is not None:
        query = query.where(Drill.runbook_id == runbook_id)
    if team is not None:
        query = query.where(Drill.team == team)
    rows = session.exec(query.order_by(col(Drill.created_at).desc()).limit(limit)).all()
    cards: dict[str, ScoreCard] = {}

    def card_of(execution_id: str) -> ScoreCard:
        if execution_id not in cards:
            view = executions.trail(session, tenant_id=tenant_id, execution_id=execution_id)
            found = executions.events(session, tenant_id=tenant_id, execution_id=execution_id)
            cards[execution_id] = score(view, found)
        return cards[execution_id]

    shown: list[DrillView] = []
    for row in rows:
        card = card_of(row.execution_id)
        earlier = session.exec(
            select(Drill)
            .where(
                Drill.tenant_id == tenant_id,
                Drill.runbook_id == row.runbook_id,
                Drill.team == row.team,
                col(Drill.created_at) < row.created_at,
            )
            .order_by(col(Drill.created_at))
        ).all()
        before = [c for c in (card_of(d.execution_id) for d in earlier) if c.finished]
        card.previous_drills = len(before)
        card.vs_previous = _compare(card, before) if before else None
        shown.append(
            DrillView(
                execution_id=row.execution_id,
                runbook_id=row.runbook_id,
                team=row.team,
                environment=row.environment,
                alert_title=row.alert_title,
                started_by=row.started_by,
                created_at=row.created_at,
                score=card,
            )
        )
    return shown


def _compare(card: ScoreCard, before: list[ScoreCard]) -> dict[str, float | None]:
    """This drill minus the median of the team's earlier ones (negative: faster)."""

    def change(now: float | None, then: list[float | None]) -> float | None:
        known = [t for t in then if t is not None]
        return round(now - statistics.median(known), 3) if now is not None and known else None

    return {
        "time_to_first_action_seconds": change(
            card.time_to_first_action_seconds, [c.time_to_first_action_seconds for c in before]
        ),
        "median_approval_seconds": change(
            card.median_approval_seconds, [c.median_approval_seconds for c in before]
        ),
        "duration_seconds": change(card.duration_seconds, [c.duration_seconds for c in before]),
        "skipped_steps": change(
            float(len(card.skipped_steps)), [float(len(c.skipped_steps)) for c in before]
        ),
        "failed_steps": change(
            float(len(card.failed_steps)), [float(len(c.failed_steps)) for c in before]
        ),
    }


def _at(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
