"""The learning loop: what finished executions say about a runbook.

- Effectiveness (`stats`): success rate, median time to resolve, skip/edit/failure rates per
  step, and a score from 0 to 100 (success rate, lowered by half the mean skip rate).
- Dead steps (`stats`): skipped in more than half of the recent executions that reached them.
- Suggested revisions (`revisions`): the commands people edited (and then ran successfully) and
  the dead steps, applied to the current version's text as a diff an editor accepts (it becomes
  the next version) or dismisses (the same changes are not suggested again for that version).
- Confidence decay (`decay`): halves every `stale_after_days` without a success, and drops with
  recent failures and an old version; under `review_below` the runbook is flagged stale.
- Reports (`report`): one runbook's, one incident's resolution, the tenant's health.

All of them read the same rows (`runs`: a runbook's recent finished executions, their steps and
incidents) under one `LearningPolicy` (`policy`). Everything is computed from the execution
trail in Postgres; nothing here calls a model.
"""

from ddoc.trust.learning.decay import confidence
from ddoc.trust.learning.policy import DEFAULT_POLICY, LearningPolicy
from ddoc.trust.learning.report import (
    coverage_gaps,
    health,
    incident_resolution,
    runbook_report,
)
from ddoc.trust.learning.revisions import (
    SuggestionError,
    accept,
    accepted,
    check_open,
    dismiss,
    fingerprint,
    get_suggestion,
    propose,
    save_what_was_done,
    suggest,
    suggestion_view,
    suggestions,
    what_was_done,
)
from ddoc.trust.learning.runs import (
    BAD,
    FINISHED,
    Evidence,
    IncidentFacts,
    RunFacts,
    StepFacts,
    load_evidence,
)
from ddoc.trust.learning.stats import effectiveness, step_stats

__all__ = [
    "BAD",
    "DEFAULT_POLICY",
    "FINISHED",
    "Evidence",
    "IncidentFacts",
    "LearningPolicy",
    "RunFacts",
    "StepFacts",
    "SuggestionError",
    "accept",
    "accepted",
    "check_open",
    "confidence",
    "coverage_gaps",
    "dismiss",
    "effectiveness",
    "fingerprint",
    "get_suggestion",
    "health",
    "incident_resolution",
    "load_evidence",
    "propose",
    "runbook_report",
    "save_what_was_done",
    "step_stats",
    "suggest",
    "suggestion_view",
    "suggestions",
    "what_was_done",
]
