"""Slack Block Kit for an execution: the incident message (updated in place as the execution
moves), each finished step's output in its thread, escalation notices, and the shift handoff.

Why this file is long: every message shares the same escaping and bounding helpers.

Pure functions of the typed views (ddoc/execution/views.py, ddoc/alerts/views.py): no I/O.
activities/slack.py still hands them as the plain dicts `store.view` and `incidents.view`
return, parsed here once. Every piece of user-provided text (step text, commands, outputs,
alert titles, match reasons, ...) is escaped for mrkdwn (`&`, `<`, `>`: Slack's rule, so an
output can neither mention `<!channel>` nor forge a link) and bounded so that each field stays
within Slack's limits (section text 3,000 characters, button text 75, button value 2,000,
header 150, 50 blocks per message)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ddoc.alerts.views import CandidateView, IncidentStatus, IncidentView, MatchStatus
from ddoc.contracts.execution import (
    AwaitKind,
    DecisionKind,
    ExecutionMode,
    ExecutionStatus,
    StepStatus,
)
from ddoc.contracts.roles import Role
from ddoc.execution.store import TERMINAL_STATUSES
from ddoc.execution.views import (
    AwaitingView,
    EscalationView,
    ExecutionEventView,
    ExecutionView,
    StepView,
)
from ddoc.runbooks.model import RiskClass
from ddoc.slack.inbound import ACTION_PREFIX, button_value

MAX_BLOCKS = 50  # Slack's limit per message
SECTION_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
VALUE_LIMIT = 2000
HEADER_LIMIT = 150
ACTION_ID_LIMIT = 255
ACTIONS_PER_BLOCK = 25
OUTPUT_LIMIT = 3000  # a step's output reply in the thread
TEXT_LIMIT = 3000  # channel notices and the handoff
COLLAPSE_AT = 35  # more steps than this: the finished ones become one summary line
STEP_TEXT_LIMIT = 300
COMMAND_LIMIT = 500
DETAIL_LIMIT = 300
MAX_SUGGESTIONS = 5
MAX_BRANCH_BUTTONS = 18
MAX_PREREQUISITES = 20
MAX_AWAITING_SHOWN = 3
HANDOFF_ITEMS = 12  # per section of the handoff

FINISHED_STEP = frozenset(
    {
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.SKIPPED,
        StepStatus.ROLLED_BACK,
        StepStatus.VERIFICATION_FAILED,
    }
)

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ELLIPSIS = "…"

BADGES = {RiskClass.GREEN: "🟢", RiskClass.YELLOW: "🟡", RiskClass.RED: "🔴"}
NO_RISK_BADGE = "⚪"

_EXECUTION_WORDS = {
    ExecutionStatus.RUNNING: "▶️ running",
    ExecutionStatus.AWAITING_HUMAN: "⏳ awaiting a human",
    ExecutionStatus.STALLED: "⛔ stalled",
    ExecutionStatus.SUCCEEDED: "✅ succeeded",
    ExecutionStatus.FAILED: "❌ failed",
    ExecutionStatus.ROLLED_BACK: "↩️ rolled back",
    ExecutionStatus.ABORTED: "🛑 aborted",
}
_STEP_WORDS = {
    StepStatus.PENDING: "pending",
    StepStatus.AWAITING_APPROVAL: "awaiting approval",
    StepStatus.RUNNING: "running…",
    StepStatus.SUCCEEDED: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.SKIPPED: "skipped",
    StepStatus.ROLLED_BACK: "rolled back",
    StepStatus.UNKNOWN: "outcome unknown",
    StepStatus.VERIFICATION_FAILED: "ran, but its verification failed",
}
_AWAIT_WORDS = {
    AwaitKind.APPROVAL: "awaiting approval",
    AwaitKind.VALUES: "awaiting values",
    AwaitKind.CHOICE: "awaiting a choice",
    AwaitKind.DONE: "waiting to be done by hand",
    AwaitKind.OUTCOME: "outcome unknown: check, then decide",
    AwaitKind.AGENT: "waiting for an agent",
    AwaitKind.VERIFICATION: "verification failed: roll back, or decide",
    AwaitKind.BREAKPOINT: "paused at a breakpoint",
}
_STATUS_PLAIN = {
    ExecutionStatus.RUNNING: "running",
    ExecutionStatus.AWAITING_HUMAN: "awaiting a human",
    ExecutionStatus.STALLED: "stalled",
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.ROLLED_BACK: "rolled back",
    ExecutionStatus.ABORTED: "aborted",
}
_MODE_WORDS = {
    ExecutionMode.READ_ALONG: "read-along",
    ExecutionMode.COPILOT: "copilot",
    ExecutionMode.AUTOPILOT: "autopilot",
    ExecutionMode.DRY_RUN: "dry run",
    ExecutionMode.DRILL: "🧪 DRILL: nobody is paged",
}
# Decisions with a button of their own under the awaiting step, in this order. Rollback and
# abort are execution-wide: the last actions block carries them.
_BUTTONS: dict[DecisionKind, tuple[str, str | None]] = {
    DecisionKind.APPROVE: ("Approve", "primary"),
    DecisionKind.CONTINUE: ("Continue", "primary"),
    DecisionKind.REJECT: ("Reject", "danger"),
    DecisionKind.DONE: ("Mark done", "primary"),
    DecisionKind.RETRY: ("Retry", None),
    DecisionKind.SKIP: ("Skip", None),
    DecisionKind.EDIT: ("Edit", None),
}
_DECIDED = {
    DecisionKind.APPROVE: "approved",
    DecisionKind.REJECT: "rejected",
    DecisionKind.SKIP: "skipped",
    DecisionKind.EDIT: "edited",
    DecisionKind.CHOOSE: "chose",
    DecisionKind.DONE: "marked done",
    DecisionKind.ROLLBACK: "rolled back",
    DecisionKind.ABORT: "aborted",
    DecisionKind.RETRY: "retried",
    DecisionKind.PROVIDE: "provided values",
    DecisionKind.CONTINUE: "continued",
}
# An incident with no execution yet (suggestions, or no runbook) is still going on; its
# message has no execution to describe.
_NO_EXECUTION_STATUS = ExecutionStatus.RUNNING
_NO_EXECUTION_LINE = "-"


class Prerequisite(BaseModel):
    text: str
    kind: str | None = None  # access | vpn | tool | other


class RunbookBrief(BaseModel):
    """What the incident message shows of the runbook version that runs."""

    title: str | None = None
    prerequisites: list[Prerequisite] = []


class NoticeData(BaseModel):
    """What an escalated, stalled, escalation_failed, trust_demoted or breaker_opened event
    carries."""

    model_config = ConfigDict(populate_by_name=True)

    level: int | None = None
    name: str | None = None
    reason: str | None = None
    paged: bool | None = None
    detail: str | None = None
    demoted_from: str | None = Field(default=None, alias="from")
    demoted_to: str | None = Field(default=None, alias="to")
    requested_by: str | None = None  # approval_requested: the assistant (key and client)
    comment: str | None = None


ViewT = TypeVar("ViewT", bound=BaseModel)


# --- the incident message ---------------------------------------------------------------------


def incident_message(
    execution: ExecutionView | Mapping[str, Any] | None,
    *,
    incident: IncidentView | Mapping[str, Any] | None = None,
    runbook: RunbookBrief | Mapping[str, Any] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for the execution's message in the incident channel; with no
    execution (None, or activities/slack.py's stub without an id), the incident's own message
    offering its suggestions."""
    view = _execution_or_none(execution)
    about = _parsed(IncidentView, incident) if incident is not None else None
    brief = _parsed(RunbookBrief, runbook) if runbook is not None else None
    execution_id = view.id if view else ""
    status = view.status if view else _NO_EXECUTION_STATUS
    finished = status in TERMINAL_STATUSES
    steps = view.steps if view else []
    current = view.current_step if view else None
    title = _title(view, about, brief)
    actions = _Actions()
    interactive = bool(execution_id) and not finished

    head: list[dict[str, Any]] = [_header(f"{title} — {_EXECUTION_WORDS[status]}")]
    head.append(_context(_execution_line(view)))
    notes = _notes(view, finished)
    if notes:
        head.append(_context(notes))
    if about is not None:
        head.extend(
            _alert_blocks(execution_id, bool(steps), about, actions, interactive=not finished)
        )
    prerequisites = _prerequisites(brief)
    if prerequisites:
        head.append(_section(prerequisites))

    waiting = [s for s in steps if s.awaiting is not None][:MAX_AWAITING_SHOWN]
    tail: list[dict[str, Any]] = []
    if interactive:
        tail.append(_controls(execution_id, actions))
    divider = 1 if steps else 0
    awaiting_blocks = 2 * len(waiting) if not finished else 0
    budget = MAX_BLOCKS - len(head) - len(tail) - divider - awaiting_blocks

    body: list[dict[str, Any]] = [{"type": "divider"}] if steps else []
    must = {s.id for s in waiting} | ({current} if current else set())
    for entry in _step_entries(steps, must, budget):
        if isinstance(entry, str):
            body.append(_context(entry))
            continue
        body.append(_section(_step_text(entry, current=entry.id == current)))
        awaiting = entry.awaiting
        if awaiting is not None and any(entry is w for w in waiting) and not finished:
            body.append(_context(_awaiting_line(execution_id, entry, awaiting)))
            buttons = (
                _awaiting_buttons(execution_id, entry.id, awaiting, actions) if interactive else []
            )
            if buttons:
                body.append({"type": "actions", "elements": buttons[:ACTIONS_PER_BLOCK]})
            else:
                body.append(_context(_no_buttons_line(awaiting, interactive)))
    blocks = (head + body + tail)[:MAX_BLOCKS]
    return _fallback(title, status, [] if finished else steps, current), blocks


