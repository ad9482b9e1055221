"""Slack Block Kit for an execution: the incident message (updated in place as the execution
moves), each finished step's output in its thread, escalation notices, and the shift handoff.

Why this file is long: every message shares the same escaping and bounding helpers; issue 16
replaces the untyped views it reads with typed ones, after which it splits by message.

Pure functions of the dicts the API returns (`ddoc.execution.store.view`,
`ddoc.execution.live.merge`, `ddoc.alerts.incidents.view`): no I/O, missing keys tolerated. Every
piece of user-provided text (step text, commands, outputs, alert titles, match reasons, ...) is
escaped for mrkdwn (`&`, `<`, `>`: Slack's rule, so an output can neither mention `<!channel>` nor
forge a link) and bounded so that each field stays within Slack's limits (section text 3,000
characters, button text 75, button value 2,000, header 150, 50 blocks per message)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

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

TERMINAL = frozenset({"succeeded", "failed", "rolled_back", "aborted"})
FINISHED_STEP = frozenset({"succeeded", "failed", "skipped", "rolled_back"})

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ELLIPSIS = "…"

BADGES = {"green": "🟢", "yellow": "🟡", "red": "🔴"}
NO_RISK_BADGE = "⚪"

_EXECUTION_WORDS = {
    "running": "▶️ running",
    "awaiting_human": "⏳ awaiting a human",
    "stalled": "⛔ stalled",
    "succeeded": "✅ succeeded",
    "failed": "❌ failed",
    "rolled_back": "↩️ rolled back",
    "aborted": "🛑 aborted",
    "": "not started",
}
_STEP_WORDS = {
    "pending": "pending",
    "awaiting_approval": "awaiting approval",
    "running": "running…",
    "succeeded": "succeeded",
    "failed": "failed",
    "skipped": "skipped",
    "rolled_back": "rolled back",
    "unknown": "outcome unknown",
}
_AWAIT_WORDS = {
    "approval": "awaiting approval",
    "values": "awaiting values",
    "choice": "awaiting a choice",
    "done": "waiting to be done by hand",
    "outcome": "outcome unknown: check, then decide",
    "agent": "waiting for an agent",
}
_STATUS_PLAIN = {
    "running": "running",
    "awaiting_human": "awaiting a human",
    "stalled": "stalled",
    "succeeded": "succeeded",
    "failed": "failed",
    "rolled_back": "rolled back",
    "aborted": "aborted",
    "": "not started",
}
_MODE_WORDS = {
    "read_along": "read-along",
    "copilot": "copilot",
    "autopilot": "autopilot",
    "dry_run": "dry run",
}
# Decisions with a button of their own under the awaiting step, in this order. Rollback and
# abort are execution-wide: the last actions block carries them.
_BUTTONS: dict[str, tuple[str, str | None]] = {
    "approve": ("Approve", "primary"),
    "reject": ("Reject", "danger"),
    "done": ("Mark done", "primary"),
    "retry": ("Retry", None),
    "skip": ("Skip", None),
    "edit": ("Edit", None),
}
_DECIDED = {
    "approve": "approved",
    "reject": "rejected",
    "skip": "skipped",
    "edit": "edited",
    "choose": "chose",
    "done": "marked done",
    "rollback": "rolled back",
    "abort": "aborted",
    "retry": "retried",
    "provide": "provided values",
}


# --- the incident message ---------------------------------------------------------------------


def incident_message(
    execution: dict[str, Any],
    *,
    incident: dict[str, Any] | None = None,
    runbook: dict[str, Any] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for the execution's message in the incident channel."""
    execution_id = _str(execution.get("id"))
    status = _str(execution.get("status"))
    finished = status in TERMINAL
    steps = [s for s in _list(execution.get("steps")) if isinstance(s, dict)]
    current = execution.get("current_step")
    title = _title(execution, incident, runbook)
    actions = _Actions()
    interactive = bool(execution_id) and not finished

    head: list[dict[str, Any]] = [_header(f"{title} — {_plain(_EXECUTION_WORDS, status)}")]
    head.append(_context(_execution_line(execution)))
    notes = _notes(execution, finished)
    if notes:
        head.append(_context(notes))
    if incident is not None:
        head.extend(_alert_blocks(execution, incident, actions, interactive=not finished))
    prerequisites = _prerequisites(runbook)
    if prerequisites:
        head.append(_section(prerequisites))

    waiting = [s for s in steps if isinstance(s.get("awaiting"), dict)][:MAX_AWAITING_SHOWN]
    tail: list[dict[str, Any]] = []
    if interactive:
        tail.append(_controls(execution_id, actions))
    divider = 1 if steps else 0
    awaiting_blocks = 2 * len(waiting) if not finished else 0
    budget = MAX_BLOCKS - len(head) - len(tail) - divider - awaiting_blocks

    body: list[dict[str, Any]] = [{"type": "divider"}] if steps else []
    must = {_str(s.get("id")) for s in waiting} | ({_str(current)} if current else set())
    for entry in _step_entries(steps, must, budget):
        if isinstance(entry, str):
            body.append(_context(entry))
            continue
        body.append(_section(_step_text(entry, current=entry.get("id") == current)))
        awaiting = entry.get("awaiting")
        if isinstance(awaiting, dict) and any(entry is w for w in waiting) and not finished:
            body.append(_context(_awaiting_line(execution_id, entry, awaiting)))
            buttons = (
                _awaiting_buttons(execution_id, _str(entry.get("id")), awaiting, actions)
                if interactive
                else []
            )
            if buttons:
                body.append({"type": "actions", "elements": buttons[:ACTIONS_PER_BLOCK]})
            else:
                body.append(_context(_no_buttons_line(awaiting, interactive)))
    blocks = (head + body + tail)[:MAX_BLOCKS]
    return _fallback(title, status, [] if finished else steps, current), blocks


