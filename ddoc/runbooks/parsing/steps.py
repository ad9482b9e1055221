"""From the document tree to steps: the interpretation layer.

Why this file is long: one StepBuilder walks the document with shared state (section role,
units, pending rollbacks and branches); splitting it (sections, sentences, lists, rollbacks)
is part of the restructure in issue 16.

Walks the nodes in document order, tracking which kind of section it is in (diagnosis,
mitigation, rollback, prerequisites, explanatory ...), and turns list items, paragraphs,
code blocks and table rows into command / manual / decision / escalate steps. Rollback
hints are attached to the steps they undo rather than becoming steps themselves.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ddoc.runbooks.model import (
    Branch,
    Prerequisite,
    RiskClass,
    Rollback,
    RollbackOrigin,
    SourceSpan,
    Step,
    StepKind,
)
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.commands import Command, block_kind, extract_commands, undoes
from ddoc.runbooks.parsing.errors import ParseError
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    ListItem,
    Node,
    Paragraph,
    Seg,
    Table,
    render_segs,
)
from ddoc.runbooks.parsing.sentences import InlineCommand, Sentence, split_sentences

Classifier = Callable[[str, str | None], tuple[RiskClass, str]]

_FORWARD = frozenset({lx.ACTION, lx.DIAGNOSIS, lx.NEUTRAL, lx.ESCALATION})
_PARAGRAPH_ROLES = frozenset({lx.INFO, lx.REFS, lx.PREREQ, lx.ROLLBACK})
_STATE_CHANGING = frozenset({RiskClass.YELLOW, RiskClass.RED})
_SUMMARY_LIMIT = 500
STEP_TEXT_LIMIT = 4000
_INTRO_LIMIT = 300
_CONTEXT_CODE_LIMIT = 2000
_COND_SPLIT = re.compile(r",\s*(?:then\b\s*)?|\s+then\s+|:\s+|\uff0c|\u3001")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_CHECKLIST_INTRO = re.compile(
    r"\b(?:check|verify|ensure|confirm|look|inspect|investigate|things|steps|make sure"
    r"|possible (?:causes|reasons))\b",
    re.I,
)
_TOC = re.compile(r"\btable of contents\b", re.I)
_INTRO_WORDS = re.compile(r"\b(?:run|running|execute|executing|following|below|command)\b", re.I)
_YOU_CAN = re.compile(r"^(?:you|we) (?:can|could|may)\s+(?:also\s+)?([a-z-]+)", re.I)
_SLUG_DROP = re.compile(r"[^\w\- ]")
_OUTPUT_CHECK = re.compile(
    r"\b(?:contains?|shows?|includes?|prints?|displays?|reports?|mentions?|returns?|lists?|says"
    r"|outputs?|enthält|zeigt|muestra|contiene)\s+(?:the\s+)?(?:string\s+|text\s+|word\s+"
    r"|message\s+|status\s+|value\s+)?(?:`([^`]+)`|\"([^\"]+)\"|“([^”]+)”|'([^']+)')"
)


@dataclass
class _RollbackHint:
    text: str
    command: str | None
    line: int
    steps_before: int
    section: int
    step_ref: int | None
    list_id: int | None


@dataclass
class _Goto:
    branch: Branch
    kind: str  # step | next | anchor | section
    value: str
    list_id: int | None = None
    after: int = 0  # step count once the decision's own targets were added


@dataclass
class _BranchSpec:
    condition: str
    action: str
    check: dict[str, object] | None


@dataclass
class Outline:
    """What the builder learned besides steps: title/summary material and prerequisites."""

    h1: str | None = None
    first_heading: str | None = None
    first_line: str | None = None
    summary_parts: list[str] = field(default_factory=list)
    first_paragraph: str | None = None
    prerequisites: list[Prerequisite] = field(default_factory=list)


class StepBuilder:
    def __init__(
        self, classify: Classifier, warnings: list[str], deadline: float | None = None
    ) -> None:
        self.classify = classify
        self.warnings = warnings
        self.deadline = deadline  # time.monotonic() after which parsing gives up
        self.steps: list[Step] = []
        self.outline = Outline()
        self._prereq_seen: set[str] = set()
        self._headings: list[tuple[int, str, str | None]] = []
        self.role = lx.NEUTRAL
        self.heading_text = ""
        self._in_summary = False
        self._summary_done = False
        self._pending_heading_branches: list[tuple[Branch, int]] = []
        self._cond_group: tuple[int, Step] | None = None
        self._gotos: list[_Goto] = []
        self._item_index: dict[tuple[int, int], int] = {}
        self._anchors: dict[str, int] = {}
        self._list_id: int | None = None
        self._last_decision: tuple[Step, int] | None = None
        self._unit = 0
        self._hints: list[_RollbackHint] = []
        self._section_serial = 0
        self._classified: dict[tuple[str, str | None], tuple[RiskClass, str]] = {}
        self._step_unit: dict[str, int] = {}
        self._step_section: dict[str, int] = {}
        self._heading_serial = 0

    # --- entry point ---------------------------------------------------------------------
    def build(self, nodes: list[Node]) -> list[Step]:
        self._blocks(_split_paragraphs(nodes))
        self._resolve_rollbacks()
        self._resolve_gotos()
        return self.steps

    def _blocks(self, nodes: list[Node], item_text: str | None = None) -> None:
        i = 0
        n = len(nodes)
        while i < n:
            node = nodes[i]
            nxt = nodes[i + 1] if i + 1 < n else None
            if isinstance(node, Heading):
                self._heading(node)
            elif isinstance(node, Paragraph):
                if isinstance(nxt, CodeBlock) and self._is_intro(node.inline, nxt):
                    self._code(nxt, node.inline)
                    i += 2
                    continue
                if isinstance(nxt, ListBlock) and self._checklist(node.inline, nxt):
                    i += 2
                    continue
                self._paragraph(node.inline)
            elif isinstance(node, CodeBlock):
                self._code(node, None, fallback=item_text)
            elif isinstance(node, ListBlock):
                # "- Back up the data bag by executing" + a fence at column 0 (which ends the
                # list in CommonMark): the code belongs to that last item.
                while isinstance(nxt, CodeBlock) and self._item_wants_code(node, nxt):
                    node.items[-1].body.append(nxt)
                    i += 1
                    nxt = nodes[i + 1] if i + 1 < n else None
                self._list(node)
            elif isinstance(node, Table):
                self._table(node)
            i += 1

    # --- steps ---------------------------------------------------------------------------
    def _add(
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
        self._step_unit[step.id] = self._unit
        self._step_section[step.id] = self._heading_serial
        if self._pending_heading_branches:
            for branch, _ in self._pending_heading_branches:
                branch.goto = step.id
            self._pending_heading_branches.clear()
        return step

    def _risk(self, command: str, language: str | None) -> tuple[RiskClass, str]:
        key = (command, language)
        cached = self._classified.get(key)
        if cached is not None:
            return cached
        try:
            level, reason = self.classify(command, language)
            result = (RiskClass(level), str(reason))
        except Exception as exc:  # a classifier bug must not lose the runbook
            self.warnings.append(f"risk classification failed for `{command[:60]}`: {exc}")
            result = (RiskClass.RED, "risk could not be classified; treat as destructive")
        self._classified[key] = result
        return result

    # --- headings and sections -----------------------------------------------------------
    def _heading(self, node: Heading) -> None:
        text = node.inline.render().replace("`", "").strip()
        level = node.level
        self._heading_serial += 1
        if self.outline.first_heading is None and text:
            self.outline.first_heading = text
        if level == 1 and self.outline.h1 is None and text:
            self.outline.h1 = text
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        own = lx.section_role(text)
        if own == lx.ROLLBACK and level == 1 and self.outline.h1 == text:
            own = None  # the runbook's title names the procedure ("search-indexer rollback")
        self._headings.append((level, text, own))
        self.role = next((r for _, _, r in reversed(self._headings) if r), lx.NEUTRAL)
        self.heading_text = text
        if own == lx.ROLLBACK:
            self._section_serial += 1
        self._pending_heading_branches = [
            (b, lv) for b, lv in self._pending_heading_branches if lv < level
        ]
        self._anchors.setdefault(_slug(text), len(self.steps))
        self._last_decision = None
        if self._summary_done or self.outline.summary_parts:
            self._summary_done = True
            self._in_summary = False
        else:
            self._in_summary = own == lx.INFO and bool(lx.SUMMARY_HEADINGS.match(text))
        conditional = self.role in _FORWARD and bool(lx.HEADING_COND_START.match(text))
        group = self._cond_group
        if group is not None and (level < group[0] or (level == group[0] and not conditional)):
            self._cond_group = None
        if conditional:
            condition = lx.HEADING_COND_START.sub("", text, count=1).rstrip(":").strip() or text
            branch = Branch(condition=condition, text=text, check=_check(condition))
            group = self._cond_group
            if group is not None and group[0] == level:
                decision = group[1]
                decision.branches.append(branch)
                decision.text += f"; {condition}"
            else:
                decision = self._add(
                    StepKind.DECISION,
                    f"Choose the case that applies: {condition}",
                    node.inline.start,
                    node.inline.end,
                )
                decision.branches.append(branch)
                self._cond_group = (level, decision)
            self._pending_heading_branches.append((branch, level))

    # --- paragraphs ----------------------------------------------------------------------
    def _paragraph(self, inline: Inline) -> None:
        before = (list(self._headings), self.role, self.heading_text)
        inline = self._run_in_heading(inline)
        if self.role != before[1] and self.role in _PARAGRAPH_ROLES:
            # A pasted page's "Background  …" or "Rollback  …" governs its own paragraph only:
            # the procedure goes on in the next one, which has no name of its own.
            self._paragraph_body(inline)
            self._headings, self.role, self.heading_text = before
            return
        self._paragraph_body(inline)

    def _paragraph_body(self, inline: Inline) -> None:
        role = self.role
        text = inline.render()
        if not text:
            return
        if role == lx.REFS:
            return
        sentences = split_sentences(inline.segs)
        if role == lx.INFO:
            if self._in_summary:
                self.outline.summary_parts.append(text)
            if self.outline.first_paragraph is None and not _TOC.search(text):
                self.outline.first_paragraph = text
            for s in sentences:
                if lx.PREREQ_SENTENCE.search(s.text) and not s.commands:
                    self._prereq(s.text, s.start, s.end)
            return
        if role == lx.PREREQ:
            self._prereq(text, inline.start, inline.end)
            return
        if role == lx.ROLLBACK:
            commands = [c.text for s in sentences for c in s.commands]
            self._hint(text, commands, inline.start)
            return
        self._unit += 1
        before = (len(self.steps), len(self.outline.prerequisites))
        emitted = self._sentences(sentences, manual_plain=True)
        if not emitted and self._actionable_text(sentences):
            kind = StepKind.ESCALATE if lx.ESCALATE.search(text) else StepKind.MANUAL
            self._add(kind, text, inline.start, inline.end)
        after = (len(self.steps), len(self.outline.prerequisites))
        if self.outline.first_paragraph is None and before == after:
            # Summary fallback: the first paragraph that is prose, not an instruction.
            self.outline.first_paragraph = text

    def _run_in_heading(self, inline: Inline) -> Inline:
        """ "Diagnosis  Start by checking …": the section name becomes a heading of its own."""
        lead = 0
        while lead < len(inline.segs) - 1 and not inline.segs[lead].value.strip():
            lead += 1
        first = inline.segs[lead] if inline.segs else None
        if first is None or first.kind != "text" or first.href is not None:
            return inline
        m = lx.RUN_IN_HEADING.match(first.value.lstrip())
        if m is None or lx.section_role(m.group("head")) is None or first.value.count("\t") > 1:
            return inline  # "Symptom<tab>Command<tab>Notes" is a table's header row
        head = Inline([Seg("text", m.group("head"), first.line)], first.line, first.line)
        title = (self.outline.first_heading, self.outline.h1)
        self._heading(Heading(2, head))
        self.outline.first_heading, self.outline.h1 = title  # a section name is no title
        rest = Seg("text", first.value.lstrip()[m.end() :], first.line)
        return Inline([rest, *inline.segs[lead + 1 :]], inline.start, inline.end)

    def _actionable_text(self, sentences: list[Sentence]) -> bool:
        if not sentences:
            return False
        first = sentences[0].text
        if self.role == lx.ESCALATION:
            return True
        return lx.is_imperative(first) or bool(lx.ESCALATE.search(first))

    def _sentences(self, sentences: list[Sentence], manual_plain: bool) -> bool:
        """Emit steps for the sentences that say something specific; True if any did.

        With ``manual_plain`` (paragraphs), instructions between specific sentences become
        manual steps; a paragraph with nothing specific is left to the caller.
        """
        kinds = [self._sentence_kind(s) for s in sentences]
        if all(k == "plain" for k in kinds):
            return False
        plain: list[Sentence] = []

        def flush() -> None:
            if plain and manual_plain and lx.is_imperative(plain[0].text):
                text = " ".join(s.text for s in plain)
                self._add(StepKind.MANUAL, text, plain[0].start, plain[-1].end)
            plain.clear()

        for s, kind in zip(sentences, kinds, strict=True):
            if kind == "plain":
                plain.append(s)
                continue
            flush()
            self._emit_sentence(s, kind)
        flush()
        return True

    def _sentence_kind(self, s: Sentence) -> str:
        text = s.text
        if lx.is_rollback_sentence(text):
            return "rollback"
        if lx.OTHERWISE.match(text) and self._recent_decision() is not None:
            return "otherwise"
        if (lx.COND_START.match(text) or _maybe_ja_cond(text)) and self._decision_specs(s):
            return "decision"
        if s.commands:
            return "command"
        if lx.PREREQ_SENTENCE.search(text):
            return "prereq"
        if lx.ESCALATE.search(text):
            return "escalate"
        if lx.warns_destructive(text):
            return "warning"
        return "plain"

    def _warned_step(self) -> Step | None:
        """The step a warning right after it qualifies: the last command of this or the
        previous paragraph/item."""
        if not self.steps or self.steps[-1].command is None:
            return None
        last = self.steps[-1]
        if self._step_section.get(last.id) != self._heading_serial:
            return None  # a warning under another heading is about that section's steps
        return last if self._unit - self._step_unit.get(last.id, -9) <= 1 else None

    def _warning(self, s: Sentence) -> None:
        """ "This wipes the queue, there is no undo": the step it follows is destructive."""
        step = self._warned_step()
        if step is None:
            return
        if step.risk != RiskClass.RED:
            step.risk = RiskClass.RED
            step.risk_reason = f"the runbook warns: {_after_commands(s)[:200]}"
        if s.text not in step.text:
            step.text = f"{step.text}\n{s.text}"

    def _emit_sentence(self, s: Sentence, kind: str) -> None:
        if kind == "rollback":
            command = "\n".join(c.text for c in s.commands) or None
            self._runbook_rollback(s.text, command, s.start)
        elif kind == "otherwise":
            recent = self._recent_decision()
            if recent is not None:
                action = lx.OTHERWISE.sub("", s.text, count=1)
                first = recent.branches[0].check if recent.branches else None
                branch = Branch(condition="otherwise", text=action, check=_negate(first))
                recent.branches.append(branch)
                self._branch_target(branch, action, s.commands, s)
        elif kind == "decision":
            self._decision(s)
        elif kind == "command":
            for c in s.commands:
                if c.undo:
                    self._runbook_rollback(s.text, c.text, c.line)
                else:
                    self._add(StepKind.COMMAND, s.text, s.start, s.end, c.text, c.language)
            if lx.warns_destructive(_after_commands(s)):
                self._warning(s)
        elif kind == "warning":
            self._warning(s)
        elif kind == "prereq":
            self._prereq(s.text, s.start, s.end)
        elif kind == "escalate":
            self._add(StepKind.ESCALATE, s.text, s.start, s.end)

    # --- decisions -----------------------------------------------------------------------
    def _recent_decision(self) -> Step | None:
        if self._last_decision is None:
            return None
        step, unit = self._last_decision
        return step if self._unit - unit <= 1 else None

    def _decision_specs(self, s: Sentence) -> list[_BranchSpec] | None:
        text = s.text
        masked = _mask_code(text)
        m = lx.COND_START.match(text)
        if m is None:
            ja = lx.JA_COND.match(text)
            if ja is None:
                return None
            cond, action = ja.group("cond"), ja.group("act")
            if not self._actionable_action(action, s.commands):
                return None
            return [_BranchSpec(cond.strip(), action.strip(), _check(cond))]
        body_start = m.end()
        for sep in _COND_SPLIT.finditer(masked, body_start):
            action = lx.THEN.sub("", text[sep.end() :], count=1)
            if not self._actionable_action(action, s.commands):
                continue
            cond = text[body_start : sep.start()].strip()
            if not cond:
                return None
            specs = [_BranchSpec(cond, action, _check(cond))]
            other = lx.INLINE_OTHERWISE.search(_mask_code(action))
            if other is not None:
                first_action = action[: other.start()].strip()
                second = action[other.end() :].strip()
                specs[0].action = first_action
                if second:
                    specs.append(_BranchSpec("otherwise", second, _negate(specs[0].check)))
            return specs
        return None

    def _actionable_action(self, action: str, commands: list[InlineCommand]) -> bool:
        action = action.strip()
        if not action:
            return False
        if any(c.text in action for c in commands):
            return True
        if lx.is_imperative(action) or lx.ESCALATE.search(action):
            return True
        if lx.STEP_REF.search(action) or lx.SECTION_REF.search(action):
            return True
        you = _YOU_CAN.match(action)
        return you is not None and lx.is_imperative(you.group(1))

    def _decision(self, s: Sentence) -> None:
        specs = self._decision_specs(s)
        if not specs:
            return
        # Commands in the condition are what is being checked: run them first.
        cond_cmds = [c for c in s.commands if c.text in specs[0].condition]
        for c in cond_cmds:
            self._add(StepKind.COMMAND, s.text, s.start, s.end, c.text, c.language)
        decision = self._add(StepKind.DECISION, s.text, s.start, s.end)
        self._last_decision = (decision, self._unit)
        branches = [Branch(condition=sp.condition, text=sp.action, check=sp.check) for sp in specs]
        decision.branches.extend(branches)
        used = {c.text for c in cond_cmds}
        for spec, branch in zip(specs, branches, strict=True):
            cmds = [c for c in s.commands if c.text in spec.action and c.text not in used]
            used.update(c.text for c in cmds)
            self._branch_target(branch, spec.action, cmds, s)

    def _branch_target(
        self, branch: Branch, action: str, cmds: list[InlineCommand], s: Sentence
    ) -> None:
        if cmds:
            first: Step | None = None
            for c in cmds:
                step = self._add(StepKind.COMMAND, action, s.start, s.end, c.text, c.language)
                first = first or step
            branch.goto = first.id if first else None
            return
        if lx.ESCALATE.search(action):
            branch.goto = self._add(StepKind.ESCALATE, action, s.start, s.end).id
            return
        ref = lx.STEP_REF.search(action)
        if ref:
            number = next(g for g in ref.groups() if g)
            self._gotos.append(_Goto(branch, "step", number, self._list_id))
            return
        section = lx.SECTION_REF.search(action)
        if section:
            self._gotos.append(_Goto(branch, "section", section.group("name")))
            return
        for seg in s.segs:
            if seg.href and seg.href.startswith("#") and seg.value.strip() in action:
                self._gotos.append(_Goto(branch, "anchor", seg.href[1:]))
                return
        if lx.NEXT_REF.search(action):
            self._gotos.append(_Goto(branch, "next", "", after=len(self.steps)))

    # --- code blocks ---------------------------------------------------------------------
    def _is_intro(self, inline: Inline, code: CodeBlock) -> bool:
        if self.role in (lx.INFO, lx.REFS):
            return False
        sentences = split_sentences(inline.segs)
        if any(s.commands for s in sentences):
            return False
        text = inline.render()
        return block_kind(code.info, code.lines, text) != "none"

    def _code(self, code: CodeBlock, intro: Inline | None, fallback: str | None = None) -> None:
        role = self.role
        if role in (lx.INFO, lx.REFS):
            return
        intro_text = _intro_text(intro) if intro is not None else ""
        kind = block_kind(code.info, code.lines, intro_text)
        start = intro.start if intro is not None else code.start
        end = code.start + max(0, len(code.lines) - 1)
        if kind == "none":
            if intro is not None:
                self._paragraph(intro)
            return
        if kind == "context":
            self._context_code(code, intro, intro_text, start, end)
            return
        commands = extract_commands(code.info, code.lines, code.start)
        if not commands:
            # e.g. a block holding only "# TODO: command needed": keep the instruction.
            if intro is not None and role in _FORWARD and lx.is_imperative(intro_text):
                note = " ".join(ln.strip().lstrip("#-/ ") for ln in code.lines if ln.strip())
                text = f"{intro_text} ({note})" if note else intro_text
                self._add(StepKind.MANUAL, text, start, end)
            return
        text = intro_text or fallback or ""
        if role == lx.PREREQ:
            for c in commands:
                self._prereq(f"{text} `{c.text}`".strip() if text else f"`{c.text}`", start, c.end)
            return
        if role == lx.ROLLBACK:
            self._hint(text, [c.text for c in commands], start)
            return
        if intro is not None and lx.is_rollback_sentence(intro_text):
            self._runbook_rollback(intro_text, "\n".join(c.text for c in commands), start)
            return
        self._unit += 1
        if intro is not None and self._intro_decision(intro, commands):
            return
        for c in commands:
            self._add(
                StepKind.COMMAND,
                c.title or text or self.heading_text,
                c.start,
                c.end,
                c.text,
                c.language,
            )

    def _intro_decision(self, intro: Inline, commands: list[Command]) -> bool:
        """ "If X, run the following:" + code: a decision whose branch is the code."""
        sentences = split_sentences(intro.segs)
        last = sentences[-1] if sentences else None
        if last is None or not lx.COND_START.match(last.text):
            return False
        specs = self._decision_specs(last)
        if not specs:
            return False
        decision = self._add(StepKind.DECISION, _intro_text(intro), intro.start, intro.end)
        spec = specs[0]
        branch = Branch(condition=spec.condition, text=spec.action, check=spec.check)
        decision.branches.append(branch)
        self._last_decision = (decision, self._unit)
        for c in commands:
            step = self._add(
                StepKind.COMMAND, c.title or spec.action, c.start, c.end, c.text, c.language
            )
            branch.goto = branch.goto or step.id
        return True

    def _context_code(
        self, code: CodeBlock, intro: Inline | None, intro_text: str, start: int, end: int
    ) -> None:
        """Config or code to apply by hand: part of a manual step, never a command."""
        if intro is None:
            return
        if self.role not in _FORWARD or not lx.is_imperative(intro_text):
            self._paragraph(intro)
            return
        body = "\n".join(code.lines)
        if len(body) > _CONTEXT_CODE_LIMIT:
            body = body[:_CONTEXT_CODE_LIMIT] + "\n…"
        fence = "````" if "```" in body else "```"
        text = f"{intro_text}\n{fence}{code.info}\n{body}\n{fence}"
        self._add(StepKind.MANUAL, text, start, end)

    # --- lists ---------------------------------------------------------------------------
    def _checklist(self, inline: Inline, lst: ListBlock) -> bool:
        """A "things to check:" paragraph over a list of non-instructions: one manual step."""
        text = inline.render()
        if not text.endswith(":") or self.role not in (lx.DIAGNOSIS, lx.ACTION):
            return False
        if not (_CHECKLIST_INTRO.search(text) or lx.is_imperative(text)):
            return False
        sentences = split_sentences(inline.segs)
        if any(s.commands for s in sentences):
            return False
        if lst.ordered or any(_has_command(it, deep=True) for it in lst.items):
            return False
        # A stray verb-first item ("read only filesystem") does not make it a procedure.
        if 3 * sum(self._item_actionable(it) for it in lst.items) > len(lst.items):
            return False
        lines = [text] + [f"- {_item_text(it)}" for it in lst.items]
        end = max(it.end for it in lst.items) if lst.items else inline.end
        self._add(StepKind.MANUAL, "\n".join(lines), inline.start, end)
        return True

    def _item_wants_code(self, lst: ListBlock, code: CodeBlock) -> bool:
        if not lst.items or self.role in (lx.INFO, lx.REFS):
            return False
        last = lst.items[-1]
        head = _head(last)
        if head is None or any(isinstance(n, CodeBlock | ListBlock) for n in last.body):
            return False
        if _has_command(last, deep=False):
            return False
        text = head.render()
        if block_kind(code.info, code.lines, text) == "none":
            return False
        return (
            text.rstrip().endswith(":")
            or bool(_INTRO_WORDS.search(text))
            or (lx.is_imperative(text))
        )

    def _list(self, lst: ListBlock) -> None:
        if lst.ordered:
            self._list_id = lst.list_id
        for item in lst.items:
            self._item(item, lst)

    def _item_actionable(self, item: ListItem, deep: bool = True) -> bool:
        if _has_command(item, deep=deep):
            return True
        head = _head(item)
        if head is None:
            return False
        sentences = split_sentences(head.segs)
        if not sentences:
            return False
        first = sentences[0].text
        if lx.is_imperative(first) or lx.ESCALATE.search(first):
            return True
        return bool(lx.COND_START.match(first) and self._decision_specs(sentences[0]))

    def _item(self, item: ListItem, lst: ListBlock, context: str | None = None) -> None:
        self._item_index.setdefault((lst.list_id, item.number), len(self.steps))
        role = self.role
        if role in (lx.REFS, lx.INFO):
            if role == lx.INFO:
                head = _head(item)
                if head is not None:
                    for s in split_sentences(head.segs):
                        if lx.PREREQ_SENTENCE.search(s.text) and not s.commands:
                            self._prereq(s.text, s.start, s.end)
            return
        if role == lx.PREREQ:
            self._prereq(_item_text(item), item.start, item.end)
            return
        if role == lx.ROLLBACK:
            self._rollback_item(item)
            return
        self._unit += 1
        head = _head(item)
        reference = head is None or _link_only(head) or bool(lx.REFERENCE_ONLY.match(head.render()))
        # Actionable on its own account, not just because a nested item holds a command.
        actionable = not reference and (
            lst.ordered
            or role == lx.ESCALATION
            or _has_command(item, deep=False)
            or self._item_actionable(item, deep=False)
        )
        sublists = [n for n in item.body if isinstance(n, ListBlock)]
        folded: list[ListItem] = []
        standalone: list[tuple[ListItem, ListBlock]] = []
        for sub in sublists:
            for child in sub.items:
                if (
                    actionable
                    and not _has_command(child, deep=True)
                    and not (self._child_special(child))
                ):
                    folded.append(child)
                else:
                    standalone.append((child, sub))
        own = [n for n in item.body if not isinstance(n, ListBlock)]
        head_text = head.render() if head is not None else ""
        if context and head is not None and _code_only(head):
            head_text = f"{context} {head_text}"
        text = "\n".join([head_text] + [f"- {_item_text(c)}" for c in folded]).strip()
        end = max([_node_end(n) for n in own] + [c.end for c in folded] + [item.start])

        paragraphs = [n for n in own if isinstance(n, Paragraph)]
        sentence_lists = [split_sentences(p.inline.segs) for p in paragraphs]
        kinds = [self._sentence_kind(s) for ss in sentence_lists for s in ss]
        inline_cmds = [c for ss in sentence_lists for s in ss for c in s.commands]
        code_cmds: list[Command] = []
        for n in own:
            if isinstance(n, CodeBlock) and block_kind(n.info, n.lines, text) == "command":
                code_cmds.extend(extract_commands(n.info, n.lines, n.start))
        special = any(k in ("rollback", "otherwise", "decision") for k in kinds)

        if not special and len(inline_cmds) + len(code_cmds) == 1:
            if inline_cmds:
                only = inline_cmds[0]
                self._add(StepKind.COMMAND, text, item.start, end, only.text, only.language)
            else:
                cc = code_cmds[0]
                self._add(StepKind.COMMAND, text, item.start, end, cc.text, cc.language)
            for s in (s for ss in sentence_lists for s in ss):
                if lx.warns_destructive(_after_commands(s)):
                    self._warning(s)
        elif not special and not inline_cmds and not code_cmds:
            if actionable:
                prereq_only = (
                    kinds
                    and all(k in ("prereq", "plain") for k in kinds)
                    and (kinds[0] == "prereq")
                )
                if prereq_only:
                    self._prereq(text, item.start, end)
                else:
                    extra = _context_blocks(own)
                    kind = StepKind.ESCALATE if lx.ESCALATE.search(head_text) else StepKind.MANUAL
                    self._add(kind, text + extra, item.start, end)
        else:
            self._item_parts(own, head_text)
        for child, sub in standalone:
            if sub.ordered:
                self._list_id = sub.list_id
            self._item(child, sub, context=None if actionable or reference else head_text)
        if lst.ordered:
            self._list_id = lst.list_id

    def _child_special(self, child: ListItem) -> bool:
        head = _head(child)
        if head is None:
            return False
        sentences = split_sentences(head.segs)
        return any(
            self._sentence_kind(s) in ("decision", "escalate", "rollback") for s in sentences
        )

    def _item_parts(self, own: Sequence[Node], head_text: str) -> None:
        """An item with several commands or a condition: each part becomes its own step."""
        i = 0
        while i < len(own):
            node = own[i]
            nxt = own[i + 1] if i + 1 < len(own) else None
            if isinstance(node, Paragraph):
                if isinstance(nxt, CodeBlock) and self._is_intro(node.inline, nxt):
                    self._code(nxt, node.inline)
                    i += 2
                    continue
                self._sentences(split_sentences(node.inline.segs), manual_plain=False)
            elif isinstance(node, CodeBlock):
                self._code(node, None, fallback=head_text)
            elif isinstance(node, Table):
                self._table(node)
            i += 1

    def _rollback_item(self, item: ListItem) -> None:
        text = _item_text(item)
        commands: list[str] = []
        for n in item.body:
            if isinstance(n, Paragraph):
                commands.extend(c.text for s in split_sentences(n.inline.segs) for c in s.commands)
            elif isinstance(n, CodeBlock) and block_kind(n.info, n.lines, text) == "command":
                commands.extend(c.text for c in extract_commands(n.info, n.lines, n.start))
        for sub in item.body:
            if isinstance(sub, ListBlock):
                for child in sub.items:
                    if _has_command(child, deep=True):
                        self._rollback_item(child)
        self._hint(text, commands, item.start)

    # --- tables --------------------------------------------------------------------------
    def _table(self, table: Table) -> None:
        role = self.role
        if role in (lx.INFO, lx.REFS, lx.PREREQ):
            return
        for row in table.rows:
            commands: list[InlineCommand] = []
            for cell in row.cells:
                for s in split_sentences(cell.segs):
                    commands.extend(s.commands)
            if not commands:
                continue
            text = " | ".join(cell.render() for cell in row.cells if cell.segs)
            if role == lx.ROLLBACK:
                self._hint(text, [c.text for c in commands], row.line)
                continue
            self._unit += 1
            for c in commands:
                self._add(StepKind.COMMAND, text, row.line, row.line, c.text, c.language)

    # --- prerequisites -------------------------------------------------------------------
    def _prereq(self, text: str, start: int, end: int) -> None:
        text = text.strip()
        if not text or (text.endswith(":") and len(text) < 80):
            return  # an intro line such as "Before you start:" is not a prerequisite itself
        key = text.lower()
        if key in self._prereq_seen:
            return
        self._prereq_seen.add(key)
        self.outline.prerequisites.append(
            Prerequisite(text=text, kind=lx.prerequisite_kind(text), source=SourceSpan(start, end))
        )

    # --- rollbacks -----------------------------------------------------------------------
    def _hint(self, text: str, commands: list[str], line: int) -> None:
        ref = lx.STEP_REF.search(text)
        step_ref = int(next(g for g in ref.groups() if g)) if ref else None
        if not commands:
            if text.strip():
                self._hints.append(
                    _RollbackHint(
                        text,
                        None,
                        line,
                        len(self.steps),
                        self._section_serial,
                        step_ref,
                        self._list_id,
                    )
                )
            return
        for command in commands:
            self._hints.append(
                _RollbackHint(
                    text,
                    command,
                    line,
                    len(self.steps),
                    self._section_serial,
                    step_ref,
                    self._list_id,
                )
            )

    def _runbook_rollback(self, text: str, command: str | None, line: int) -> None:
        """ "To undo, run `x`" in running prose: attach to the step it follows."""
        ref = lx.STEP_REF.search(text)
        target: Step | None = None
        if ref:
            target = self._step_for_item(self._list_id, int(next(g for g in ref.groups() if g)))
        if target is None and command:
            target = next(
                (s for s in reversed(self.steps) if s.command and undoes(command, s.command)), None
            )
        if target is None and self.steps and self.steps[-1].command is not None:
            # "2. Bump: `bump.sh`" then "To roll back: `unbump.sh`" in the same item/paragraph.
            last = self.steps[-1]
            if self._step_unit.get(last.id) == self._unit:
                target = last
        if target is None:
            target = self._last_state_changing(len(self.steps))
        if target is None:
            self.warnings.append(
                f"line {line}: rollback hint has no earlier step to attach to; it was dropped"
            )
            return
        _attach(target, Rollback(command=command, text=text, origin=RollbackOrigin.RUNBOOK))

    def _last_state_changing(self, before: int) -> Step | None:
        candidates = self.steps[:before]
        for step in reversed(candidates):
            if step.command is not None and step.risk in _STATE_CHANGING:
                return step
        return next((s for s in reversed(candidates) if s.command is not None), None)

    def _step_for_item(self, list_id: int | None, number: int) -> Step | None:
        if list_id is None:
            return None
        index = self._item_index.get((list_id, number))
        if index is None or index >= len(self.steps):
            return None
        return self.steps[index]

    def _resolve_rollbacks(self) -> None:
        unresolved: dict[int, list[_RollbackHint]] = {}
        for hint in self._hints:
            target: Step | None = None
            if hint.step_ref is not None:
                target = self._step_for_item(hint.list_id, hint.step_ref)
            if target is None and hint.command:
                undone = [
                    s
                    for s in reversed(self.steps[: hint.steps_before])
                    if s.command and s.kind == StepKind.COMMAND and undoes(hint.command, s.command)
                ]
                # "rollout undo" undoes the restart, not the "rollout status" that checked it.
                target = next((s for s in undone if s.risk in _STATE_CHANGING), None) or next(
                    iter(undone), None
                )
            if target is not None:
                _attach(
                    target,
                    Rollback(command=hint.command, text=hint.text, origin=RollbackOrigin.RUNBOOK),
                )
            else:
                unresolved.setdefault(hint.section, []).append(hint)
        for hints in unresolved.values():
            before = max(h.steps_before for h in hints)
            fallback = self._last_state_changing(before)
            line = hints[0].line
            if fallback is None:
                self.warnings.append(
                    f"line {line}: rollback instructions have no step to attach to; "
                    "they were dropped"
                )
                continue
            commands = [h.command for h in hints if h.command]
            texts: list[str] = []
            for h in hints:
                if h.text and h.text not in texts:
                    texts.append(h.text)
            _attach(
                fallback,
                Rollback(
                    command="\n".join(commands) if commands else None,
                    text="\n".join(texts),
                    origin=RollbackOrigin.RUNBOOK,
                ),
            )
            self.warnings.append(
                f"line {line}: rollback instructions could not be tied to a specific step; "
                f"attached to {fallback.id}"
            )

    def _resolve_gotos(self) -> None:
        n = len(self.steps)
        for goto in self._gotos:
            index: int | None = None
            if goto.kind == "step":
                step = self._step_for_item(goto.list_id, int(goto.value))
                index = self.steps.index(step) if step is not None else None
            elif goto.kind == "next":
                index = goto.after if goto.after < n else None
            elif goto.kind == "anchor":
                index = self._anchors.get(goto.value.lower())
            elif goto.kind == "section":
                slug = _slug(goto.value)
                index = self._anchors.get(slug)
                if index is None:
                    index = next((v for k, v in self._anchors.items() if k.startswith(slug)), None)
            if index is not None and index < n:
                goto.branch.goto = self.steps[index].id


def _attach(step: Step, rollback: Rollback) -> None:
    existing = step.rollback
    if existing is None or existing.origin != RollbackOrigin.RUNBOOK:
        step.rollback = rollback
        return
    if rollback.command:
        existing.command = (
            f"{existing.command}\n{rollback.command}" if existing.command else rollback.command
        )
    if rollback.text and rollback.text not in existing.text:
        existing.text = f"{existing.text}\n{rollback.text}" if existing.text else rollback.text


def _check(condition: str) -> dict[str, object] | None:
    if lx.EXIT_NONZERO.search(condition):
        return {"exit_code_nonzero": True}
    if lx.EXIT_ZERO.search(condition):
        return {"exit_code": 0}
    m = _OUTPUT_CHECK.search(condition)
    if m:
        return {"output_pattern": next(g for g in m.groups() if g)}
    return None


def _negate(check: dict[str, object] | None) -> dict[str, object] | None:
    if check == {"exit_code": 0}:
        return {"exit_code_nonzero": True}
    if check == {"exit_code_nonzero": True}:
        return {"exit_code": 0}
    return None


def _maybe_ja_cond(text: str) -> bool:
    return ("場合" in text or text.startswith("もし")) and lx.JA_COND.match(text) is not None


def _mask_code(text: str) -> str:
    """Same length, with code spans blanked so separators inside them are ignored."""
    if "`" not in text:
        return text
    return _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), text)


def _slug(text: str) -> str:
    return _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")


def _head(item: ListItem) -> Inline | None:
    first = item.body[0] if item.body else None
    return first.inline if isinstance(first, Paragraph) else None


def _item_text(item: ListItem, depth: int = 0) -> str:
    parts: list[str] = []
    for node in item.body:
        if isinstance(node, Paragraph):
            parts.append(node.inline.render())
    text = " ".join(p for p in parts if p)
    for node in item.body:
        if isinstance(node, ListBlock):
            for child in node.items:
                text += "\n" + "  " * (depth + 1) + "- " + _item_text(child, depth + 1)
    return text.strip()


def _link_only(inline: Inline) -> bool:
    """A table-of-contents style item: nothing but link text."""
    return any(s.href is not None for s in inline.segs) and all(
        s.href is not None or not s.value.strip() for s in inline.segs
    )


def _code_only(inline: Inline) -> bool:
    return all(s.kind == "code" or not s.value.strip(" .:;,") for s in inline.segs)


def _intro_text(inline: Inline) -> str:
    text = inline.render()
    if len(text) <= _INTRO_LIMIT:
        return text
    sentences = split_sentences(inline.segs)
    return sentences[-1].text if sentences else text[-_INTRO_LIMIT:]


def _has_command(item: ListItem, deep: bool) -> bool:
    for node in item.body:
        if isinstance(node, Paragraph):
            if any(s.commands for s in split_sentences(node.inline.segs)):
                return True
        elif isinstance(node, CodeBlock):
            if block_kind(node.info, node.lines) == "command":
                return True
        elif (
            isinstance(node, ListBlock)
            and deep
            and any(_has_command(child, deep) for child in node.items)
        ):
            return True
    return False


def _context_blocks(nodes: Sequence[Node]) -> str:
    extra = ""
    for node in nodes:
        if isinstance(node, CodeBlock) and block_kind(node.info, node.lines) == "context":
            body = "\n".join(node.lines)
            if len(body) > _CONTEXT_CODE_LIMIT:
                body = body[:_CONTEXT_CODE_LIMIT] + "\n…"
            fence = "````" if "```" in body else "```"
            extra += f"\n{fence}{node.info}\n{body}\n{fence}"
    return extra


def _node_end(node: Node) -> int:
    if isinstance(node, Paragraph):
        return node.inline.end
    if isinstance(node, Heading):
        return node.inline.end
    if isinstance(node, CodeBlock):
        return node.start + max(0, len(node.lines) - 1) + (1 if node.fenced else 0)
    if isinstance(node, ListBlock):
        return max((i.end for i in node.items), default=0)
    if isinstance(node, Table):
        return max((r.line for r in node.rows), default=0)
    return 0


def _after_commands(s: Sentence) -> str:
    """The words after a sentence's last command ("… `cmd` — this wipes the queue")."""
    if not s.commands:
        return s.text
    tail = s.text.rsplit(s.commands[-1].text, 1)[-1]
    return tail.lstrip("` ")