def _execution_or_none(value: ExecutionView | Mapping[str, Any] | None) -> ExecutionView | None:
    """activities/slack.py hands the trail as a dict, and for "no execution yet" a stub without
    an id."""
    if value is None or isinstance(value, ExecutionView):
        return value
    return ExecutionView.model_validate(value) if value.get("id") else None


def _parsed(kind: type[ViewT], value: ViewT | Mapping[str, Any]) -> ViewT:
    """The typed view of what activities/slack.py hands over as a dict."""
    return value if isinstance(value, kind) else kind.model_validate(value)


def _title(
    execution: ExecutionView | None, incident: IncidentView | None, runbook: RunbookBrief | None
) -> str:
    for candidate in (
        runbook.title if runbook else None,
        execution.runbook_id if execution else None,
        incident.title if incident else None,
    ):
        if candidate and candidate.strip():
            return candidate.strip()
    return "dd0c/run"


def _fallback(
    title: str, status: ExecutionStatus, steps: list[StepView], current: str | None
) -> str:
    line = f"dd0c/run: {_clip(title, 150)} — {_STATUS_PLAIN[status]}"
    waiting = next(
        (s for s in steps if s.id == current and s.awaiting is not None),
        next((s for s in steps if s.awaiting is not None), None),
    )
    if waiting is not None and waiting.awaiting is not None:
        line += f" (step {_clip(waiting.id, 60)} awaits {waiting.awaiting.kind})"
    return _esc(line, 400)


