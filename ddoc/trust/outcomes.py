"""Graded outcomes: did a runbook's runs make their alert go away, and stay away?

Each finished copilot or autopilot execution that was started for an incident is graded from the
stored rows, on read (docs/decisions/0013):

- `resolved`: its incident resolved before the execution finished or within the runbook's
  window after (`mitigated_when.within_seconds` of the current version, default 1800 s);
- `recurred`: an incident of the tenant with the same dedup key, or the same fingerprint, opened
  within 24 h after that resolution (the first such incident is named);
- `overridden`: a human edited a step, skipped or rejected one, aborted or rolled back (the
  steps' accepted decisions and `edited_by`, and the execution's status).

| the incident                                        | grade          | waiting_for |
| --------------------------------------------------- | -------------- | ----------- |
| resolved in the window, recurred within 24 h        | `recurred`     |             |
| resolved in the window, 24 h not over yet           | `pending`      | recurrence  |
| resolved in the window, no recurrence in 24 h       | `mitigated`    |             |
| not resolved (or later), window not over yet        | `pending`      | resolution  |
| not resolved in the window                          | `not_resolved` |             |

A later resolution or recurrence is seen by the next read: nothing is stored, no job runs. The
last `RECENT` graded runs are listed (and feed the `resolves_alert` promotion guard in
ddoc/trust/levels.py); the counts per grade cover all of the runbook's runs, in SQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session

from ddoc.platform.tables import Runbook
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import Mitigation, ParsedRunbook

RECENT = 50  # graded runs listed, and weighed by the promotion guard
RECURRENCE = timedelta(hours=24)
DEFAULT_WINDOW = Mitigation().within_seconds  # 1800 s
GRADES = ("mitigated", "recurred", "not_resolved", "pending")

Grade = Literal["mitigated", "recurred", "not_resolved", "pending"]

# One row per finished copilot/autopilot execution of the runbook started for an incident, with
# its grade, the first recurrence and what a human overrode: every run (for the counts), or the
# `_RECENT` ones (the lateral lookups then run for those only).
_GRADED = """
WITH runs AS (
    SELECT e.id, e.incident_id, e.mode, e.status, e.finished_at,
           i.resolved_at, i.dedup_key, i.fingerprint ->> 'digest' AS digest,
           i.resolved_at IS NOT NULL
             AND i.resolved_at <= e.finished_at + make_interval(secs => :window) AS resolved
    FROM executions e
    JOIN incidents i ON i.id = e.incident_id AND i.tenant_id = e.tenant_id
    WHERE e.tenant_id = :tenant AND e.runbook_id = :runbook
      AND e.mode IN ('copilot', 'autopilot')
      AND e.status IN ('succeeded', 'failed', 'rolled_back', 'aborted')
      AND e.finished_at IS NOT NULL
    {limit}
)
SELECT r.id, r.incident_id, r.mode, r.status, r.finished_at, r.resolved_at, r.resolved,
       again.id AS recurred_incident_id, again.opened_at AS recurred_at,
       CASE
         WHEN r.resolved AND again.id IS NOT NULL THEN 'recurred'
         WHEN r.resolved AND :now < r.resolved_at + :recurrence THEN 'pending'
         WHEN r.resolved THEN 'mitigated'
         WHEN :now < r.finished_at + make_interval(secs => :window) THEN 'pending'
         ELSE 'not_resolved'
       END AS grade,
       ARRAY(
         SELECT CASE d ->> 'decision'
                  WHEN 'edit' THEN 'edited ' || s.step_id
                  WHEN 'skip' THEN 'skipped ' || s.step_id
                  WHEN 'reject' THEN 'rejected ' || s.step_id
                  WHEN 'abort' THEN 'aborted at ' || s.step_id
                  ELSE 'rolled back at ' || s.step_id
                END
         FROM execution_steps s CROSS JOIN LATERAL jsonb_array_elements(s.decisions) d
         WHERE s.execution_id = r.id AND s.tenant_id = :tenant
           AND d ->> 'accepted' = 'true'
           AND d ->> 'decision' IN ('edit', 'skip', 'reject', 'abort', 'rollback')
           AND coalesce(d ->> 'source', '') <> 'temporal'
         UNION ALL
         SELECT 'edited ' || s.step_id FROM execution_steps s
         WHERE s.execution_id = r.id AND s.tenant_id = :tenant AND s.edited_by IS NOT NULL
         UNION ALL
         SELECT replace(r.status, '_', ' ') WHERE r.status IN ('aborted', 'rolled_back')
       ) AS overrides
