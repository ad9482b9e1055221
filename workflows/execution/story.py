"""What the Temporal UI tells about an execution: the same story as the product.

An engineer who opens an execution in the Temporal Web UI reads, on each activity, "s3 · run:
kubectl rollout restart deploy/api", on each timer "s3 awaits approval (yellow) · escalates to
level 1 (L2 platform) at 12:05:00 UTC", and in the workflow's current details the step list with
each step's status. These are user metadata (activity and timer summaries, current details):
they are no commands, so they change nothing that replays.

Pure functions of plain values, like `rules.py`: tests/test_temporal_ui_story.py checks them
without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ddoc.contracts.execution import (
        Awaiting,
        AwaitKind,
        ExecutionStatus,
        StepState,
        StepStatus,
        TrailOp,
    )

COMMAND_CHARS = 80  # a command in a summary or a detail line
SUMMARY_CHARS = 200  # one summary: a line of user metadata, well under 1 KB
DETAILS_CHARS = 8000  # the whole step list

_ICONS = {
    StepStatus.PENDING: "○",
    StepStatus.AWAITING_APPROVAL: "⏸",
    StepStatus.RUNNING: "▶",
    StepStatus.SUCCEEDED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.SKIPPED: "↷",
    StepStatus.ROLLED_BACK: "↺",
    StepStatus.UNKNOWN: "?",
    StepStatus.VERIFICATION_FAILED: "⚠",
}


def short(text: str | None, limit: int = COMMAND_CHARS) -> str:
    """One line, at most `limit` characters (an ellipsis says that more was cut)."""
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def clock(at: datetime) -> str:
    return f"{at:%H:%M:%S} UTC"


# -- activity summaries --------------------------------------------------------------------


def command_summary(
    step_id: str, command: str, *, dry: bool = False, undoes: str | None = None
) -> str:
    """The agent's command activity: `s3 · run: kubectl rollout restart deploy/api`."""
    verb = "dry run" if dry else f"undo {undoes}" if undoes else "run"
    return f"{step_id} · {verb}: {short(command)}"


def check_summary(step_id: str, phase: str, command: str, attempt: int) -> str:
    """A precheck's or verification's try: `s3 · verify (try 2): kubectl rollout status …`."""
    return f"{step_id} · {phase} (try {attempt}): {short(command)}"


def pause_summary(step_id: str, phase: str, seconds: int) -> str:
    return f"{step_id} {phase} failed: tries again in {duration(seconds)}"


def classify_summary(step_id: str, command: str) -> str:
    return f"classify edited command of {step_id}: {short(command)}"


def escalation_summary(level: int, name: str, step_id: str | None) -> str:
    whom = f"level {level} ({short(name, 40)})"
    about = f"for {step_id}" if step_id else "for the unresolved incident"
    return f"page escalation {whom} {about}"


def after_execution_summary(status: ExecutionStatus) -> str:
    return f"after execution ({status.value}): learning, trust demotion"


def trail_summary(ops: Sequence[TrailOp]) -> str:
    """A trail write (`ddoc.record_transition`): the steps and transitions it records, e.g.
    `s3 · record: awaiting_approval, execution awaiting_human` or `record: s1 succeeded, s2
    running`."""
    parts: list[tuple[str | None, str]] = []
    for op in ops:
        said: list[tuple[str | None, str]] = []
        if op.step is not None:
            step = op.step
            default = f"step.{step.status.value}"
            label = (step.event or default).removeprefix("step.")
            said.append((step.step_id, label))
        if op.status is not None:
            said.append((None, f"execution {op.status.status.value}"))
        if op.event is not None:
            said.append((op.event.step_id, op.event.type))
        for part in said:
            if not parts or parts[-1] != part:
                parts.append(part)
    steps = list(dict.fromkeys(step for step, _ in parts if step is not None))
    if len(steps) == 1:  # the step's own transitions first, then the execution's
        prefix = f"{steps[0]} · record: "
        words = [label for step, label in parts if step] + [
            label for step, label in parts if not step
        ]
    else:
        prefix = "record: "
        words = [f"{step} {label}" if step else label for step, label in parts]
    return prefix + _joined(words, SUMMARY_CHARS - len(prefix)) if words else "record: nothing"