def _execution_line(execution: ExecutionView | None) -> str:
    if execution is None:
        return _NO_EXECUTION_LINE
    parts = []
    if execution.id:
        parts.append(f"`{_esc(execution.id, 100)}`")
    parts.append(_esc(_MODE_WORDS[execution.mode], 40))
    if execution.environment:
        parts.append(f"env *{_esc(execution.environment, 80)}*")
    if execution.started_by:
        parts.append(f"started by {_esc(execution.started_by, 100)}")
    if execution.runbook_id:
        version = f" v{_esc(execution.runbook_version, 12)}"
        parts.append(f"runbook `{_esc(execution.runbook_id, 100)}`{version}")
    parts.append(f"started {_esc(_when(execution.created_at), 40)}")
    if execution.finished_at:
        parts.append(f"finished {_esc(_when(execution.finished_at), 40)}")
    return " · ".join(parts)


def _notes(execution: ExecutionView | None, finished: bool) -> str:
    if execution is None:
        return ""
    notes = []
    if execution.alert_resolved:
        notes.append("✅ The alert has resolved.")
    if execution.incident_escalated:
        notes.append("🚨 The incident was escalated: not resolved in time.")
    for escalation in execution.escalations[-3:]:
        notes.append(_escalation_note(escalation))
    if execution.live is False and not finished:
        notes.append("_Live state unavailable: showing the recorded trail._")
    return "\n".join(notes)


def _escalation_note(escalation: EscalationView) -> str:
    name = escalation.name
    who = f"level {_esc(escalation.level, 12)}" + (f" ({_esc(name, 80)})" if name else "")
    step = escalation.step_id
    where = f" for step {_esc(step, 60)}" if step else ""
    outcome = "paged" if escalation.paged else "not paged"
    detail = escalation.detail
    return f"📟 Escalated to {who}{where}: {outcome}" + (
        f" ({_esc(detail, 150)})" if detail else ""
    )