def _split_paragraphs(nodes: list[Node]) -> list[Node]:
    """Paragraphs of pasted text cut where a new one plainly starts: a chat message's speaker
    line (dropped), a run-in section name, a sentence that ends its line and a capital that
    opens the next. Copied pages and chat exports rarely have blank lines between those."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, ListBlock):
            for item in node.items:
                item.body = _split_paragraphs(item.body)
        if not isinstance(node, Paragraph) or node.inline.start == node.inline.end:
            out.append(node)
            continue
        lines: list[list[Seg]] = []
        for seg in node.inline.segs:
            if not lines or seg.line != lines[-1][0].line:
                lines.append([seg])
            else:
                lines[-1].append(seg)
        parts: list[list[list[Seg]]] = [[]]
        titles: set[int] = set()  # indexes of parts that are a title line
        previous = ""
        for k, segs in enumerate(lines):
            text = render_segs(segs)
            if lx.CHAT_NOISE.match(text):
                if parts[-1]:
                    parts.append([])
                previous = ""
                continue
            raw = "".join(s.value for s in segs)
            last = k == len(lines) - 1
            if len(lines) > 1 and not last and "\t" not in raw and _title_line(segs, text):
                # "Reset offsets" on a line of its own in a pasted page: a heading.
                if parts[-1]:
                    parts.append([])
                titles.add(len(parts) - 1)
                parts[-1].append(segs)
                parts.append([])
                previous = ""
                continue
            run_in = lx.RUN_IN_HEADING.match(raw.lstrip())
            if parts[-1] and (
                (run_in is not None and run_in.group("head")[:1].isupper() and raw.count("\t") < 2)
                or (previous.endswith((".", "!", "?")) and text[:1].isupper())
            ):
                parts.append([])
            parts[-1].append(segs)
            previous = text
        for k, part in enumerate(parts):
            segs = [seg for line in part for seg in line]
            if not segs:
                continue
            inline = Inline(segs, segs[0].line, segs[-1].line)
            out.append(Heading(3, inline) if k in titles else Paragraph(inline))
    return out


_TITLE_WORDS = 5


def _title_line(segs: list[Seg], text: str) -> bool:
    """A short line that names what follows: capitalised, no full stop, no command."""
    words = text.split()
    return (
        0 < len(words) <= _TITLE_WORDS
        and text[:1].isupper()
        and not text.endswith((".", ",", ";", "!", "?", ":"))
        and all(seg.kind == "text" for seg in segs)
        and not lx.CHAT_NOISE.match(text)
        and not lx.COND_START.match(text)
        and (len(words) <= 2 or not lx.is_imperative(text))
    )