FROM runs r
LEFT JOIN LATERAL (
    SELECT j.id, j.opened_at FROM incidents j
    WHERE r.resolved AND j.tenant_id = :tenant AND j.id <> r.incident_id
      AND j.opened_at > r.resolved_at AND j.opened_at <= r.resolved_at + :recurrence
      AND (j.dedup_key = r.dedup_key
           OR (r.digest IS NOT NULL AND j.fingerprint ->> 'digest' = r.digest))
    ORDER BY j.opened_at, j.id
    LIMIT 1
) again ON true
{order}
"""
_ORDER = "ORDER BY {}finished_at DESC, {}id DESC"
_RECENT = _GRADED.format(
    limit=_ORDER.format("e.", "e.") + " LIMIT :recent", order=_ORDER.format("r.", "r.")
)
_EVERY = _GRADED.format(limit="", order="")


class OutcomeView(BaseModel):
    """One graded run."""

    execution_id: str
    incident_id: str
    mode: str
    status: str
    finished_at: datetime
    grade: Grade
    waiting_for: Literal["resolution", "recurrence"] | None = Field(
        default=None, description="while pending: the window, or the 24 h after the resolution"
    )
    until: datetime | None = Field(default=None, description="while pending: when it is graded")
    resolved: bool = Field(description="the incident resolved within the window")
    resolved_at: datetime | None
    recurred_incident_id: str | None = None
    overridden: bool
    reasons: list[str] = Field(default_factory=list, description="what a human overrode")


class OutcomesView(BaseModel):
    """A runbook's graded runs: counts over all of them, the most recent listed."""

    window_seconds: int = Field(description="the alert must resolve within this after the run")
    counts: dict[str, int] = Field(description="runs per grade: " + ", ".join(GRADES))
    overridden: int = Field(description="runs in which a human overrode a step")
    recent: list[OutcomeView] = Field(description=f"the last {RECENT}, newest first")


def window_of(parsed: ParsedRunbook) -> int:
    mitigation = parsed.mitigated_when
    return mitigation.within_seconds if mitigation else DEFAULT_WINDOW


def _reasons(overrides: list[str]) -> list[str]:
    """What a human overrode, once each; the execution's own status only when no step says how
    it was stopped (a stop through the API may land between steps)."""
    seen = list(dict.fromkeys(overrides))
    stopped = [r for r in seen if r.startswith(("aborted at ", "rolled back at ", "rejected "))]
    return [r for r in seen if not (stopped and r in ("aborted", "rolled back"))]


def _view(row: Any, window: int) -> OutcomeView:
    waiting_for: Literal["resolution", "recurrence"] | None = None
    until = None
    if row.grade == "pending":
        if row.resolved:
            waiting_for, until = "recurrence", row.resolved_at + RECURRENCE
        else:
            waiting_for, until = "resolution", row.finished_at + timedelta(seconds=window)
    reasons = _reasons(list(row.overrides))
    return OutcomeView(
        execution_id=row.id,
        incident_id=row.incident_id,
        mode=row.mode,
        status=row.status,
        finished_at=row.finished_at,
        grade=row.grade,
        waiting_for=waiting_for,
        until=until,
        resolved=bool(row.resolved),
        resolved_at=row.resolved_at,
        recurred_incident_id=row.recurred_incident_id,
        overridden=bool(reasons),
        reasons=reasons,
    )


def outcomes(
    session: Session,
    *,
    runbook: Runbook,
    recent: int = RECENT,
    now: datetime | None = None,
    window: int | None = None,
) -> OutcomesView:
    """The runbook's graded runs, as of `now` (two queries whatever the number of runs)."""
    if window is None:
        version = runbooks.version(session, tenant_id=runbook.tenant_id, runbook_id=runbook.id)
        window = window_of(ParsedRunbook.from_dict(version.parsed))
    params = {
        "tenant": runbook.tenant_id,
        "runbook": runbook.id,
        "window": window,
        "recurrence": RECURRENCE,
        "now": now or datetime.now(UTC),
    }
    listed = session.execute(text(_RECENT), {**params, "recent": recent})
    rows = [_view(row, window) for row in listed]
    counts: Counter[str] = Counter()
    overridden = 0
    totals = session.execute(
        text(
            "SELECT grade, count(*) AS n, count(*) FILTER (WHERE cardinality(overrides) > 0) AS o"
            f" FROM ({_EVERY}) graded GROUP BY grade"
        ),
        params,
    )
    for row in totals:
        counts[row.grade] = row.n
        overridden += row.o
    return OutcomesView(
        window_seconds=window,
        counts={grade: counts[grade] for grade in GRADES},
        overridden=overridden,
        recent=rows,
    )
