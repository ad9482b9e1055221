"""Alert → runbook matching.

Explicit triggers declared by runbooks come first: a runbook naming the alert in its triggers is
a certain match. When several runbooks claim the same alert, none is attached: they are offered
as suggestions, because attaching one of them silently could be the wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from ddoc import runbooks
from ddoc.alerts import NormalizedAlert


@dataclass
class Candidate:
    runbook_id: str
    title: str
    source_path: str | None
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class MatchResult:
    candidates: list[Candidate]
    attached: Candidate | None

    @property
    def status(self) -> str:
        if self.attached is not None:
            return "attached"
        return "suggested" if self.candidates else "unmatched"


def match_alert(session: Session, *, tenant_id: str, alert: NormalizedAlert) -> MatchResult:
    candidates: list[Candidate] = []
    if alert.alert_name:
        for runbook in runbooks.by_alert_name(
            session, tenant_id=tenant_id, alert_name=alert.alert_name
        ):
            candidates.append(
                Candidate(
                    runbook_id=runbook.id,
                    title=runbook.title,
                    source_path=runbook.source_path,
                    score=1.0,
                    reasons=[f"declares alert {alert.alert_name!r} in its triggers"],
                )
            )
    candidates.sort(key=lambda c: (-c.score, c.title, c.runbook_id))
    attached = candidates[0] if len(candidates) == 1 else None
    if len(candidates) > 1:
        for candidate in candidates:
            candidate.reasons.append(
                f"{len(candidates)} runbooks declare this alert: a human picks one"
            )
    return MatchResult(candidates=candidates[:3], attached=attached)
