"""Pasted text cut into the paragraphs and headings it plainly has, before the walk.

``split_paragraphs`` cuts paragraphs at chat speaker lines, title lines, run-in section names
and sentence ends; ``split_run_in_heading`` separates a run-in section name from the
paragraph it opens.
"""

from __future__ import annotations

from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.nodes import (
    Heading,
    Inline,
    ListBlock,
    Node,
    Paragraph,
    Seg,
    render_segs,
)

_TITLE_WORDS = 5


def split_paragraphs(nodes: list[Node]) -> list[Node]:
    """Paragraphs of pasted text cut where a new one plainly starts: a chat message's speaker
    line (dropped), a run-in section name, a sentence that ends its line and a capital that
    opens the next. Copied pages and chat exports rarely have blank lines between those."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, ListBlock):
            for item in node.items:
                item.body = split_paragraphs(item.body)
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


def split_run_in_heading(inline: Inline) -> tuple[Heading, Inline] | None:
    """ "Diagnosis  Start by checking …": the section name as a heading of its own, and the
    rest of the paragraph; None when the paragraph does not open with a section name."""
    lead = 0
    while lead < len(inline.segs) - 1 and not inline.segs[lead].value.strip():
        lead += 1
    first = inline.segs[lead] if inline.segs else None
    if first is None or first.kind != "text" or first.href is not None:
        return None
    m = lx.RUN_IN_HEADING.match(first.value.lstrip())
    if m is None or lx.section_role(m.group("head")) is None or first.value.count("\t") > 1:
        return None  # "Symptom<tab>Command<tab>Notes" is a table's header row
    head = Inline([Seg("text", m.group("head"), first.line)], first.line, first.line)
    rest = Seg("text", first.value.lstrip()[m.end() :], first.line)
    return Heading(2, head), Inline([rest, *inline.segs[lead + 1 :]], inline.start, inline.end)