def _title(
    execution: dict[str, Any], incident: dict[str, Any] | None, runbook: dict[str, Any] | None
) -> str:
    for candidate in (
        (runbook or {}).get("title"),
        execution.get("runbook_title"),
        execution.get("runbook_id"),
        (incident or {}).get("title"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return "dd0c/run"


def _fallback(title: str, status: str, steps: list[dict[str, Any]], current: Any) -> str:
    line = f"dd0c/run: {_clip(title, 150)} — {_plain(_STATUS_PLAIN, status)}"
    waiting = next(
        (s for s in steps if s.get("id") == current and isinstance(s.get("awaiting"), dict)),
        next((s for s in steps if isinstance(s.get("awaiting"), dict)), None),
    )
    if waiting is not None:
        kind = _str(waiting["awaiting"].get("kind")) or "a decision"
        line += f" (step {_clip(_str(waiting.get('id')), 60)} awaits {kind})"
    return _esc(line, 400)


def _execution_line(execution: dict[str, Any]) -> str:
    parts = []
    if execution.get("id"):
        parts.append(f"`{_esc(execution['id'], 100)}`")
    if execution.get("mode"):
        parts.append(_esc(_plain(_MODE_WORDS, _str(execution["mode"])), 40))
    if execution.get("environment"):
        parts.append(f"env *{_esc(execution['environment'], 80)}*")
    if execution.get("started_by"):
        parts.append(f"started by {_esc(execution['started_by'], 100)}")
    if execution.get("runbook_id"):
        version = execution.get("runbook_version")
        suffix = f" v{_esc(version, 12)}" if version is not None else ""
        parts.append(f"runbook `{_esc(execution['runbook_id'], 100)}`{suffix}")
    if execution.get("created_at"):
        parts.append(f"started {_esc(_when(execution['created_at']), 40)}")
    if execution.get("finished_at"):
        parts.append(f"finished {_esc(_when(execution['finished_at']), 40)}")
    return " · ".join(parts) or "dd0c/run execution"


def _notes(execution: dict[str, Any], finished: bool) -> str:
    notes = []
    if execution.get("alert_resolved"):
        notes.append("✅ The alert has resolved.")
    if execution.get("incident_escalated"):
        notes.append("🚨 The incident was escalated: not resolved in time.")
    escalations = [e for e in _list(execution.get("escalations")) if isinstance(e, dict)]
    for escalation in escalations[-3:]:
        notes.append(_escalation_note(escalation))
    if execution.get("live") is False and execution.get("status") and not finished:
        notes.append("_Live state unavailable: showing the recorded trail._")
    return "\n".join(notes)


def _escalation_note(escalation: dict[str, Any]) -> str:
    level = _esc(escalation.get("level", "?"), 12)
    name = escalation.get("name")
    who = f"level {level}" + (f" ({_esc(name, 80)})" if name else "")
    step = escalation.get("step_id")
    where = f" for step {_esc(step, 60)}" if step else ""
    outcome = "paged" if escalation.get("paged") else "not paged"
    detail = escalation.get("detail")
    return f"📟 Escalated to {who}{where}: {outcome}" + (
        f" ({_esc(detail, 150)})" if detail else ""
    )


def _alert_blocks(
    execution: dict[str, Any],
    incident: dict[str, Any],
    actions: _Actions,
    *,
    interactive: bool,
) -> list[dict[str, Any]]:
    lines = [f"*🔔 {_esc(incident.get('title') or 'Alert', 300)}*"]
    facts = []
    if incident.get("service"):
        facts.append(f"service `{_esc(incident['service'], 100)}`")
    if incident.get("severity"):
        facts.append(f"severity *{_esc(incident['severity'], 40)}*")
    if incident.get("source"):
        facts.append(f"source {_esc(incident['source'], 60)}")
    if incident.get("environment"):
        facts.append(f"env {_esc(incident['environment'], 60)}")
    count = incident.get("alert_count")
    if isinstance(count, int) and count > 1:
        facts.append(f"{count} alerts")
    if incident.get("status") == "resolved":
        facts.append("resolved")
    if facts:
        lines.append(" · ".join(facts))

    match_status = _str(incident.get("match_status"))
    raw_match = incident.get("match")
    match: dict[str, Any] = raw_match if isinstance(raw_match, dict) else {}
    candidates = [c for c in _list(match.get("candidates")) if isinstance(c, dict)]
    buttons: list[dict[str, Any]] = []
    if match_status == "unmatched":
        lines.append("*No runbook found* for this alert.")
    elif match_status == "suggested":
        lines.append("*No runbook attached.* Suggestions:")
        lines.extend(
            f"{n}. {_candidate_line(c)}" for n, c in enumerate(candidates[:MAX_SUGGESTIONS], 1)
        )
        if not candidates:
            lines.append("_(none recorded)_")
        if interactive and not execution.get("steps"):
            buttons = _pick_buttons(execution, incident, candidates, actions)
    elif match_status or match:
        best = _best_candidate(match)
        line = f"Runbook match: *{_esc(match_status or 'unknown', 40)}*"
        confidence = _confidence(best)
        if confidence is not None:
            line += f" (confidence {confidence})"
        lines.append(line)
        reasons = [r for r in _list(best.get("reasons")) if r]
        lines.extend(f"• {_esc(r, 200)}" for r in reasons[:3])
    blocks = [_section("\n".join(lines))]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _pick_buttons(
    execution: dict[str, Any],
    incident: dict[str, Any],
    candidates: list[dict[str, Any]],
    actions: _Actions,
) -> list[dict[str, Any]]:
    buttons = []
    for n, candidate in enumerate(candidates[:MAX_SUGGESTIONS], start=1):
        runbook_id = _str(candidate.get("runbook_id"))
        if not runbook_id:
            continue
        label = _str(candidate.get("title")) or runbook_id
        button = _button(
            actions,
            f"{ACTION_PREFIX}pick_runbook_{n}",
            f"Run {n}: {label}",
            button_value(
                _str(execution.get("id")), None, "pick", r=runbook_id, i=_str(incident.get("id"))
            ),
        )
        if button is not None:
            buttons.append(button)
    return buttons


def _best_candidate(match: dict[str, Any]) -> dict[str, Any]:
    attached = match.get("attached")
    if isinstance(attached, dict):
        return attached
    candidates = [c for c in _list(match.get("candidates")) if isinstance(c, dict)]
    return candidates[0] if candidates else match


def _confidence(candidate: dict[str, Any]) -> str | None:
    value = candidate.get("confidence", candidate.get("score"))
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return f"{value:.2f}"
    return _esc(value, 20)


def _candidate_line(candidate: dict[str, Any]) -> str:
    runbook_id = candidate.get("runbook_id")
    title = candidate.get("title")
    line = f"`{_esc(runbook_id, 80)}`" if runbook_id else ""
    if title:
        line += (" " if line else "") + _esc(title, 150)
    confidence = _confidence(candidate)
    if confidence is not None:
        line += f" — {confidence}"
    reasons = [r for r in _list(candidate.get("reasons")) if r]
    if reasons:
        line += f" ({_esc(reasons[0], 150)})"
    return line or "(unnamed runbook)"


def _prerequisites(runbook: dict[str, Any] | None) -> str:
    items = [p for p in _list((runbook or {}).get("prerequisites")) if p]
    if not items:
        return ""
    lines = ["*Before you start*"]
    for item in items[:MAX_PREREQUISITES]:
        text = item.get("text") if isinstance(item, dict) else item
        kind = item.get("kind") if isinstance(item, dict) else None
        suffix = f" _({_esc(kind, 20)})_" if kind and kind != "other" else ""
        lines.append(f"☐ {_esc(text, 120)}{suffix}")
    if len(items) > MAX_PREREQUISITES:
        lines.append(f"… and {len(items) - MAX_PREREQUISITES} more")
    return "\n".join(lines)


def _step_entries(
    steps: list[dict[str, Any]], must: set[str], budget: int
) -> list[dict[str, Any] | str]:
    """The steps to show one section each, and summary lines (str) standing for the others,
    in at most `budget` blocks."""
    budget = max(budget, 2)
    if len(steps) <= min(COLLAPSE_AT, budget):
        return list(steps)

    def is_finished(step: dict[str, Any]) -> bool:
        return step.get("status") in FINISHED_STEP and _str(step.get("id")) not in must

    finished = [s for s in steps if is_finished(s)]
    rest = [s for s in steps if not is_finished(s)]
    entries: list[dict[str, Any] | str] = []
    if finished:
        entries.append(_finished_summary(finished))
    room = budget - len(entries)
    if len(rest) <= room:
        return entries + list(rest)
    room -= 1  # the "… and N more" line
    keep_ids = {id(s) for s in rest if _str(s.get("id")) in must}
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


def _finished_summary(finished: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for step in finished:
        status = _str(step.get("status"))
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{n} {_words(_STEP_WORDS, status)}" for status, n in counts.items()]
    line = f"✔ {len(finished)} finished steps: " + ", ".join(parts)
    failed = [_str(s.get("id")) for s in finished if s.get("status") == "failed"]
    if failed:
        names = ", ".join(_esc(f, 40) for f in failed[:10])
        line += f" (failed: {names}{', …' if len(failed) > 10 else ''})"
    return line


def _step_text(step: dict[str, Any], *, current: bool) -> str:
    badge = BADGES.get(_str(step.get("risk")).lower(), NO_RISK_BADGE)
    step_id = _esc(step.get("id") or "?", 60)
    status = _str(step.get("status"))
    awaiting = step.get("awaiting")
    words = _words(_STEP_WORDS, status)
    if isinstance(awaiting, dict) and status not in FINISHED_STEP:
        words = _words(_AWAIT_WORDS, _str(awaiting.get("kind")), fallback=words)
    if step.get("exit_code") is not None and status in ("succeeded", "failed", "unknown"):
        words += f" (exit {_esc(step['exit_code'], 12)})"
    parts = [step_id]
    if step.get("undoes"):
        parts.append(f"↩ undo {_esc(step['undoes'], 60)}")
    elif step.get("kind") in ("manual", "decision", "escalate"):
        parts.append(_esc(step["kind"], 20))
    parts.append(words)
    if step.get("dry_run"):
        parts.append("dry run")
    if step.get("edited_by"):
        parts.append(f"edited by {_esc(step['edited_by'], 60)}")
    first = " · ".join(parts)
    first = f"▶ {badge} *{first}*" if current else f"{badge} {first}"
    lines = [first]
    if _str(step.get("text")).strip():
        lines.append(_esc(step["text"], STEP_TEXT_LIMIT))
    command = _str(step.get("command"))
    if command.strip():
        lines.append(_code(command, COMMAND_LIMIT))
    if _str(step.get("detail")).strip():
        lines.append(f"💬 {_esc(step['detail'], DETAIL_LIMIT)}")
    return "\n".join(lines)


def _awaiting_line(execution_id: str, step: dict[str, Any], awaiting: dict[str, Any]) -> str:
    parts = [f"⏳ {_esc(awaiting.get('message') or 'Waiting for a decision.', 500)}"]
    needed = awaiting.get("approvals_needed")
    approved = [a for a in _list(awaiting.get("approved_by")) if a]
    if isinstance(needed, int) and needed > 0:
        by = f" (by {_esc(', '.join(map(str, approved)), 200)})" if approved else ""
        parts.append(f"approvals {len(approved)}/{needed}{by}")
    role = awaiting.get("role")
    if role and role != "responder":
        article = "an " if role in ("approver", "admin") else ""
        parts.append(f"needs {article}{_esc(role, 30)}")
    missing = [m for m in _list(awaiting.get("missing")) if m]
    if missing:
        parts.append("missing: " + _esc(", ".join(map(str, missing)), 300))
    if awaiting.get("deadline"):
        parts.append(f"escalates at {_esc(_when(awaiting['deadline']), 60)}")
    level = awaiting.get("escalation_level")
    if isinstance(level, int) and level > 0:
        parts.append(f"escalated to level {level}")
    if "provide" in _list(awaiting.get("allowed")):
        example = (
            f"`ddoc exec provide {_esc(execution_id or '<execution>', 100)} "
            f"{_esc(step.get('id') or '<step>', 60)} --var NAME=VALUE`"
        )
        parts.append(f"provide values with {example} or the API")
    return " · ".join(parts)


def _no_buttons_line(awaiting: dict[str, Any], interactive: bool) -> str:
    if not interactive:
        return "_Decide with the CLI or the API._"
    if "provide" in _list(awaiting.get("allowed")):
        return "_Provide the values with the CLI or the API._"
    return "_Nothing to click here: decide with the CLI or the API._"


def _awaiting_buttons(
    execution_id: str, step_id: str, awaiting: dict[str, Any], actions: _Actions
) -> list[dict[str, Any]]:
    allowed = [str(a) for a in _list(awaiting.get("allowed"))]
    buttons: list[dict[str, Any]] = []
    if "choose" in allowed:
        branches = [str(b) for b in _list(awaiting.get("branches"))]
        for n, condition in enumerate(branches[:MAX_BRANCH_BUTTONS], start=1):
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


def step_output_message(step: dict[str, Any]) -> str:
    """The thread reply carrying one finished step's output: mrkdwn with the command and the
    output in a code block, bounded to 3,000 characters (head and tail kept, the cut said),
    noting when the agent had already truncated it (step['output_truncated'])."""
    status = _str(step.get("status"))
    words = _words(_STEP_WORDS, status)
    if step.get("exit_code") is not None:
        words += f" (exit {_esc(step['exit_code'], 12)})"
    badge = BADGES.get(_str(step.get("risk")).lower(), NO_RISK_BADGE)
    head = f"{badge} *{_esc(step.get('id') or '?', 60)}* · {words}"
    command = _str(step.get("command"))
    if command.strip():
        head += "\n" + _code(command, COMMAND_LIMIT)
    notes = []
    if step.get("output_truncated"):
        notes.append("_The agent truncated this output before sending it._")
    raw = _neutralize_fences(_str(step.get("output")))
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


def escalation_message(execution: dict[str, Any], event: dict[str, Any]) -> str:
    """Channel message for an 'escalated', 'stalled', 'escalation_failed' or 'trust_demoted'
    event (event: {"type", "step_id", "data": {"level", "name", "reason", "paged", "detail"}};
    a demotion's data: {"from", "to", "reason"})."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    data = data or {}
    kind = _str(event.get("type"))
    title = _esc(_title(execution, None, None), 150)
    execution_id = _str(execution.get("id"))
    where = f"*{title}*" + (f" (`{_esc(execution_id, 100)}`)" if execution_id else "")
    step_id = event.get("step_id")
    step = _find_step(execution, step_id)
    at_step = f" at step *{_esc(step_id, 60)}*" if step_id else ""
    reason = data.get("reason") or _step_reason(step)
    level = data.get("level")
    name = data.get("name")
    who = (f"level {_esc(level, 12)}" if level is not None else "the next level") + (
        f" ({_esc(name, 100)})" if name else ""
    )
    if kind == "trust_demoted":
        lines = [
            f"⬇️ {where}: the runbook is back in *{_esc(data.get('to') or 'copilot', 20)}* "
            f"(was {_esc(data.get('from') or 'autopilot', 20)}).",
            f"Why: {_esc(data.get('reason') or 'an autopilot execution failed', 800)}",
            "Its next executions ask for approval; an admin can promote it again "
            "(`ddoc runbook trust`).",
        ]
    elif kind == "stalled":
        lines = [f"⛔ {where} is *stalled*{at_step}: every escalation level has been paged."]
        if reason:
            lines.append(f"Why: {_esc(reason, 800)}")
        lines.append("Someone must decide in the incident message (or with the CLI/API).")
    elif kind == "escalation_failed":
        lines = [f"⚠️ {where}: paging {who}{at_step} *failed*."]
        if data.get("detail"):
            lines.append(_esc(data["detail"], 800))
        if reason:
            lines.append(f"Why it escalated: {_esc(reason, 800)}")
    else:
        lines = [f"🚨 {where}: escalated to {who}{at_step}."]
        if reason:
            lines.append(f"Why: {_esc(reason, 800)}")
        paged = data.get("paged")
        if paged is not None or data.get("detail"):
            outcome = "Paged" if paged else "Not paged"
            detail = data.get("detail")
            lines.append(outcome + (f": {_esc(detail, 800)}" if detail else "."))
    return _fit("\n".join(lines), TEXT_LIMIT)


def handoff_message(execution: dict[str, Any]) -> str:
    """Shift handoff for one execution: what ran (and who decided), what was skipped and why,
    what is awaited now, what is left."""
    title = _esc(_title(execution, None, None), 150)
    status = _words(_STATUS_PLAIN, _str(execution.get("status")))
    header = f"*Handoff — {title}* · {status}"
    context = _execution_line(execution)
    lines = [header, context]
    steps = [s for s in _list(execution.get("steps")) if isinstance(s, dict)]
    ran: list[str] = []
    skipped: list[str] = []
    now: list[str] = []
    left: list[str] = []
    for step in steps:
        status = _str(step.get("status"))
        if isinstance(step.get("awaiting"), dict) or status in ("awaiting_approval", "unknown"):
            now.append(_handoff_awaiting(step))
        elif status == "running":
            now.append(f"{_handoff_id(step)} running now")
        elif status == "skipped":
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
    notes = _notes(execution, _str(execution.get("status")) in TERMINAL)
    if notes:
        lines.append(notes)
    return _fit("\n".join(line.rstrip() for line in lines), TEXT_LIMIT)


def _handoff_id(step: dict[str, Any]) -> str:
    text = f"`{_esc(step.get('id') or '?', 60)}`"
    if step.get("undoes"):
        text += f" (↩ undo {_esc(step['undoes'], 60)})"
    return text


def _handoff_summary(step: dict[str, Any]) -> str:
    command = _str(step.get("command"))
    if command.strip():
        return _code(command.splitlines()[0], 120) if "\n" in command else _code(command, 120)
    return _esc(step.get("text") or "", 120)


def _decided_by(step: dict[str, Any], kinds: tuple[str, ...] | None = None) -> list[str]:
    said = []
    for decision in _list(step.get("decisions")):
        if not isinstance(decision, dict) or decision.get("accepted") is False:
            continue
        kind = _str(decision.get("decision"))
        if kinds is not None and kind not in kinds:
            continue
        who = decision.get("display_name") or decision.get("user_id") or "someone"
        what = _DECIDED.get(kind) or _esc(kind, 30)
        branch = ""
        if kind == "choose" and decision.get("branch"):
            branch = f" {_esc(decision['branch'], 80)}"
        comment = f": “{_esc(decision['comment'], 120)}”" if decision.get("comment") else ""
        said.append(f"{what}{branch} by {_esc(who, 60)}{comment}")
    return said


def _handoff_ran(step: dict[str, Any]) -> str:
    status = _str(step.get("status"))
    words = _words(_STEP_WORDS, status)
    if step.get("exit_code") is not None:
        words += f" (exit {_esc(step['exit_code'], 12)})"
    line = f"{_handoff_id(step)} {words}"
    summary = _handoff_summary(step)
    if summary:
        line += f" — {summary}"
    decided = _decided_by(step)
    line += f" · {'; '.join(decided)}" if decided else " · no human decision (ran by policy)"
    return line


def _handoff_skipped(step: dict[str, Any]) -> str:
    line = f"{_handoff_id(step)} {_handoff_summary(step)}".rstrip()
    decided = _decided_by(step, ("skip", "choose", "reject"))
    why = "; ".join(decided)
    if step.get("detail"):
        why = (why + "; " if why else "") + _esc(step["detail"], 200)
    return line + (f" — {why}" if why else " — no reason recorded")


def _handoff_awaiting(step: dict[str, Any]) -> str:
    awaiting = step.get("awaiting") if isinstance(step.get("awaiting"), dict) else None
    status = _str(step.get("status"))
    kind = _str((awaiting or {}).get("kind"))
    words = _words(_AWAIT_WORDS, kind, fallback=_words(_STEP_WORDS, status))
    line = f"{_handoff_id(step)} {words}"
    summary = _handoff_summary(step)
    if summary:
        line += f" — {summary}"
    if awaiting:
        if awaiting.get("message"):
            line += f" · {_esc(awaiting['message'], 200)}"
        needed = awaiting.get("approvals_needed")
        approved = [a for a in _list(awaiting.get("approved_by")) if a]
        if isinstance(needed, int) and needed > 0:
            line += f" · approvals {len(approved)}/{needed}"
            if approved:
                line += f" (by {_esc(', '.join(map(str, approved)), 120)})"
        if awaiting.get("deadline"):
            line += f" · escalates at {_esc(_when(awaiting['deadline']), 60)}"
    return line


def _find_step(execution: dict[str, Any], step_id: Any) -> dict[str, Any] | None:
    if not step_id:
        return None
    for step in _list(execution.get("steps")):
        if isinstance(step, dict) and step.get("id") == step_id:
            return step
    return None


def _step_reason(step: dict[str, Any] | None) -> str:
    if step is None:
        return ""
    awaiting = step.get("awaiting")
    if isinstance(awaiting, dict) and awaiting.get("message"):
        return _str(awaiting["message"])
    return _str(step.get("detail"))


# --- text helpers -----------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _plain(words: dict[str, str], key: str) -> str:
    """Words for a known key, else the key itself (plain text, not escaped)."""
    return words.get(key) or key.replace("_", " ")[:60] or "unknown"


def _words(words: dict[str, str], key: str, *, fallback: str | None = None) -> str:
    """mrkdwn words for a known key, else `fallback` (already mrkdwn), else the escaped key."""
    if key in words:
        return words[key]
    if fallback is not None:
        return fallback
    return _esc(_plain(words, key))


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
    raw = _str(value)
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
