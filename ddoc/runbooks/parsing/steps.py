"""From the document tree to steps: the walk of the interpretation layer.

Walks the nodes in document order, tracking which kind of section it is in (diagnosis,
mitigation, rollback, prerequisites, explanatory ...), and turns list items, paragraphs,
code blocks and table rows into command / manual / decision / escalate steps. Rollback
hints are attached to the steps they undo rather than becoming steps themselves.

The walk decides which node goes where by the section's role; what it hands on is in
modules of its own, all sharing one ``BuildState`` (build_state.py, which also records
steps and prerequisites): paragraphs.py cuts pasted text into paragraphs before the walk,
sentence_steps.py turns a paragraph's or item's sentences into steps, decisions.py makes
decisions and resolves their branches, rollbacks.py ties rollback instructions to steps,
risk_warnings.py lets a warning raise a step's risk, and lists.py tells what an item says.
Once every step exists, checks.py turns the read-only commands stated as checks of a change
into that change's precheck or verify.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ddoc.runbooks.model import Step, StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import FORWARD, BuildState, Classifier, Outline
from ddoc.runbooks.parsing.checks import attach_checks
from ddoc.runbooks.parsing.commands import Command, block_kind, extract_commands
from ddoc.runbooks.parsing.decisions import at_heading, intro_decision, resolve_gotos
from ddoc.runbooks.parsing.lists import (
    checklist,
    code_only,
    context_blocks,
    fenced,
    has_command,
    head,
    item_actionable,
    item_text,
    item_wants_code,
    link_only,
    node_end,
)
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    ListItem,
    Node,
    Paragraph,
    Table,
)
from ddoc.runbooks.parsing.paragraphs import split_paragraphs, split_run_in_heading
from ddoc.runbooks.parsing.risk_warnings import after_commands, apply_warning
from ddoc.runbooks.parsing.rollbacks import hint, item_hints, prose_rollback, resolve_rollbacks
from ddoc.runbooks.parsing.sentence_steps import emit_sentences, sentence_kind
from ddoc.runbooks.parsing.sentences import InlineCommand, Sentence, split_sentences

_PARAGRAPH_ROLES = frozenset({lx.INFO, lx.REFS, lx.PREREQ, lx.ROLLBACK})
_INTRO_LIMIT = 300
_TOC = re.compile(r"\btable of contents\b", re.I)


class StepBuilder:
    """One walk over a document's nodes. Keeps to itself what only the walk needs (the
    heading stack, the last heading's text, whether a summary section is open); the rest
    is ``self.state``."""

    def __init__(
        self, classify: Classifier, warnings: list[str], deadline: float | None = None
    ) -> None:
        # deadline: time.monotonic() after which parsing gives up
        self.state = BuildState(classify, warnings, deadline)
        self._headings: list[tuple[int, str, str | None]] = []
        self.heading_text = ""
        self._in_summary = False
        self._summary_done = False

    @property
    def outline(self) -> Outline:
        return self.state.outline

    # --- entry point ---------------------------------------------------------------------
    def build(self, nodes: list[Node]) -> list[Step]:
        self._blocks(split_paragraphs(nodes))
        resolve_rollbacks(self.state)
        resolve_gotos(self.state)
        attach_checks(self.state)
        return self.state.steps

    def _blocks(self, nodes: list[Node], fallback: str | None = None) -> None:
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
                if isinstance(nxt, ListBlock) and checklist(self.state, node.inline, nxt):
                    i += 2
                    continue
                self._paragraph(node.inline)
            elif isinstance(node, CodeBlock):
                self._code(node, None, fallback=fallback)
            elif isinstance(node, ListBlock):
                # "- Back up the data bag by executing" + a fence at column 0 (which ends the
                # list in CommonMark): the code belongs to that last item.
                while isinstance(nxt, CodeBlock) and item_wants_code(self.state.role, node, nxt):
                    node.items[-1].body.append(nxt)
                    i += 1
                    nxt = nodes[i + 1] if i + 1 < n else None
                self._list(node)
            elif isinstance(node, Table):
                self._table(node)
            i += 1

    # --- headings and sections -----------------------------------------------------------
    def _heading(self, node: Heading) -> None:
        st = self.state
        outline = st.outline
        text = node.inline.render().replace("`", "").strip()
        level = node.level
        st.heading_serial += 1
        if outline.first_heading is None and text:
            outline.first_heading = text
        if level == 1 and outline.h1 is None and text:
            outline.h1 = text
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        own = lx.section_role(text)
        if own == lx.ROLLBACK and level == 1 and outline.h1 == text:
            own = None  # the runbook's title names the procedure ("search-indexer rollback")
        self._headings.append((level, text, own))
        st.role = next((r for _, _, r in reversed(self._headings) if r), lx.NEUTRAL)
        self.heading_text = text
        if own == lx.ROLLBACK:
            st.section_serial += 1
        if self._summary_done or outline.summary_parts:
            self._summary_done = True
            self._in_summary = False
        else:
            self._in_summary = own == lx.INFO and bool(lx.SUMMARY_HEADINGS.match(text))
        at_heading(st, level, text, node.inline)

    # --- paragraphs ----------------------------------------------------------------------
    def _paragraph(self, inline: Inline) -> None:
        st = self.state
        before = (list(self._headings), st.role, self.heading_text)
        inline = self._run_in_heading(inline)
        if st.role != before[1] and st.role in _PARAGRAPH_ROLES:
            # A pasted page's "Background  …" or "Rollback  …" governs its own paragraph only:
            # the procedure goes on in the next one, which has no name of its own.
            self._paragraph_body(inline)
            self._headings, st.role, self.heading_text = before
            return
        self._paragraph_body(inline)

    def _paragraph_body(self, inline: Inline) -> None:
        st = self.state
        role = st.role
        text = inline.render()
        if not text:
            return
        if role == lx.REFS:
            return
        sentences = split_sentences(inline.segs)
        if role == lx.INFO:
            if self._in_summary:
                st.outline.summary_parts.append(text)
            if st.outline.first_paragraph is None and not _TOC.search(text):
                st.outline.first_paragraph = text
            for s in sentences:
                if lx.PREREQ_SENTENCE.search(s.text) and not s.commands:
                    st.prereq(s.text, s.start, s.end)
            return
        if role == lx.PREREQ:
            st.prereq(text, inline.start, inline.end)
            return
        if role == lx.ROLLBACK:
            commands = [c.text for s in sentences for c in s.commands]
            hint(st, text, commands, inline.start)
            return
        st.unit += 1
        before = (len(st.steps), len(st.outline.prerequisites))
        emitted = emit_sentences(st, sentences, manual_plain=True)
        if not emitted and self._actionable_text(sentences):
            kind = StepKind.ESCALATE if lx.ESCALATE.search(text) else StepKind.MANUAL
            st.add(kind, text, inline.start, inline.end)
        after = (len(st.steps), len(st.outline.prerequisites))
        if st.outline.first_paragraph is None and before == after:
            # Summary fallback: the first paragraph that is prose, not an instruction.
            st.outline.first_paragraph = text

    def _run_in_heading(self, inline: Inline) -> Inline:
        """ "Diagnosis  Start by checking …": the section name becomes a heading of its own."""
        split = split_run_in_heading(inline)
        if split is None:
            return inline
        heading, rest = split
        outline = self.state.outline
        title = (outline.first_heading, outline.h1)
        self._heading(heading)
        outline.first_heading, outline.h1 = title  # a section name is no title
        return rest

    def _actionable_text(self, sentences: list[Sentence]) -> bool:
        if not sentences:
            return False
        first = sentences[0].text
        if self.state.role == lx.ESCALATION:
            return True
        return lx.is_imperative(first) or bool(lx.ESCALATE.search(first))

    # --- code blocks ---------------------------------------------------------------------
    def _is_intro(self, inline: Inline, code: CodeBlock) -> bool:
        if self.state.role in (lx.INFO, lx.REFS):
            return False
        sentences = split_sentences(inline.segs)
        if any(s.commands for s in sentences):
            return False
        text = inline.render()
        return block_kind(code.info, code.lines, text) != "none"

    def _code(self, code: CodeBlock, intro: Inline | None, fallback: str | None = None) -> None:
        st = self.state
        role = st.role
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
            if intro is not None and role in FORWARD and lx.is_imperative(intro_text):
                note = " ".join(ln.strip().lstrip("#-/ ") for ln in code.lines if ln.strip())
                text = f"{intro_text} ({note})" if note else intro_text
                st.add(StepKind.MANUAL, text, start, end)
            return
        text = intro_text or fallback or ""
        if role == lx.PREREQ:
            for c in commands:
                st.prereq(f"{text} `{c.text}`".strip() if text else f"`{c.text}`", start, c.end)
            return
        if role == lx.ROLLBACK:
            hint(st, text, [c.text for c in commands], start)
            return
        if intro is not None and lx.is_rollback_sentence(intro_text):
            prose_rollback(st, intro_text, "\n".join(c.text for c in commands), start)
            return
        st.unit += 1
        if intro is not None and intro_decision(st, intro, intro_text, commands):
            return
        for c in commands:
            st.add(
                StepKind.COMMAND,
                c.title or text or self.heading_text,
                c.start,
                c.end,
                c.text,
                c.language,
            )

    def _context_code(
        self, code: CodeBlock, intro: Inline | None, intro_text: str, start: int, end: int
    ) -> None:
        """Config or code to apply by hand: part of a manual step, never a command."""
        if intro is None:
            return
        if self.state.role not in FORWARD or not lx.is_imperative(intro_text):
            self._paragraph(intro)
            return
        self.state.add(StepKind.MANUAL, f"{intro_text}\n{fenced(code)}", start, end)

    # --- lists ---------------------------------------------------------------------------
    def _list(self, lst: ListBlock) -> None:
        if lst.ordered:
            self.state.list_id = lst.list_id
        for item in lst.items:
            self._item(item, lst)

    def _item(self, item: ListItem, lst: ListBlock, context: str | None = None) -> None:
        st = self.state
        st.item_index.setdefault((lst.list_id, item.number), len(st.steps))
        role = st.role
        if role in (lx.REFS, lx.INFO):
            if role == lx.INFO:
                first = head(item)
                if first is not None:
                    for s in split_sentences(first.segs):
                        if lx.PREREQ_SENTENCE.search(s.text) and not s.commands:
                            st.prereq(s.text, s.start, s.end)
            return
        if role == lx.PREREQ:
            st.prereq(item_text(item), item.start, item.end)
            return
        if role == lx.ROLLBACK:
            item_hints(st, item)
            return
        st.unit += 1
        first = head(item)
        reference = (
            first is None or link_only(first) or bool(lx.REFERENCE_ONLY.match(first.render()))
        )
        # Actionable on its own account, not just because a nested item holds a command.
        actionable = not reference and (
            lst.ordered
            or role == lx.ESCALATION
            or has_command(item, deep=False)
            or item_actionable(item, deep=False)
        )
        sublists = [n for n in item.body if isinstance(n, ListBlock)]
        folded: list[ListItem] = []
        standalone: list[tuple[ListItem, ListBlock]] = []
        for sub in sublists:
            for child in sub.items:
                if (
                    actionable
                    and not has_command(child, deep=True)
                    and not (self._child_special(child))
                ):
                    folded.append(child)
                else:
                    standalone.append((child, sub))
        own = [n for n in item.body if not isinstance(n, ListBlock)]
        head_text = first.render() if first is not None else ""
        if context and first is not None and code_only(first):
            head_text = f"{context} {head_text}"
        text = "\n".join([head_text] + [f"- {item_text(c)}" for c in folded]).strip()
        end = max([node_end(n) for n in own] + [c.end for c in folded] + [item.start])

        paragraphs = [n for n in own if isinstance(n, Paragraph)]
        sentence_lists = [split_sentences(p.inline.segs) for p in paragraphs]
        kinds = [sentence_kind(st, s) for ss in sentence_lists for s in ss]
        inline_cmds = [c for ss in sentence_lists for s in ss for c in s.commands]
        code_cmds: list[Command] = []
        for n in own:
            if isinstance(n, CodeBlock) and block_kind(n.info, n.lines, text) == "command":
                code_cmds.extend(extract_commands(n.info, n.lines, n.start))
        special = any(k in ("rollback", "otherwise", "decision") for k in kinds)

        if not special and len(inline_cmds) + len(code_cmds) == 1:
            if inline_cmds:
                only = inline_cmds[0]
                st.add(StepKind.COMMAND, text, item.start, end, only.text, only.language)
            else:
                cc = code_cmds[0]
                st.add(StepKind.COMMAND, text, item.start, end, cc.text, cc.language)
            for s in (s for ss in sentence_lists for s in ss):
                if lx.warns_destructive(after_commands(s)):
                    apply_warning(st, s)
        elif not special and not inline_cmds and not code_cmds:
            if actionable:
                prereq_only = (
                    kinds
                    and all(k in ("prereq", "plain") for k in kinds)
                    and (kinds[0] == "prereq")
                )
                if prereq_only:
                    st.prereq(text, item.start, end)
                else:
                    extra = context_blocks(own)
                    kind = StepKind.ESCALATE if lx.ESCALATE.search(head_text) else StepKind.MANUAL
                    st.add(kind, text + extra, item.start, end)
        else:
            self._item_parts(own, head_text)
        for child, sub in standalone:
            if sub.ordered:
                st.list_id = sub.list_id
            self._item(child, sub, context=None if actionable or reference else head_text)
        if lst.ordered:
            st.list_id = lst.list_id

    def _child_special(self, child: ListItem) -> bool:
        first = head(child)
        if first is None:
            return False
        sentences = split_sentences(first.segs)
        return any(
            sentence_kind(self.state, s) in ("decision", "escalate", "rollback") for s in sentences
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
                emit_sentences(self.state, split_sentences(node.inline.segs), manual_plain=False)
            elif isinstance(node, CodeBlock):
                self._code(node, None, fallback=head_text)
            elif isinstance(node, Table):
                self._table(node)
            i += 1

    # --- tables --------------------------------------------------------------------------
    def _table(self, table: Table) -> None:
        st = self.state
        role = st.role
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
                hint(st, text, [c.text for c in commands], row.line)
                continue
            st.unit += 1
            for c in commands:
                st.add(StepKind.COMMAND, text, row.line, row.line, c.text, c.language)


def _intro_text(inline: Inline) -> str:
    """The text of a code block's intro as a step shows it: the last sentence of a long one."""
    text = inline.render()
    if len(text) <= _INTRO_LIMIT:
        return text
    sentences = split_sentences(inline.segs)
    return sentences[-1].text if sentences else text[-_INTRO_LIMIT:]