def _joined(words: list[str], limit: int) -> str:
    """Comma-separated, as many as fit; then how many more."""
    out = ""
    for i, word in enumerate(words):
        more = len(words) - i
        candidate = f"{out}, {word}" if out else word
        room = limit if more == 1 else limit - len(f", +{more - 1} more")
        if len(candidate) > room:
            return f"{out}, +{more} more" if out else short(word, limit)
        out = candidate
    return out


# -- timer summaries -----------------------------------------------------------------------


def waiting_for(awaiting: Awaiting, risk: str | None) -> str:
    """What a step waits for, in a few words: `approval (yellow)`, `values: SERVICE`, ..."""
    kind = awaiting.kind
    if kind == AwaitKind.APPROVAL:
        return f"approval ({risk or 'unclassified'})"
    if kind == AwaitKind.VALUES:
        return "values: " + short(", ".join(awaiting.missing), 60)
    if kind == AwaitKind.CHOICE:
        return "a choice of branch"
    if kind == AwaitKind.DONE:
        return "a human to do it (done or skip)"
    if kind == AwaitKind.OUTCOME:
        return "a human: outcome unknown"
    return "an agent"


def wait_summary(
    step_id: str,
    awaiting: Awaiting,
    risk: str | None,
    *,
    deadline: datetime,
    level: int,
    level_name: str | None,
) -> str:
    """The timer of a human wait: what the step awaits, and what its expiry does (page
    `level`, or stall the execution when no level is left)."""
    waits = f"{step_id} awaits {waiting_for(awaiting, risk)}"
    if level_name is None:
        return short(f"{waits} · stalls at {clock(deadline)}", SUMMARY_CHARS)
    then = f"escalates to level {level} ({short(level_name, 40)}) at {clock(deadline)}"
    return short(f"{waits} · {then}", SUMMARY_CHARS)


def incident_summary(
    alert_title: str, timeout_seconds: int, *, deadline: datetime, level_name: str | None
) -> str:
    """The timer of the incident watch: unresolved by then, level 1 is paged."""
    whom = f"level 1 ({short(level_name, 40)})" if level_name else "level 1"
    return short(
        f"incident “{short(alert_title, 60)}” · pages {whom} if not resolved by "
        f"{clock(deadline)} ({duration(timeout_seconds)})",
        SUMMARY_CHARS,
    )


# -- current details -----------------------------------------------------------------------


def step_line(state: StepState) -> str:
    """One step of the list: `` `s3` ⏸ awaiting approval (yellow) · `kubectl …` · ...``."""
    awaiting = state.awaiting
    if awaiting is not None and awaiting.kind == AwaitKind.OUTCOME:
        said = "⏸ outcome unknown, awaiting a human"
    elif awaiting is not None:
        said = f"⏸ awaiting {waiting_for(awaiting, state.risk)}"
    else:
        said = f"{_ICONS[state.status]} {state.status.value.replace('_', ' ')}"
        if state.dry_run:
            said += " (dry run)"
    what = _code(state.command) if state.command else short(state.text)
    line = f"- `{state.step_id}` {said} · {what}"
    extras: list[str] = []
    if awaiting is not None:
        if awaiting.approvals_needed > 1:
            extras.append(f"{len(awaiting.approved_by)} of {awaiting.approvals_needed} approvals")
        if awaiting.escalation_level:
            extras.append(f"level {awaiting.escalation_level} paged")
        if awaiting.deadline:
            extras.append(f"deadline {clock(datetime.fromisoformat(awaiting.deadline))}")
    else:
        if state.exit_code not in (None, 0) and not (state.detail or "").startswith("exit "):
            extras.append(f"exit {state.exit_code}")
        if state.detail:
            extras.append(short(state.detail, 100))
    return " · ".join([line, *extras])


def details(
    *,
    title: str,
    version: int,
    mode: str,
    status: ExecutionStatus,
    steps: Iterable[StepState],
) -> str:
    """The workflow's current details (Temporal markdown): the execution, then its steps."""
    lines = [f"**{short(title, 120)}** v{version} · {mode} · {status.value.replace('_', ' ')}"]
    steps = list(steps)
    used = len(lines[0])
    for i, state in enumerate(steps):
        line = step_line(state)
        left = len(steps) - i
        if used + len(line) + 1 > DETAILS_CHARS - 40:
            lines.append(f"- … {left} more step{'s' if left > 1 else ''}")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _code(command: str) -> str:
    text = short(command)
    return text if "`" in text else f"`{text}`"
