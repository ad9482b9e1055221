"""Plain-text reader: numbered procedures, ``$`` prompt lines, indented command blocks.

Recognises ``1.``/``1)``/``Step 1:`` items, bullets, underlined / ALL-CAPS / ``Label:``
section titles, prompt transcripts, indented blocks and ``Run: <command>`` lines, and
produces the same node tree as the markdown reader.
"""

from __future__ import annotations

import re

from ddoc.runbooks.parsing.bare import Vocabulary, split_prose
from ddoc.runbooks.parsing.commands import (
    _SHELL_PROMPT,
    is_command_line,
    is_inline_command,
)
from ddoc.runbooks.parsing.lexicon import section_role
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    ListItem,
    Node,
    Paragraph,
    Seg,
)

_NUMBERED = re.compile(
    r"^(?P<indent>\s*)(?:step\s+)?(?P<num>\d{1,3})\s*[.):]\s+(?P<text>\S.*)$", re.I
)
_BULLET = re.compile(r"^(?P<indent>\s*)[-*•+]\s+(?P<text>\S.*)$")
_UNDERLINE = re.compile(r"^\s*(?:={3,}|-{3,})\s*$")
_HASH_HEADING = re.compile(r"^(#{1,6})\s+(\S.*?)\s*#*\s*$")
_LABEL_HEADING = re.compile(r"^[^\W\d_][\w /&'()-]{0,50}:$")
_CAPS_HEADING = re.compile(r"^[A-Z][A-Z0-9 /&'()-]{2,60}$")
_BACKTICK = re.compile(r"(`+)(.+?)\1")
_RUN_LABEL = re.compile(
    r"^(?P<lead>.*?\b(?:run|execute|exec|command|cmd)\s*:\s*)(?P<cmd>\S.*?)\s*$", re.I
)


def read_text(text: str, vocab: Vocabulary | None = None) -> list[Node]:
    return _TextReader(text.split("\n"), vocab).read()


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


