"""The quality report shown to a runbook's author: what makes it hard to automate.

Score = 100 - 40*[no_actionable_step] - 10*[no_trigger] - min(30, 15*red_without_rollback)
- min(20, 5*vague_step) - min(20, 5*undefined_variable), clamped to 0..100.
"""

from __future__ import annotations

from ddoc.runbooks.model import (
    QualityFlag,
    QualityReport,
    RiskClass,
    Step,
    StepKind,
    Triggers,
    Variable,
    VariableSource,
)
from ddoc.runbooks.parsing import lexicon as lx

_WEIGHTS = {
    "no_actionable_step": (40, 40),
    "no_trigger": (10, 10),
    "red_without_rollback": (15, 30),
    "vague_step": (5, 20),
    "undefined_variable": (5, 20),
}
_VAGUE_SHORT = 6  # "Check the logs." is vague whatever it names
_VAGUE_GENERIC = 12  # longer ones only when the object is generic ("the logs", "the dashboard")


def is_vague(step: Step) -> bool:
    if step.kind != StepKind.MANUAL or step.command:
        return False
    text = lx.strip_fillers(step.text.strip())
    if "\n" in text or not lx.VAGUE_START.match(text) or lx.SPECIFIC.search(text):
        return False
    words = len(text.split())
    return words <= _VAGUE_SHORT or (
        words <= _VAGUE_GENERIC and lx.VAGUE_OBJECT.search(text) is not None
    )


def assess(steps: list[Step], triggers: Triggers, variables: list[Variable]) -> QualityReport:
    flags: list[QualityFlag] = []
    if not any(s.kind in (StepKind.COMMAND, StepKind.MANUAL, StepKind.ESCALATE) for s in steps):
        flags.append(
            QualityFlag("no_actionable_step", "the runbook has no step an operator can carry out")
        )
    if not triggers.alerts and not triggers.services:
        flags.append(
            QualityFlag(
                "no_trigger",
                "no alert or service is named (add `alerts:` or `services:` front-matter, "
                "or an `Alert: <AlertName>` line)",
            )
        )
    for step in steps:
        if step.risk == RiskClass.RED and step.rollback is None:
            flags.append(
                QualityFlag(
                    "red_without_rollback",
                    "destructive command with no way back described",
                    step.id,
                )
            )
    for step in steps:
        if is_vague(step):
            flags.append(
                QualityFlag(
                    "vague_step",
                    "instruction names no command, query, link or specific target",
                    step.id,
                )
            )
    for variable in variables:
        if variable.source == VariableSource.ASK:
            used_in = next(
                (s.id for s in steps if s.command and variable.syntax in s.command), None
            )
            flags.append(
                QualityFlag(
                    "undefined_variable",
                    f"{variable.syntax} is not an alert label or annotation; "
                    "someone must supply it",
                    used_in,
                )
            )
    return QualityReport(score=score(flags), flags=flags)


def score(flags: list[QualityFlag]) -> int:
    counts: dict[str, int] = {}
    for flag in flags:
        counts[flag.code] = counts.get(flag.code, 0) + 1
    total = 100
    for code, n in counts.items():
        each, cap = _WEIGHTS.get(code, (0, 0))
        total -= min(cap, each * n)
    return max(0, min(100, total))
