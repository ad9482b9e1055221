"""An incident as it is read: the API's answers (`response_model`), what the Slack renderer
renders and what the CLI prints. Same JSON rules as the execution views
(ddoc/execution/views.py): keys some answers lack are unset defaults, serialized with
`exclude_unset`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class MatchStatus(StrEnum):
    ATTACHED = "attached"  # a runbook runs for it
    SUGGESTED = "suggested"  # candidates offered to a human
    UNMATCHED = "unmatched"  # no runbook: a coverage gap
    LIMIT_REACHED = "limit_reached"  # a runbook matched; a blast-radius limit held its start


class CandidateView(BaseModel):
    """A runbook the matcher found for the alert (ddoc/alerts/matching.py `Candidate`)."""

    runbook_id: str
    title: str
    source_path: str | None = None
    score: float
    reasons: list[str] = []
    # Absent from matches stored before they were kept.
    method: str = "hybrid"  # explicit | hybrid
    alert_names: list[str] = []
    learned_trigger_id: str | None = None


class MatchView(BaseModel):
    """What the matcher found when the incident opened."""

    status: MatchStatus | None = None
    candidates: list[CandidateView] = []
    attached: CandidateView | None = None
    # limit_reached: the limit that held the runbook's start {"name", "value", "reason"}
    limit: dict[str, Any] | None = None

    def best(self) -> CandidateView | None:
        return self.attached or next(iter(self.candidates), None)


class IncidentSummary(BaseModel):
    """An incident without its alerts (lists)."""

    id: str
    status: IncidentStatus
    title: str
    source: str
    dedup_key: str
    service: str | None
    severity: str | None
    environment: str | None
    alert_count: int
    match_status: MatchStatus
    runbook_id: str | None
    runbook_version: int | None
    execution_id: str | None
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class IncidentKeyView(BaseModel):
    """A dedup key of the incident: open while its alert fires."""

    dedup_key: str
    open: bool
    alert_count: int
    first_seen: datetime
    last_seen: datetime


class AlertBrief(BaseModel):
    id: str
    source: str
    dedup_key: str
    status: str  # firing | resolved
    title: str
    received_at: datetime


class ResolutionView(BaseModel):
    """Alert received → first human or machine action → resolved, and how it ended."""

    outcome: str  # no_runbook | not_executed | in_progress | a finished execution's status
    resolved: bool
    execution_id: str | None
    first_action_at: datetime | None
    time_to_first_action_seconds: float | None
    time_to_resolve_seconds: float | None


class IncidentView(IncidentSummary):
    """An incident with its alerts, keys and match."""

    labels: dict[str, Any]
    annotations: dict[str, Any]
    match: MatchView | None
    fingerprint: dict[str, Any] | None  # what a pick is learned for (ddoc/alerts/learned.py)
    keys: list[IncidentKeyView]
    alerts: list[AlertBrief]
    resolution: ResolutionView | None = None  # set by `GET /incidents/{id}`