def _alert_blocks(
    execution_id: str,
    has_steps: bool,
    incident: IncidentView,
    actions: _Actions,
    *,
    interactive: bool,
) -> list[dict[str, Any]]:
    lines = [f"*🔔 {_esc(incident.title or 'Alert', 300)}*"]
    facts = []
    if incident.service:
        facts.append(f"service `{_esc(incident.service, 100)}`")
    if incident.severity:
        facts.append(f"severity *{_esc(incident.severity, 40)}*")
    if incident.source:
        facts.append(f"source {_esc(incident.source, 60)}")
    if incident.environment:
        facts.append(f"env {_esc(incident.environment, 60)}")
    if incident.alert_count > 1:
        facts.append(f"{incident.alert_count} alerts")
    if incident.status == IncidentStatus.RESOLVED:
        facts.append("resolved")
    if facts:
        lines.append(" · ".join(facts))

    match = incident.match
    candidates = match.candidates if match else []
    buttons: list[dict[str, Any]] = []
    if incident.match_status == MatchStatus.UNMATCHED:
        lines.append("*No runbook found* for this alert.")
    elif incident.match_status == MatchStatus.LIMIT_REACHED:
        limit = (match.limit if match else None) or {}
        lines.append(
            "*Runbook not started:* "
            + _esc(str(limit.get("reason") or "a blast-radius limit was reached"), 300)
        )
        lines.append("A human decides: run it anyway, or another one.")
        lines.extend(
            f"{n}. {_candidate_line(c)}" for n, c in enumerate(candidates[:MAX_SUGGESTIONS], 1)
        )
        if interactive and not has_steps:
            buttons = _pick_buttons(execution_id, incident.id, candidates, actions)
    elif incident.match_status == MatchStatus.SUGGESTED:
        lines.append("*No runbook attached.* Suggestions:")
        lines.extend(
            f"{n}. {_candidate_line(c)}" for n, c in enumerate(candidates[:MAX_SUGGESTIONS], 1)
        )
        if not candidates:
            lines.append("_(none recorded)_")
        if interactive and not has_steps:
            buttons = _pick_buttons(execution_id, incident.id, candidates, actions)
    else:
        best = match.best() if match else None
        line = f"Runbook match: *{_esc(incident.match_status, 40)}*"
        if best is not None:
            line += f" (confidence {_confidence(best)})"
        lines.append(line)
        reasons = [r for r in best.reasons if r] if best else []
        lines.extend(f"• {_esc(r, 200)}" for r in reasons[:3])
    blocks = [_section("\n".join(lines))]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _pick_buttons(
    execution_id: str,
    incident_id: str,
    candidates: list[CandidateView],
    actions: _Actions,
) -> list[dict[str, Any]]:
    buttons = []
    for n, candidate in enumerate(candidates[:MAX_SUGGESTIONS], start=1):
        if not candidate.runbook_id:
            continue
        button = _button(
            actions,
            f"{ACTION_PREFIX}pick_runbook_{n}",
            f"Run {n}: {candidate.title or candidate.runbook_id}",
            button_value(execution_id, None, "pick", r=candidate.runbook_id, i=incident_id),
        )
        if button is not None:
            buttons.append(button)
    return buttons


def _confidence(candidate: CandidateView) -> str:
    return f"{candidate.score:.2f}"


def _candidate_line(candidate: CandidateView) -> str:
    line = f"`{_esc(candidate.runbook_id, 80)}`" if candidate.runbook_id else ""
    if candidate.title:
        line += (" " if line else "") + _esc(candidate.title, 150)
    line += f" — {_confidence(candidate)}"
    reasons = [r for r in candidate.reasons if r]
    if reasons:
        line += f" ({_esc(reasons[0], 150)})"
    return line


def _prerequisites(runbook: RunbookBrief | None) -> str:
    items = runbook.prerequisites if runbook else []
    if not items:
        return ""
    lines = ["*Before you start*"]
    for item in items[:MAX_PREREQUISITES]:
        kind = item.kind
        suffix = f" _({_esc(kind, 20)})_" if kind and kind != "other" else ""
        lines.append(f"☐ {_esc(item.text, 120)}{suffix}")
    if len(items) > MAX_PREREQUISITES:
        lines.append(f"… and {len(items) - MAX_PREREQUISITES} more")
    return "\n".join(lines)


def _step_entries(steps: list[StepView], must: set[str], budget: int) -> list[StepView | str]:
    """The steps to show one section each, and summary lines (str) standing for the others,
    in at most `budget` blocks."""
    budget = max(budget, 2)
    if len(steps) <= min(COLLAPSE_AT, budget):
        return list(steps)

    def is_finished(step: StepView) -> bool:
        return step.status in FINISHED_STEP and step.id not in must

    finished = [s for s in steps if is_finished(s)]
    rest = [s for s in steps if not is_finished(s)]
    entries: list[StepView | str] = []
    if finished:
        entries.append(_finished_summary(finished))
    room = budget - len(entries)
    if len(rest) <= room:
        return entries + list(rest)
    room -= 1  # the "… and N more" line
    keep_ids = {id(s) for s in rest if s.id in must}
    for step in rest:
        if len(keep_ids) >= room:
            break
        keep_ids.add(id(step))
    shown = [s for s in rest if id(s) in keep_ids][: max(room, 0)]
    hidden = len(rest) - len(shown)
    entries.extend(shown)
    if hidden:
        entries.append(f"… and {hidden} more step{'s' if hidden != 1 else ''} not shown")
    return entries


def _finished_summary(finished: list[StepView]) -> str:
    counts: dict[StepStatus, int] = {}
    for step in finished:
        counts[step.status] = counts.get(step.status, 0) + 1
    parts = [f"{n} {_STEP_WORDS[status]}" for status, n in counts.items()]
    line = f"✔ {len(finished)} finished steps: " + ", ".join(parts)
    failed = [
        s.id for s in finished if s.status in (StepStatus.FAILED, StepStatus.VERIFICATION_FAILED)
    ]
    if failed:
        names = ", ".join(_esc(f, 40) for f in failed[:10])
        line += f" (failed: {names}{', …' if len(failed) > 10 else ''})"
    return line


def _badge(risk: RiskClass | None) -> str:
    return BADGES[risk] if risk is not None else NO_RISK_BADGE


