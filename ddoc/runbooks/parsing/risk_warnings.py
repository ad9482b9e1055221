"""Warnings in prose that raise a step's risk.

"This wipes the queue, there is no undo" right after a command (in the same sentence, or in
this or the next paragraph/item under the same heading) makes that command's step RED, with
the warning as the reason and appended to the step's text.
"""

from __future__ import annotations

from ddoc.runbooks.model import RiskClass, Step
from ddoc.runbooks.parsing.build_state import BuildState
from ddoc.runbooks.parsing.sentences import Sentence


def warned_step(state: BuildState) -> Step | None:
    """The step a warning right after it qualifies: the last command of this or the
    previous paragraph/item."""
    if not state.steps or state.steps[-1].command is None:
        return None
    last = state.steps[-1]
    if state.step_section.get(last.id) != state.heading_serial:
        return None  # a warning under another heading is about that section's steps
    return last if state.unit - state.step_unit.get(last.id, -9) <= 1 else None


def apply_warning(state: BuildState, s: Sentence) -> None:
    """ "This wipes the queue, there is no undo": the step it follows is destructive."""
    step = warned_step(state)
    if step is None:
        return
    if step.risk != RiskClass.RED:
        step.risk = RiskClass.RED
        step.risk_reason = f"the runbook warns: {after_commands(s)[:200]}"
    if s.text not in step.text:
        step.text = f"{step.text}\n{s.text}"


def after_commands(s: Sentence) -> str:
    """The words after a sentence's last command ("… `cmd` — this wipes the queue")."""
    if not s.commands:
        return s.text
    tail = s.text.rsplit(s.commands[-1].text, 1)[-1]
    return tail.lstrip("` ")
