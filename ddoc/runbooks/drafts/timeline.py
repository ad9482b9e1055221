"""A postmortem's structure: its sections (timeline, what we did, follow-ups, the rest) and
the entries of the ones that give steps, each with its time, read from markdown, plain text or
HTML converted to markdown (list items, lines, table rows). What the entries say is
`postmortem.py`'s business (and `wording.py`'s)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ddoc.runbooks.drafts.wording import (
    EVENT_HEADER,
    LEADING_TIME,
    TIME_HEADER,
    TIMES_REMARK,
    WHO_HEADER,
    WHOLE_TIME,
    is_action,
)
from ddoc.runbooks.parsing.commands import block_kind, extract_commands
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    Node,
    Paragraph,
    Seg,
    Table,
    render_segs,
)

# --- sections ------------------------------------------------------------------------------
TIMELINE, RESPONSE, NOTES, OTHER = "timeline", "response", "notes", "other"
_SECTIONS: list[tuple[str, re.Pattern[str]]] = [
    (
        NOTES,
        re.compile(
            r"(?:action items?|follow[- ]?ups?(?: actions| items)?|follow up|next steps|to-?dos?"
            r"|lessons? learn(?:ed|t)|learnings|corrective(?: and prevent(?:iv|at)e)? actions"
            r"|prevent(?:iv|at)e (?:actions|measures)|prevention|remediation items"
            r"|what we(?:'ll| will) do(?: next)?)",
            re.I,
        ),
    ),
    (
        TIMELINE,
        re.compile(
            r"(?:(?:detailed|incident|full|response) )?(?:timeline|chronology)(?: of events)?"
            r"|sequence of events|(?:incident )?events",
            re.I,
        ),
    ),
    (
        RESPONSE,
        re.compile(
            r"(?:what (?:we|was) did|what was done|actions? (?:we )?taken|actions we took"
            r"|steps taken|(?:incident )?response|mitigations?(?: steps)?|resolution"
            r"|remediation|recovery|how (?:it|this) was (?:fixed|resolved|mitigated)"
            r"|how we (?:fixed|resolved|mitigated) it|(?:the )?fix|workaround|immediate actions)",
            re.I,
        ),
    ),
    (
        OTHER,
        re.compile(
            r"(?:executive )?summary|tl;?dr|overview|description|background|context|(?:customer |"
            r"business )?impact|root causes?(?: analysis)?|rca|contributing factors|triggers?"
            r"|detection|what went (?:well|wrong|badly)|where we got lucky|analysis|(?:5|five) whys"
            r"|participants|people involved|appendix|references|supporting information|glossary"
            r"|incident details|details|metadata|status",
            re.I,
        ),
    ),
]
_HEADING_NOISE = re.compile(r"^[\W_]*(?:\d+(?:\.\d+)*[.)]?\s+)?|[\s:.\uff1a]+$")
_TRAILER = re.compile(r"\s*(?:\([^()]*\)|[-\u2013\u2014:]\s*.*)$")  # "(all times UTC)", ": UTC"
_LINE_HEADING_WORDS = 6


def section_of(heading: str, *, whole: bool) -> str | None:
    """The kind of section a heading names. A real heading may say more after the name
    ("Mitigation steps", "Timeline and response"); a line of prose (``whole``) must be the name
    and nothing else (a parenthesis or a colon aside)."""
    text = _HEADING_NOISE.sub("", heading.replace("`", "").replace("*", "")).strip()
    if not text or len(text) > 80:
        return None
    bare = _TRAILER.sub("", text).strip() or text
    for kind, pattern in _SECTIONS:
        if pattern.fullmatch(bare) or (not whole and pattern.match(text)):
            return kind
    return None


# --- entries -------------------------------------------------------------------------------
@dataclass
class Entry:
    segs: list[Seg]
    section: str  # TIMELINE | RESPONSE
    section_id: int
    at: str | None = None  # a table's time cell
    heading_at: str | None = None  # the time heading it is under, unless it has a time
    blocks: list[CodeBlock] = field(default_factory=list)


class Reader:
    """One walk over the document's nodes: sections, entries, notes, the title's candidates."""

    def __init__(self, trust_bare: bool) -> None:
        self.trust_bare = trust_bare  # HTML: a command found in prose is the page's text
        self.section: str | None = None
        self.section_level = 0
        self.section_id = 0
        self.sections: list[str] = []
        self.entries: list[Entry] = []
        self.loose: list[Entry] = []  # time-stamped entries outside any known section
        self.notes: list[str] = []
        self.last: Entry | None = None
        self.heading_at: str | None = None  # a time heading in the timeline
        self.h1: str | None = None
        self.lines: list[str] = []  # the first lines, for a title

    def walk(self, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Heading):
                text = node.inline.render().replace("`", "").strip()
                if len(self.lines) < 12 and text:
                    self.lines.append(text)
                if node.level == 1 and self.h1 is None and text:
                    self.h1 = text
                self.heading(text, node.level)
            elif isinstance(node, Paragraph):
                self.paragraph(node.inline)
            elif isinstance(node, ListBlock):
                self.list_block(node)
            elif isinstance(node, Table):
                self.table(node)
            elif isinstance(node, CodeBlock):
                self.code(node)

    def heading(self, text: str, level: int, *, whole: bool = False) -> None:
        if not text:
            return  # the plain-text reader closes a "Label:" section with an empty heading
        kind = section_of(text, whole=whole)
        steps = self.section in (TIMELINE, RESPONSE)
        deeper = steps and level > self.section_level
        self.last = None
        self.heading_at = None
        if kind == OTHER and deeper:
            kind = None  # "### Detection" inside the timeline is a part of it
        if kind is not None:
            self.section, self.section_level = kind, level
            self.section_id += 1
            self.sections.append(kind)
        elif deeper:
            if WHOLE_TIME.match(text) and any(ch.isdigit() for ch in text):
                self.heading_at = text  # "### 14:02", the entries under it were then
        elif self.section is None or level <= self.section_level:
            self.section, self.section_level = None, level

    def paragraph(self, inline: Inline) -> None:
        for segs in _lines(inline.segs):
            text = render_segs(segs)
            if len(self.lines) < 12 and text:
                self.lines.append(text)
            words = len(text.split())
            if 0 < words <= _LINE_HEADING_WORDS and section_of(text, whole=True):
                self.heading(text, self.section_level or 2, whole=True)
                continue
            if self.section == NOTES:
                self.note(segs, continued=self._continues(segs))
            elif self.section in (TIMELINE, RESPONSE):
                if TIMES_REMARK.match(text):
                    continue
                if self.last is not None and self._continues(segs):
                    self.last.segs += [Seg("text", " ", segs[0].line), *segs]
                else:
                    self.add(segs)
            elif self.section is None and LEADING_TIME.match(text):
                self.loose.append(self._entry(segs))

    def _continues(self, segs: list[Seg]) -> bool:
        """Does this line go on with the entry above (a sentence wrapped onto it)?"""
        previous = render_segs(self.last.segs) if self.last is not None else ""
        if self.section == NOTES:
            previous = self.notes[-1] if self.notes else ""
        text = render_segs(segs)
        if not previous or LEADING_TIME.match(text) or previous.endswith((".", "!", "?")):
            return False
        if text[:1].isupper():
            return previous.endswith((",", ":", "(", "-", "\u2013", "\u2014", " and", " or"))
        return True  # a lower-case word or a command goes on with the sentence

    def list_block(self, block: ListBlock) -> None:
        for item in block.items:
            segs: list[Seg] = []
            started = False
            for node in item.body:
                if isinstance(node, Paragraph) and not started:
                    if segs:
                        segs.append(Seg("text", " ", node.inline.start))
                    segs += node.inline.segs
                    continue
                if not started:
                    self.item(segs)
                    started = True
                self.walk([node])
            if not started:
                self.item(segs)

    def item(self, segs: list[Seg]) -> None:
        if self.section == NOTES:
            self.note(segs, continued=False)
            return
        parts = _split_at_times(segs)
        for part in parts:
            if self.section in (TIMELINE, RESPONSE):
                self.add(part)
            elif self.section is None and LEADING_TIME.match(render_segs(part)):
                self.loose.append(self._entry(part))
                self.last = None

    def table(self, table: Table) -> None:
        rows = [row for row in table.rows if any(c.segs for c in row.cells)]
        if not rows:
            return
        header = rows[0]
        names = [c.render() for c in header.cells]
        has_header = header.header and not WHOLE_TIME.match(names[0] if names else "")
        body = rows[1:] if has_header else rows
        if self.section == NOTES:
            for row in body:
                cells = [c.render() for c in row.cells if c.render()]
                if cells:
                    self.notes.append(" \u2014 ".join(cells))
            return
        time_col = _time_column(names if has_header else [], [r.cells for r in body])
        event_cols = [
            k
            for k, name in enumerate(names)
            if k != time_col and has_header and EVENT_HEADER.search(name)
        ] or [
            k
            for k in range(len(names))
            if k != time_col and not (has_header and WHO_HEADER.search(names[k]))
        ]
        for row in body:
            segs: list[Seg] = []
            for k in event_cols:
                if k < len(row.cells) and row.cells[k].segs:
                    if segs:
                        segs.append(Seg("text", " ", row.line))
                    segs += row.cells[k].segs
            at = row.cells[time_col].render().strip() if time_col is not None else None
            if not segs:
                continue
            entry = self._entry(segs)
            entry.at = at or None
            if self.section in (TIMELINE, RESPONSE):
                self.entries.append(entry)
                self.last = entry
            elif self.section is None and at and WHOLE_TIME.match(at):
                self.loose.append(entry)

    def code(self, block: CodeBlock) -> None:
        if self.section in (TIMELINE, RESPONSE):
            if self.last is None:
                self.add([])
            assert self.last is not None
            self.last.blocks.append(block)
        elif self.section == NOTES and self.notes:
            kind = block_kind(block.info, block.lines, self.notes[-1])
            if kind == "command":
                commands = extract_commands(block.info, block.lines, block.start)
                self.notes[-1] += "".join(f" `{c.text}`" for c in commands if "\n" not in c.text)

    def note(self, segs: list[Seg], *, continued: bool) -> None:
        text = re.sub(r"^\[[ xX]?\]\s*", "", render_segs(segs)).strip()
        if not text:
            return
        if continued and self.notes:
            self.notes[-1] += " " + text
        else:
            self.notes.append(text)

    def add(self, segs: list[Seg]) -> None:
        last = self.last
        # a command block, then the words for it: "Rolled back with the command above."
        if (
            last is not None
            and last.blocks
            and not last.segs
            and segs
            and not any(s.kind == "code" for s in segs)
            and is_action(render_segs(segs))
        ):
            last.segs = self._entry(segs).segs
            self.last = None  # the words close it: a block after them is another's
            return
        entry = self._entry(segs)
        self.entries.append(entry)
        self.last = entry

    def _entry(self, segs: list[Seg]) -> Entry:
        if self.trust_bare:
            segs = [Seg(s.kind, s.value, s.line, True, s.href, s.bare) for s in segs]
        section = self.section if self.section in (TIMELINE, RESPONSE) else TIMELINE
        return Entry(list(segs), section, self.section_id, heading_at=self.heading_at)


def _lines(segs: list[Seg]) -> list[list[Seg]]:
    lines: list[list[Seg]] = []
    for seg in segs:
        if not lines or seg.line != lines[-1][0].line:
            if seg.kind == "text" and not seg.value.strip():
                continue  # the space a line break leaves
            lines.append([seg])
        else:
            lines[-1].append(seg)
    return lines


def _split_at_times(segs: list[Seg]) -> list[list[Seg]]:
    """A list item that runs several time-stamped lines together: one entry per line."""
    lines = _lines(segs)
    if len(lines) < 2 or not all(LEADING_TIME.match(render_segs(line)) for line in lines):
        return [segs]
    return lines


def _time_column(names: list[str], rows: list[list[Inline]]) -> int | None:
    for k, name in enumerate(names):
        if TIME_HEADER.search(name):
            return k
    if rows and rows[0]:
        width = min(len(r) for r in rows)
        for k in range(width):
            cells = [r[k].render() for r in rows if r[k].segs]
            if cells and all(WHOLE_TIME.match(c) and any(ch.isdigit() for ch in c) for c in cells):
                return k
    return None