def _step_text(step: StepView, *, current: bool) -> str:
    step_id = _esc(step.id or "?", 60)
    words = _STEP_WORDS[step.status]
    asks = step.status not in FINISHED_STEP or step.status == StepStatus.VERIFICATION_FAILED
    if step.awaiting is not None and asks:
        words = _AWAIT_WORDS[step.awaiting.kind]
    outcomes = (
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.UNKNOWN,
        StepStatus.VERIFICATION_FAILED,
    )
    if step.exit_code is not None and step.status in outcomes:
        words += f" (exit {_esc(step.exit_code, 12)})"
    parts = [step_id]
    if step.undoes:
        parts.append(f"↩ undo {_esc(step.undoes, 60)}")
    elif step.kind in ("manual", "decision", "escalate"):
        parts.append(_esc(step.kind, 20))
    parts.append(words)
    if step.parallel:
        parts.append(f"∥ side by side ({_esc(step.parallel, 20)})")
    if step.dry_run:
        parts.append("dry run")
    if step.edited_by:
        parts.append(f"edited by {_esc(step.edited_by, 60)}")
    first = " · ".join(parts)
    badge = _badge(step.risk)
    first = f"▶ {badge} *{first}*" if current else f"{badge} {first}"
    lines = [first]
    if step.text.strip():
        lines.append(_esc(step.text, STEP_TEXT_LIMIT))
    command = step.command or ""
    if command.strip():
        lines.append(_code(command, COMMAND_LIMIT))
    if (step.detail or "").strip():
        lines.append(f"💬 {_esc(step.detail, DETAIL_LIMIT)}")
    return "\n".join(lines)


def _awaiting_line(execution_id: str, step: StepView, awaiting: AwaitingView) -> str:
    parts = [f"⏳ {_esc(awaiting.message or 'Waiting for a decision.', 500)}"]
    needed = awaiting.approvals_needed
    approved = [a for a in awaiting.approved_by if a]
    if needed > 0:
        by = f" (by {_esc(', '.join(approved), 200)})" if approved else ""
        parts.append(f"approvals {len(approved)}/{needed}{by}")
    role = awaiting.role
    if role != Role.RESPONDER:
        article = "an " if role.at_least(Role.APPROVER) else ""
        parts.append(f"needs {article}{_esc(role, 30)}")
    missing = [m for m in awaiting.missing if m]
    if missing:
        parts.append("missing: " + _esc(", ".join(missing), 300))
    if awaiting.deadline:
        parts.append(f"escalates at {_esc(_when(awaiting.deadline), 60)}")
    if awaiting.escalation_level > 0:
        parts.append(f"escalated to level {awaiting.escalation_level}")
    if DecisionKind.PROVIDE in awaiting.allowed:
        example = (
            f"`ddoc exec provide {_esc(execution_id or '<execution>', 100)} "
            f"{_esc(step.id or '<step>', 60)} --var NAME=VALUE`"
        )
        parts.append(f"provide values with {example} or the API")
    return " · ".join(parts)


def _no_buttons_line(awaiting: AwaitingView, interactive: bool) -> str:
    if not interactive:
        return "_Decide with the CLI or the API._"
    if DecisionKind.PROVIDE in awaiting.allowed:
        return "_Provide the values with the CLI or the API._"
    return "_Nothing to click here: decide with the CLI or the API._"


def _awaiting_buttons(
    execution_id: str, step_id: str, awaiting: AwaitingView, actions: _Actions
) -> list[dict[str, Any]]:
    allowed = awaiting.allowed
    buttons: list[dict[str, Any]] = []
    if DecisionKind.CHOOSE in allowed:
        for n, condition in enumerate(awaiting.branches[:MAX_BRANCH_BUTTONS], start=1):
            button = _button(
                actions,
                f"{ACTION_PREFIX}choose_{step_id}_{n}",
                condition.strip() or f"Branch {n}",
                button_value(execution_id, step_id, "choose", b=str(n)),
            )
            if button is not None:
                buttons.append(button)
        neither = _button(
            actions,
            f"{ACTION_PREFIX}choose_{step_id}_neither",
            "Neither",
            button_value(execution_id, step_id, "choose", b="neither"),
        )
        if neither is not None:
            buttons.append(neither)
    for decision, (label, style) in _BUTTONS.items():
        if decision not in allowed:
            continue
        button = _button(
            actions,
            f"{ACTION_PREFIX}{decision}_{step_id}",
            label,
            button_value(execution_id, step_id, decision),
            style=style,
        )
        if button is not None:
            buttons.append(button)
    return buttons


def _controls(execution_id: str, actions: _Actions) -> dict[str, Any]:
    elements = [
        _button(
            actions,
            f"{ACTION_PREFIX}rollback",
            "Roll back",
            button_value(execution_id, None, "rollback"),
            style="danger",
            confirm=_confirm(
                "Roll back?",
                "Stop here and undo the completed steps (their compensations run).",
                "Roll back",
            ),
        ),
        _button(
            actions,
            f"{ACTION_PREFIX}abort",
            "Abort",
            button_value(execution_id, None, "abort"),
            confirm=_confirm("Abort?", "Stop here and undo nothing.", "Abort"),
        ),
    ]
    return {"type": "actions", "elements": [e for e in elements if e is not None]}


