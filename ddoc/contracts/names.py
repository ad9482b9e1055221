"""The names by which processes call each other through Temporal.

Workflow types, their signals and queries, and activity names are the wire contract between the
API, the control-plane worker, the workflows and the agents: callers use these names instead of
importing the code that serves them, so no package imports another side's implementation just
to name it. Recorded histories carry these strings: they never change.
"""

from __future__ import annotations

from typing import Final

# Workflows, their signals and queries.
EXECUTION_WORKFLOW: Final = "RunbookExecution"
DECIDE_SIGNAL: Final = "decide"
ALERT_RESOLVED_SIGNAL: Final = "alert_resolved"
BREAKPOINT_SIGNAL: Final = "breakpoint"
STATE_QUERY: Final = "state"

SLACK_SYNC_WORKFLOW: Final = "SlackSync"
SLACK_CHANGED_SIGNAL: Final = "changed"

# Activities served by the control-plane worker.
CLASSIFY_COMMAND: Final = "ddoc.classify_command"
ESCALATE: Final = "ddoc.escalate"
RECORD_EXECUTION_STATUS: Final = "ddoc.record_execution_status"
RECORD_STEP: Final = "ddoc.record_step"
RECORD_EVENT: Final = "ddoc.record_event"
RECORD_TRANSITION: Final = "ddoc.record_transition"
AFTER_EXECUTION: Final = "ddoc.after_execution"
SLACK_SYNC: Final = "ddoc.slack_sync"

# The activity served by agents, on the tenant's agent task queue.
RUN_COMMAND: Final = "ddoc.run_command"

# One green command an assistant asked for (MCP `run_diagnostic`), through RUN_COMMAND.
DIAGNOSTIC_WORKFLOW: Final = "Diagnostic"

# Self-checks (docs/decisions/0018-self-checks.md): the workflow a tenant's schedule starts, its
# control-plane activities, and the probe agents run.
SELF_CHECK_WORKFLOW: Final = "SelfCheck"
SELF_CHECK_PLAN: Final = "ddoc.self_check_plan"
SELF_CHECK_PREPARE: Final = "ddoc.self_check_prepare"
SELF_CHECK_RECORD: Final = "ddoc.self_check_record"
SELF_CHECK_FINISH: Final = "ddoc.self_check_finish"
SELF_CHECK_DIGEST: Final = "ddoc.self_check_digest"
SELF_CHECK_PROBE: Final = "ddoc.self_check_probe"
