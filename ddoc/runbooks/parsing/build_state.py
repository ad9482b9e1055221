"""What the step builder's parts share: the state of one walk over a document.

The walk (``steps.py``) and the parts it hands sentences and nodes to (``sentence_steps``,
``decisions``, ``rollbacks``, ``risk_warnings``, ``lists``) read and update one
``BuildState``, passed explicitly. It also holds the two ways anything is recorded: a step
(``add``, which rates the step's command) and a prerequisite (``prereq``), and the records
left pending until every step exists (rollback hints, branch targets).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ddoc.runbooks.model import Branch, Prerequisite, RiskClass, SourceSpan, Step, StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.errors import ParseError

Classifier = Callable[[str, str | None], tuple[RiskClass, str]]

FORWARD = frozenset({lx.ACTION, lx.DIAGNOSIS, lx.NEUTRAL, lx.ESCALATION})
STATE_CHANGING = frozenset({RiskClass.YELLOW, RiskClass.RED})
STEP_TEXT_LIMIT = 4000


@dataclass
class Outline:
    """What the builder learned besides steps: title/summary material and prerequisites."""

    h1: str | None = None
    first_heading: str | None = None
    first_line: str | None = None
    summary_parts: list[str] = field(default_factory=list)
    first_paragraph: str | None = None
    prerequisites: list[Prerequisite] = field(default_factory=list)


@dataclass
class RollbackHint:
    """Rollback instructions from a rollback section, tied to a step once all steps exist."""

    text: str
    command: str | None
    line: int
    steps_before: int
    section: int
    step_ref: int | None
    list_id: int | None


@dataclass
class Goto:
    """A branch's reference to a step that may not exist yet, resolved after the walk."""

    branch: Branch
    kind: str  # step | next | anchor | section
    value: str
    list_id: int | None = None
    after: int = 0  # step count once the decision's own targets were added


@dataclass
class BuildState:
    """The steps and outline so far, where the walk is (section role, unit, list, heading),
    and what is left to resolve once every step exists."""

    classify: Classifier
    warnings: list[str]
    deadline: float | None = None  # time.monotonic() after which parsing gives up
    steps: list[Step] = field(default_factory=list)
    outline: Outline = field(default_factory=Outline)
    role: str = lx.NEUTRAL  # the role of the section being walked (lexicon roles)
    # One per paragraph, list item, code block or table row that yields steps: "the same
    # or the previous one" for prose that refers back (warnings, rollbacks, "otherwise").
    unit: int = 0
    heading_serial: int = 0
    section_serial: int = 0  # rollback sections so far
    list_id: int | None = None  # the ordered list that "step 3" refers to
    item_index: dict[tuple[int, int], int] = field(default_factory=dict)
    anchors: dict[str, int] = field(default_factory=dict)  # heading slug -> first step index
    last_decision: tuple[Step, int] | None = None  # with its unit
    cond_group: tuple[int, Step] | None = None  # a conditional heading's level and decision
    pending_heading_branches: list[tuple[Branch, int]] = field(default_factory=list)
    gotos: list[Goto] = field(default_factory=list)
    hints: list[RollbackHint] = field(default_factory=list)
    step_unit: dict[str, int] = field(default_factory=dict)
    step_section: dict[str, int] = field(default_factory=dict)
    prereq_seen: set[str] = field(default_factory=set)
    classified: dict[tuple[str, str | None], tuple[RiskClass, str]] = field(default_factory=dict)

    def add(
        self,
        kind: StepKind,
        text: str,
        start: int,
        end: int,
        command: str | None = None,
        language: str | None = None,
    ) -> Step:
        text = text.strip() or (f"Run `{command.splitlines()[0]}`" if command else "Step")
        if len(text) > STEP_TEXT_LIMIT:
            # A paragraph of pasted log output is one "sentence": keep each step's text bounded.
            text = text[: STEP_TEXT_LIMIT - 1].rstrip() + "\u2026"
        step = Step(
            id=f"s{len(self.steps) + 1}",
            text=text,
            kind=kind,
            source=SourceSpan(start, max(start, end)),
            command=command,
            language=language if command is not None else None,
        )
        if command is not None:
            step.risk, step.risk_reason = self._risk(command, language)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ParseError(
                f"the runbook took too long to parse ({len(self.steps)} steps so far); "
                "split it, or remove pasted command output"
            )
        self.steps.append(step)
        self.step_unit[step.id] = self.unit
        self.step_section[step.id] = self.heading_serial
        if self.pending_heading_branches:
            for branch, _ in self.pending_heading_branches:
                branch.goto = step.id
            self.pending_heading_branches.clear()
        return step

    def _risk(self, command: str, language: str | None) -> tuple[RiskClass, str]:
        key = (command, language)
        cached = self.classified.get(key)
        if cached is not None:
            return cached
        try:
            level, reason = self.classify(command, language)
            result = (RiskClass(level), str(reason))
        except Exception as exc:  # a classifier bug must not lose the runbook
            self.warnings.append(f"risk classification failed for `{command[:60]}`: {exc}")
            result = (RiskClass.RED, "risk could not be classified; treat as destructive")
        self.classified[key] = result
        return result

    def prereq(self, text: str, start: int, end: int) -> None:
        text = text.strip()
        if not text or (text.endswith(":") and len(text) < 80):
            return  # an intro line such as "Before you start:" is not a prerequisite itself
        key = text.lower()
        if key in self.prereq_seen:
            return
        self.prereq_seen.add(key)
        self.outline.prerequisites.append(
            Prerequisite(text=text, kind=lx.prerequisite_kind(text), source=SourceSpan(start, end))
        )

    def step_for_item(self, list_id: int | None, number: int) -> Step | None:
        """The step where item ``number`` of list ``list_id`` starts, if there is one."""
        if list_id is None:
            return None
        index = self.item_index.get((list_id, number))
        if index is None or index >= len(self.steps):
            return None
        return self.steps[index]
