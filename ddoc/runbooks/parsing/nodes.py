"""The format-neutral document tree that the markdown and plain-text readers produce.

It keeps only what step extraction needs: inline text split into prose and code
segments (each with its source line), code blocks with verbatim lines, lists with their
items, headings and table rows. HTML is converted to markdown first, so it ends up here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Seg:
    """A run of inline content: prose (``text``) or a code span (``code``)."""

    kind: str  # "text" | "code"
    value: str
    line: int  # 1-based line where the segment starts
    verbatim: bool = True  # code only: the content occurs as-is on that source line
    href: str | None = None  # text only: set when the text is a link's label
    bare: bool = False  # code only: found in prose (no backticks), already vetted as a command


@dataclass(slots=True)
class Inline:
    """A paragraph, heading text, list-item paragraph or table cell."""

    segs: list[Seg]
    start: int
    end: int

    def render(self) -> str:
        return render_segs(self.segs)

    @property
    def links(self) -> list[str]:
        return [s.href for s in self.segs if s.href]


@dataclass(slots=True)
class Heading:
    level: int
    inline: Inline


@dataclass(slots=True)
class Paragraph:
    inline: Inline


@dataclass(slots=True)
class CodeBlock:
    info: str  # the fence's info string (first word, lower-cased); "" when none
    lines: list[str]  # verbatim content lines, container indentation removed
    start: int  # 1-based line of the first content line
    fenced: bool = True


@dataclass(slots=True)
class ListItem:
    ordered: bool
    number: int  # display number (position-based for ordered lists; 1-based index otherwise)
    start: int
    end: int
    body: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class ListBlock:
    ordered: bool
    items: list[ListItem]
    list_id: int = 0


@dataclass(slots=True)
class TableRow:
    cells: list[Inline]
    line: int
    header: bool = False


@dataclass(slots=True)
class Table:
    rows: list[TableRow]


Node = Heading | Paragraph | CodeBlock | ListBlock | Table


def render_segs(segs: list[Seg]) -> str:
    """Readable text: prose as is, code spans in backticks, absolute link targets in parens."""
    parts: list[str] = []
    i = 0
    n = len(segs)
    while i < n:
        seg = segs[i]
        if seg.kind == "code":
            fence = "``" if "`" in seg.value else "`"
            pad = " " if seg.value.startswith("`") or seg.value.endswith("`") else ""
            parts.append(f"{fence}{pad}{seg.value}{pad}{fence}")
        elif seg.href is not None:
            href = seg.href
            label: list[str] = []
            while i < n and segs[i].href == href:
                label.append(segs[i].value)
                i += 1
            parts.append("".join(label))
            if href.startswith(("http://", "https://")) and href not in parts[-1]:
                parts.append(f" ({href})")
            continue
        else:
            parts.append(seg.value)
        i += 1
    return " ".join("".join(parts).split())