class _TextReader:
    def __init__(self, lines: list[str], vocab: Vocabulary | None) -> None:
        self.lines = lines
        self.vocab = vocab
        self.n = len(lines)
        self.list_counter = 0

    def read(self) -> list[Node]:
        nodes: list[Node] = []
        i = 0
        lines = self.lines
        current: ListBlock | None = None
        scoped = False
        while i < self.n:
            line = lines[i]
            s = line.strip()
            if not s:
                i += 1
                continue
            if scoped and nodes and i > 0 and not lines[i - 1].strip():
                # A "Label:" title governs only the block right under it.
                nodes.append(Heading(2, Inline(segs=[], start=i + 1, end=i + 1)))
                scoped = False
            heading = self.heading(i)
            if heading is not None:
                node, i = heading
                nodes.append(node)
                scoped = _LABEL_HEADING.match(s) is not None
                current = None
                continue
            item = _NUMBERED.match(line) or _BULLET.match(line)
            if item is not None:
                ordered = item.re is _NUMBERED
                if current is None or current.ordered != ordered:
                    self.list_counter += 1
                    current = ListBlock(ordered=ordered, items=[], list_id=self.list_counter)
                    nodes.append(current)
                li, i = self.item(i, item, ordered, len(current.items) + 1)
                current.items.append(li)
                continue
            current = None
            if _SHELL_PROMPT.match(line) or _indent(line) >= 4:
                block, i = self.code(i, _indent(line) if not _SHELL_PROMPT.match(line) else 0)
                nodes.append(block)
                continue
            para, i = self.paragraph(i)
            nodes.append(para)
        return nodes

    def heading(self, i: int) -> tuple[Heading, int] | None:
        line = self.lines[i]
        s = line.strip()
        nxt = self.lines[i + 1] if i + 1 < self.n else ""
        if _UNDERLINE.match(nxt) and not _NUMBERED.match(line) and not _BULLET.match(line):
            level = 1 if nxt.strip().startswith("=") else 2
            return Heading(level, _inline(s, i + 1, i + 1)), i + 2
        m = _HASH_HEADING.match(s)
        if m:
            return Heading(len(m.group(1)), _inline(m.group(2), i + 1, i + 1)), i + 1
        if _indent(line) == 0 and (
            (_LABEL_HEADING.match(s) and section_role(s.rstrip(":")) is not None)
            or (_CAPS_HEADING.match(s) and sum(c.isalpha() for c in s) >= 3)
        ):
            return Heading(2, _inline(s.rstrip(":"), i + 1, i + 1)), i + 1
        return None

    def item(self, i: int, m: re.Match[str], ordered: bool, position: int) -> tuple[ListItem, int]:
        base = _indent(self.lines[i])
        text_col = base + (m.start("text") - len(m.group("indent")))
        segs = self._segs(m.group("text"), i + 1)
        body: list[Node] = []
        text_lines: list[Seg] = segs
        start = i + 1
        end = i + 1
        i += 1
        while i < self.n:
            line = self.lines[i]
            if not line.strip():
                # A blank line ends the item unless indented content follows.
                j = i + 1
                while j < self.n and not self.lines[j].strip():
                    j += 1
                if (
                    j < self.n
                    and _indent(self.lines[j]) > base
                    and not (_NUMBERED.match(self.lines[j]) or _BULLET.match(self.lines[j]))
                ) or (j < self.n and _indent(self.lines[j]) >= text_col + 2):
                    i = j
                    continue
                break
            ind = _indent(line)
            if ind <= base and (_NUMBERED.match(line) or _BULLET.match(line)):
                break
            if ind <= base and self.heading(i) is not None:
                break
            if ind <= base and not line.strip().startswith("$"):
                break
            stripped = line.strip()
            if _SHELL_PROMPT.match(stripped) or (
                is_command_line(stripped) if ind >= text_col + 2 else is_inline_command(stripped)
            ):
                block, i = self.code(i, ind, stop_below=ind)
                body.append(block)
                end = i
                continue
            text_lines.append(Seg("text", " ", i + 1))
            text_lines.extend(self._segs(stripped, i + 1))
            end = i + 1
            i += 1
        head = Inline(segs=text_lines, start=start, end=end if not body else start)
        if body:
            head.end = max(s.line for s in text_lines)
        body.insert(0, Paragraph(head))
        return ListItem(ordered=ordered, number=position, start=start, end=end, body=body), i

    def code(self, i: int, indent: int, stop_below: int | None = None) -> tuple[CodeBlock, int]:
        start = i
        lines: list[str] = []
        limit = indent if stop_below is None else stop_below
        prompt_mode = bool(_SHELL_PROMPT.match(self.lines[i].strip()))
        while i < self.n:
            line = self.lines[i]
            if not line.strip():
                break
            if not prompt_mode and _indent(line) < limit:
                break
            if prompt_mode and _indent(line) < limit and not _SHELL_PROMPT.match(line.strip()):
                break
            lines.append(line)
            i += 1
        common = min((_indent(ln) for ln in lines if ln.strip()), default=0)
        trimmed = [_cut_indent(ln, common) for ln in lines]
        info = "console" if prompt_mode else ""
        return CodeBlock(info=info, lines=trimmed, start=start + 1, fenced=False), i

    def _segs(self, text: str, line: int) -> list[Seg]:
        """Prose and code segments of one line: backtick spans, bare commands, ``Run: cmd``."""
        segs = split_prose(_code_spans(text, line), self.lines, self.vocab)
        if len(segs) == 1 and segs[0].kind == "text":
            # "Run: ./deploy --check" names a program the vocabulary does not know.
            run = _RUN_LABEL.match(text)
            if run and is_command_line(run.group("cmd")):
                cmd = run.group("cmd")
                if cmd.endswith(".") and not cmd.endswith(".."):
                    cmd = cmd[:-1]
                return [Seg("text", run.group("lead"), line), Seg("code", cmd, line)]
        return segs

    def paragraph(self, i: int) -> tuple[Paragraph, int]:
        start = i
        segs: list[Seg] = []
        first_indent = _indent(self.lines[i])
        while i < self.n:
            line = self.lines[i]
            s = line.strip()
            if not s:
                break
            if i > start:
                if _NUMBERED.match(line) or _BULLET.match(line) or self.heading(i) is not None:
                    break
                if _SHELL_PROMPT.match(line) or (
                    _indent(line) >= first_indent + 4 and is_command_line(s)
                ):
                    break
                segs.append(Seg("text", " ", i + 1))
            segs.extend(self._segs(s, i + 1))
            i += 1
        return Paragraph(Inline(segs=segs, start=start + 1, end=i)), i


def _cut_indent(line: str, width: int) -> str:
    """Drop ``width`` columns of leading whitespace, keeping the rest byte-for-byte."""
    cut = 0
    col = 0
    while cut < len(line) and col < width and line[cut] in " \t":
        col = (col // 4 + 1) * 4 if line[cut] == "\t" else col + 1
        cut += 1
    return line[cut:]


def _inline(text: str, start: int, end: int) -> Inline:
    return Inline(segs=_code_spans(text, start), start=start, end=end)


def _code_spans(text: str, line: int) -> list[Seg]:
    """Prose and backtick code spans of one line."""
    if "`" not in text:
        return [Seg("text", text, line)]
    segs: list[Seg] = []
    pos = 0
    for m in _BACKTICK.finditer(text):
        if m.start() > pos:
            segs.append(Seg("text", text[pos : m.start()], line))
        segs.append(Seg("code", m.group(2), line))
        pos = m.end()
    if pos < len(text):
        segs.append(Seg("text", text[pos:], line))
    return segs
