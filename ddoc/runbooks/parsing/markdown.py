"""Markdown reader: markdown-it-py's token stream turned into the ``nodes`` tree.

Line numbers come from each token's ``.map``; code-block lines are re-read from the
source so commands stay byte-for-byte as written (markdown-it normalises tabs inside
containers).
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from ddoc.runbooks.parsing.bare import Vocabulary, split_prose
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
    TableRow,
)

# One shared instance: building the rule chains is the expensive part, parsing is reentrant.
_MD = MarkdownIt("commonmark", {"maxNesting": 40}).enable("table").enable("strikethrough")


def read_markdown(text: str, vocab: Vocabulary | None = None) -> list[Node]:
    tokens = _MD.parse(text)
    reader = _Reader(tokens, text.split("\n"), vocab)
    nodes, _ = reader.blocks(0, None)
    return nodes


class _Reader:
    def __init__(self, tokens: list[Any], lines: list[str], vocab: Vocabulary | None) -> None:
        self.tokens = tokens
        self.lines = lines
        self.vocab = vocab
        self.list_counter = 0

    def blocks(self, i: int, until: str | None) -> tuple[list[Node], int]:
        """Read block tokens from ``i`` up to the closing token type ``until``."""
        tokens = self.tokens
        out: list[Node] = []
        n = len(tokens)
        while i < n:
            tok = tokens[i]
            ttype = tok.type
            if ttype == until:
                return out, i + 1
            if ttype == "heading_open":
                out.append(Heading(int(tok.tag[1:]), self.inline(tokens[i + 1])))
                i += 3
            elif ttype == "paragraph_open":
                out.append(Paragraph(self.inline(tokens[i + 1])))
                i += 3
            elif ttype == "fence" or ttype == "code_block":
                code = self.code(tok)
                if code is not None:
                    out.append(code)
                i += 1
            elif ttype == "bullet_list_open" or ttype == "ordered_list_open":
                block, i = self.list_block(i)
                out.append(block)
            elif ttype == "blockquote_open":
                inner, i = self.blocks(i + 1, "blockquote_close")
                out.extend(inner)
            elif ttype == "table_open":
                table, i = self.table(i + 1)
                out.append(table)
            else:
                # hr, html_block and anything unexpected: nothing to extract.
                i += 1
        return out, i

    def list_block(self, i: int) -> tuple[ListBlock, int]:
        open_tok = self.tokens[i]
        ordered = open_tok.type == "ordered_list_open"
        close = "ordered_list_close" if ordered else "bullet_list_close"
        start = 1
        if ordered:
            raw = open_tok.attrGet("start")
            start = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else 1
        self.list_counter += 1
        block = ListBlock(ordered=ordered, items=[], list_id=self.list_counter)
        i += 1
        tokens = self.tokens
        while i < len(tokens):
            tok = tokens[i]
            if tok.type == close:
                return block, i + 1
            if tok.type == "list_item_open":
                body, i = self.blocks(i + 1, "list_item_close")
                first, last = _span(tok.map)
                last = min(last, _content_end(body, last))
                block.items.append(
                    ListItem(
                        ordered=ordered,
                        number=start + len(block.items),
                        start=first,
                        end=max(first, last),
                        body=body,
                    )
                )
            else:
                i += 1
        return block, i

    def table(self, i: int) -> tuple[Table, int]:
        tokens = self.tokens
        rows: list[TableRow] = []
        header = False
        cells: list[Inline] = []
        row_line = 0
        while i < len(tokens):
            tok = tokens[i]
            ttype = tok.type
            if ttype == "table_close":
                return Table(rows), i + 1
            if ttype == "thead_open":
                header = True
            elif ttype == "tbody_open":
                header = False
            elif ttype == "tr_open":
                cells = []
                row_line = _span(tok.map)[0]
            elif ttype == "inline":
                cells.append(self.inline(tok))
            elif ttype == "tr_close":
                rows.append(TableRow(cells=cells, line=row_line, header=header))
            i += 1
        return Table(rows), i

    def code(self, tok: Any) -> CodeBlock | None:
        first, last = _span(tok.map)
        content: str = tok.content
        lines = content.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        fenced = tok.type == "fence"
        start = first + 1 if fenced else first
        # Re-anchor each line on the source: keep it only where it is the tail of that line.
        src = self.lines
        fixed: list[str] = []
        for k, line in enumerate(lines):
            idx = start - 1 + k
            src_line = src[idx] if 0 <= idx < len(src) else ""
            if not src_line.endswith(line):
                stripped = src_line.lstrip()
                line = stripped if stripped.strip() == line.strip() else line.strip()
                if not src_line.endswith(line):
                    line = ""
            fixed.append(line)
        info = tok.info.strip().split(maxsplit=1)[0].lower() if fenced and tok.info.strip() else ""
        info = info.strip("{}.")
        del last
        return CodeBlock(info=info, lines=fixed, start=start, fenced=fenced)

    def inline(self, tok: Any) -> Inline:
        first, last = _span(tok.map)
        line = first
        segs: list[Seg] = []
        href: str | None = None
        src = self.lines
        for child in tok.children or ():
            ctype = child.type
            if ctype == "text" or ctype == "text_special" or ctype == "html_inline":
                value = child.content
                if ctype == "html_inline" and value.lower().startswith(("<br", "</br")):
                    value = " "
                last_seg = segs[-1] if segs else None
                if (
                    last_seg is not None
                    and last_seg.kind == "text"
                    and last_seg.href == href
                    and last_seg.line == line
                ):
                    last_seg.value += value
                else:
                    segs.append(Seg("text", value, line, href=href))
            elif ctype == "code_inline":
                value = child.content
                src_line = src[line - 1] if 0 < line <= len(src) else ""
                segs.append(Seg("code", value, line, verbatim=value in src_line))
            elif ctype == "softbreak" or ctype == "hardbreak":
                if segs and segs[-1].kind == "text" and segs[-1].href == href:
                    segs[-1].value += " "
                else:
                    segs.append(Seg("text", " ", line, href=href))
                line += 1
            elif ctype == "link_open":
                raw = child.attrGet("href")
                href = str(raw) if raw is not None else ""
            elif ctype == "link_close":
                href = None
            elif ctype == "image":
                segs.append(Seg("text", child.content, line))
        segs = split_prose(segs, src, self.vocab)
        return Inline(segs=segs, start=first, end=max(first, last))


def _span(token_map: list[int] | None) -> tuple[int, int]:
    if not token_map:
        return 1, 1
    return token_map[0] + 1, max(token_map[0] + 1, token_map[1])


def _content_end(body: list[Node], default: int) -> int:
    """Last line that holds content in an item (its map also counts trailing blank lines)."""
    end = 0
    for node in body:
        if isinstance(node, Paragraph | Heading):
            end = max(end, node.inline.end)
        elif isinstance(node, CodeBlock):
            end = max(end, node.start + len(node.lines) - (0 if node.fenced else 1))
        elif isinstance(node, ListBlock):
            for item in node.items:
                end = max(end, item.end)
        elif isinstance(node, Table):
            for row in node.rows:
                end = max(end, row.line)
    return end or default