class _Actions:
    """The action ids used in one message: Slack wants them unique."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def unique(self, wanted: str) -> str:
        base = wanted[: ACTION_ID_LIMIT - 8]
        action_id, n = base, 1
        while action_id in self.used:
            n += 1
            action_id = f"{base}_{n}"
        self.used.add(action_id)
        return action_id


def _button(
    actions: _Actions,
    action_id: str,
    label: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    if len(value) > VALUE_LIMIT:
        return None  # ids this long are not ours: no button rather than a broken one
    button: dict[str, Any] = {
        "type": "button",
        "action_id": actions.unique(action_id),
        "text": {"type": "plain_text", "text": _clip(label, BUTTON_TEXT_LIMIT), "emoji": True},
        "value": value,
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _confirm(title: str, text: str, confirm: str) -> dict[str, Any]:
    return {
        "title": {"type": "plain_text", "text": title},
        "text": {"type": "plain_text", "text": text},
        "confirm": {"type": "plain_text", "text": confirm},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    }


# --- thread replies and channel notices -------------------------------------------------------


def step_output_message(step: StepView | Mapping[str, Any]) -> str:
    """The thread reply carrying one finished step's output: mrkdwn with the command and the
    output in a code block, bounded to 3,000 characters (head and tail kept, the cut said),
    noting when the agent had already truncated it (`output_truncated`)."""
    step = _parsed(StepView, step)
    words = _STEP_WORDS[step.status]
    if step.exit_code is not None:
        words += f" (exit {_esc(step.exit_code, 12)})"
    head = f"{_badge(step.risk)} *{_esc(step.id or '?', 60)}* · {words}"
    command = step.command or ""
    if command.strip():
        head += "\n" + _code(command, COMMAND_LIMIT)
    notes = []
    if step.output_truncated:
        notes.append("_The agent truncated this output before sending it._")
    raw = _neutralize_fences(step.output or "")
    if not raw.strip():
        return _fit("\n".join([head, "_(no output)_", *notes]), OUTPUT_LIMIT)
    fence_open, fence_close = "```\n", "\n```"
    reserve = len(head) + sum(len(n) + 1 for n in notes) + len(fence_open) + len(fence_close) + 2
    budget = max(OUTPUT_LIMIT - reserve, 200)
    escaped = _esc(raw)
    if len(escaped) <= budget:
        body = escaped
    else:
        marker_room = 64 + 100  # the cut marker, and the note saying how much was cut
        half = max((budget - marker_room) // 2, 50)
        first, used_head = _esc_prefix(raw, half)
        newline = raw.rfind("\n", 0, used_head)
        if newline >= used_head - 200:  # end the head on a whole line when that is cheap
            used_head = newline + 1
            first = _esc(raw[:used_head])
        last, used_tail = _esc_suffix(raw[used_head:], half)
        newline = raw.find("\n", len(raw) - used_tail)
        if newline != -1 and newline < len(raw) - used_tail + 200:
            used_tail = len(raw) - newline - 1
            last = _esc(raw[newline + 1 :])
        cut = len(raw) - used_head - used_tail
        lines_cut = raw[used_head : len(raw) - used_tail].count("\n")
        marker = ("" if first.endswith("\n") else "\n") + f"… [{cut:,} characters"
        marker += f", {lines_cut:,} lines" if lines_cut else ""
        marker += " cut here] …\n"
        body = first + marker + last
        notes.append(f"_Output shortened for Slack: {cut:,} of {len(raw):,} characters cut._")
    return _fit("\n".join([head, fence_open + body + fence_close, *notes]), OUTPUT_LIMIT)


def escalation_message(
    execution: ExecutionView | Mapping[str, Any], event: ExecutionEventView | Mapping[str, Any]
) -> str:
    """Channel message for an 'escalated', 'stalled', 'escalation_failed', 'trust_demoted',
    'breaker_opened' or 'approval_requested' event (its data: {"level", "name", "reason",
    "paged", "detail"}; an approval request's {"requested_by", "comment"}; a demotion's:
    {"from", "to", "reason"}; a breaker's also {"runbook_id", "executions"})."""
    view = _parsed(ExecutionView, execution)
    notice = _parsed(ExecutionEventView, event)
    data = NoticeData.model_validate(notice.data)
    title = _esc(_title(view, None, None), 150)
    where = f"*{title}*" + (f" (`{_esc(view.id, 100)}`)" if view.id else "")
    step_id = notice.step_id
    at_step = f" at step *{_esc(step_id, 60)}*" if step_id else ""
    reason = data.reason or _step_reason(view.step(step_id))
    level = data.level
    name = data.name
    who = (f"level {_esc(level, 12)}" if level is not None else "the next level") + (
        f" ({_esc(name, 100)})" if name else ""
    )
    if notice.type == "breaker_opened":
        lines = [
            f"🛑 {where}: the runbook's *circuit breaker opened*: autopilot is suspended, its "
            "alerts run in copilot.",
            f"Why: {_esc(data.reason or 'too many failed or rolled-back executions', 800)}",
            ("Owner paged" if data.paged else "Owner not paged")
            + (f": {_esc(data.detail, 300)}" if data.detail else "."),
            "An approver resumes it (`ddoc runbook breaker <id> resume --reason …`, or the "
            "runbook's page).",
        ]
    elif notice.type == "trust_demoted":
        lines = [
            f"⬇️ {where}: the runbook is back in *{_esc(data.demoted_to or 'copilot', 20)}* "
            f"(was {_esc(data.demoted_from or 'autopilot', 20)}).",
            f"Why: {_esc(data.reason or 'an autopilot execution failed', 800)}",
            "Its next executions ask for approval; an admin can promote it again "
            "(`ddoc runbook trust`).",
        ]
    elif notice.type == "approval_requested":
        lines = [
            f"🙋 {where}: *{_esc(data.requested_by or 'an assistant', 200)}* asks a human to "
            f"decide{at_step}."
        ]
        if data.comment:
            lines.append(f"Why: {_esc(data.comment, 800)}")
        if reason:
            lines.append(f"What it waits for: {_esc(reason, 800)}")
        lines.append("Decide in the incident message (or with the CLI/API); an assistant cannot.")
    elif notice.type == "stalled":
        lines = [f"⛔ {where} is *stalled*{at_step}: every escalation level has been paged."]
        if reason:
            lines.append(f"Why: {_esc(reason, 800)}")
        lines.append("Someone must decide in the incident message (or with the CLI/API).")
    elif notice.type == "escalation_failed":
        lines = [f"⚠️ {where}: paging {who}{at_step} *failed*."]
        if data.detail:
            lines.append(_esc(data.detail, 800))
        if reason:
            lines.append(f"Why it escalated: {_esc(reason, 800)}")
    else:
        lines = [f"🚨 {where}: escalated to {who}{at_step}."]
        if reason:
            lines.append(f"Why: {_esc(reason, 800)}")
        if data.paged is not None or data.detail:
            outcome = "Paged" if data.paged else "Not paged"
            detail = data.detail
            lines.append(outcome + (f": {_esc(detail, 800)}" if detail else "."))
    return _fit("\n".join(lines), TEXT_LIMIT)


def handoff_message(execution: ExecutionView) -> str:
    """Shift handoff for one execution: what ran (and who decided), what was skipped and why,
    what is awaited now, what is left."""
    title = _esc(_title(execution, None, None), 150)
    header = f"*Handoff — {title}* · {_STATUS_PLAIN[execution.status]}"
    lines = [header, _execution_line(execution)]
    ran: list[str] = []
    skipped: list[str] = []
    now: list[str] = []
    left: list[str] = []
    for step in execution.steps:
        status = step.status
        waits = (StepStatus.AWAITING_APPROVAL, StepStatus.UNKNOWN)
        if step.awaiting is not None or status in waits:
            now.append(_handoff_awaiting(step))
        elif status == StepStatus.RUNNING:
            now.append(f"{_handoff_id(step)} running now")
        elif status == StepStatus.SKIPPED:
            skipped.append(_handoff_skipped(step))
        elif status in FINISHED_STEP:
            ran.append(_handoff_ran(step))
        else:
            left.append(_handoff_id(step))
    sections = [
        ("Ran", ran),
        ("Skipped", skipped),
        ("Awaiting now", now),
    ]
    for name, items in sections:
        lines.append(f"*{name}:* " + ("none" if not items else ""))
        lines.extend(f"• {item}" for item in items[:HANDOFF_ITEMS])
        if len(items) > HANDOFF_ITEMS:
            lines.append(f"• … and {len(items) - HANDOFF_ITEMS} more")
    if left:
        shown = ", ".join(left[:20]) + (f", … ({len(left) - 20} more)" if len(left) > 20 else "")
        lines.append(f"*Left:* {len(left)} step{'s' if len(left) != 1 else ''}: {shown}")
    else:
        lines.append("*Left:* nothing")
    notes = _notes(execution, execution.status in TERMINAL_STATUSES)
    if notes:
        lines.append(notes)
    return _fit("\n".join(line.rstrip() for line in lines), TEXT_LIMIT)


def _handoff_id(step: StepView) -> str:
    text = f"`{_esc(step.id or '?', 60)}`"
    if step.undoes:
        text += f" (↩ undo {_esc(step.undoes, 60)})"
    return text


def _handoff_summary(step: StepView) -> str:
    command = step.command or ""
    if command.strip():
        return _code(command.splitlines()[0], 120) if "\n" in command else _code(command, 120)
    return _esc(step.text, 120)


def _decided_by(step: StepView, kinds: tuple[DecisionKind, ...] | None = None) -> list[str]:
    said = []
    for decision in step.decisions:
        if not decision.accepted:
            continue
        kind = decision.decision
        if kinds is not None and kind not in kinds:
            continue
        who = decision.display_name or decision.user_id or "someone"
        branch = ""
        if kind == DecisionKind.CHOOSE and decision.branch:
            branch = f" {_esc(decision.branch, 80)}"
        comment = f": “{_esc(decision.comment, 120)}”" if decision.comment else ""
        said.append(f"{_DECIDED[kind]}{branch} by {_esc(who, 60)}{comment}")
    return said


def _handoff_ran(step: StepView) -> str:
    words = _STEP_WORDS[step.status]
    if step.exit_code is not None:
        words += f" (exit {_esc(step.exit_code, 12)})"
    line = f"{_handoff_id(step)} {words}"
    summary = _handoff_summary(step)
    if summary:
        line += f" — {summary}"
    decided = _decided_by(step)
    line += f" · {'; '.join(decided)}" if decided else " · no human decision (ran by policy)"
    return line


def _handoff_skipped(step: StepView) -> str:
    line = f"{_handoff_id(step)} {_handoff_summary(step)}".rstrip()
    kinds = (DecisionKind.SKIP, DecisionKind.CHOOSE, DecisionKind.REJECT)
    why = "; ".join(_decided_by(step, kinds))
    if step.detail:
        why = (why + "; " if why else "") + _esc(step.detail, 200)
    return line + (f" — {why}" if why else " — no reason recorded")


def _handoff_awaiting(step: StepView) -> str:
    awaiting = step.awaiting
    words = _AWAIT_WORDS[awaiting.kind] if awaiting else _STEP_WORDS[step.status]
    line = f"{_handoff_id(step)} {words}"
    summary = _handoff_summary(step)
    if summary:
        line += f" — {summary}"
    if awaiting:
        if awaiting.message:
            line += f" · {_esc(awaiting.message, 200)}"
        needed = awaiting.approvals_needed
        approved = [a for a in awaiting.approved_by if a]
        if needed > 0:
            line += f" · approvals {len(approved)}/{needed}"
            if approved:
                line += f" (by {_esc(', '.join(approved), 120)})"
        if awaiting.deadline:
            line += f" · escalates at {_esc(_when(awaiting.deadline), 60)}"
    return line


def _step_reason(step: StepView | None) -> str:
    if step is None:
        return ""
    if step.awaiting is not None and step.awaiting.message:
        return step.awaiting.message
    return step.detail or ""


# --- text helpers -----------------------------------------------------------------------------


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _clip(text: str, limit: int) -> str:
    """Plain text (headers, buttons) cut to `limit` characters."""
    text = text.strip() or "…"
    return text if len(text) <= limit else text[: limit - 1].rstrip() + _ELLIPSIS


def _esc(value: Any, limit: int | None = None) -> str:
    """mrkdwn-escaped text, at most `limit` characters once escaped (never a split entity)."""
    raw = "" if value is None else str(value)
    escaped = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if limit is None or len(escaped) <= limit:
        return escaped
    prefix, _ = _esc_prefix(raw, limit - 1)
    return prefix + _ELLIPSIS


def _esc_prefix(raw: str, budget: int) -> tuple[str, int]:
    """The longest escaped prefix of `raw` within `budget` characters, and how many raw
    characters it covers."""
    pieces: list[str] = []
    used = taken = 0
    for char in raw[: max(budget, 0)]:
        piece = _ENTITIES.get(char, char)
        if used + len(piece) > budget:
            break
        pieces.append(piece)
        used += len(piece)
        taken += 1
    return "".join(pieces), taken


def _esc_suffix(raw: str, budget: int) -> tuple[str, int]:
    pieces: list[str] = []
    used = taken = 0
    for char in reversed(raw[-budget:] if budget > 0 else ""):
        piece = _ENTITIES.get(char, char)
        if used + len(piece) > budget:
            break
        pieces.append(piece)
        used += len(piece)
        taken += 1
    return "".join(reversed(pieces)), taken


_FENCE = re.compile(r"`{3,}")


def _neutralize_fences(text: str) -> str:
    """Runs of three or more backticks would close a code block: break them up."""
    return _FENCE.sub(lambda m: "\u200b".join(m.group()), text)


def _code(command: str, limit: int) -> str:
    """A command as inline code, or as a code block when it has backticks or lines."""
    if "`" in command or "\n" in command:
        return "```\n" + _esc(_neutralize_fences(command), limit) + "\n```"
    return f"`{_esc(command, limit)}`"


def _fit(text: str, limit: int) -> str:
    """Composite mrkdwn cut to `limit` characters without splitting an entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _clip(text, HEADER_LIMIT), "emoji": True},
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(text, SECTION_LIMIT) or " "}}


def _context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _fit(text, SECTION_LIMIT) or " "}],
    }
