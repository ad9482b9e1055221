"""HTML reader: Confluence storage/export pages (and plain HTML) converted to markdown.

The markdown is then parsed like any markdown runbook, so step spans of an HTML runbook
refer to lines of this converted text, not of the HTML. Confluence specifics handled:
``ac:structured-macro`` code/noformat blocks (CDATA bodies, ``language`` parameter),
panel-like macros with ``ac:rich-text-body``, task lists, ``ac:link`` page links and the
export format's ``syntaxhighlighter`` ``<pre>`` blocks.
"""

from __future__ import annotations

import re
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import CData, Comment, NavigableString, Tag

_BLOCK = frozenset(
    """p div h1 h2 h3 h4 h5 h6 ul ol li pre table thead tbody tfoot tr td th blockquote section
    article main header footer nav aside body html dl dt dd hr figure figcaption details summary
    form center ac:structured-macro ac:rich-text-body ac:layout ac:layout-section
    ac:layout-cell ac:task-list ac:task ac:task-body""".split()
)
_SKIP = frozenset(
    "script style head noscript template ac:parameter ac:task-status ac:task-id ac:emoticon".split()
)
_CODE_INLINE = frozenset("code tt kbd samp".split())
_CODE_MACROS = frozenset({"code", "noformat"})
_SKIP_MACROS = frozenset({"toc", "children", "jira", "recently-updated", "pagetree", "anchor"})
_ESCAPE = re.compile(r"([\\`*_\[\]<>|&~#])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])(?=\s|$)")
_WS = re.compile(r"\s+")
_BRUSH = re.compile(r"brush:\s*([\w+-]+)")
_LANG_CLASS = re.compile(r"^(?:language|lang)-([\w+-]+)$")
_BACKTICKS = re.compile(r"`+")
_PAIRS = [
    (label, re.compile(rf"<{tag}\b", re.I), re.compile(rf"</{tag}\s*>", re.I))
    for label, tag in (
        ("pre", "pre"),
        ("table", "table"),
        ("ol", "ol"),
        ("ul", "ul"),
        ("ac:structured-macro", "ac:structured-macro"),
    )
]


def html_to_markdown(html: str) -> tuple[str, list[str]]:
    """Convert; never raises. Returns the markdown and any warnings."""
    warnings: list[str] = []
    unbalanced = [
        label
        for label, opener, closer in _PAIRS
        if len(opener.findall(html)) > len(closer.findall(html))
    ]
    if html.count("<![CDATA[") > html.count("]]>"):
        unbalanced.append("CDATA")
    if unbalanced:
        warnings.append(
            f"HTML looks malformed (unclosed {', '.join(unbalanced)}); parsed best effort"
        )
    try:
        soup = BeautifulSoup(html, "html.parser")
        converter = _Converter()
        blocks = converter.blocks(soup)
        title = converter.title
    except Exception as exc:  # html.parser on hostile input: keep the text at least
        warnings.append(f"HTML could not be parsed ({type(exc).__name__}); using its text only")
        text = re.sub(r"<[^>]*>", " ", html)
        return "\n\n".join(_escape(p) for p in re.split(r"\n\s*\n", text) if p.strip()), warnings
    lines: list[str] = []
    if title and not any(b and b[0].startswith("# ") for b in blocks):
        lines.extend([f"# {_escape(title)}", ""])
    for block in blocks:
        lines.extend(block)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n", warnings


def _escape(text: str) -> str:
    text = _ESCAPE.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


class _Converter:
    def __init__(self) -> None:
        self.title: str | None = None

    def blocks(self, el: Tag) -> list[list[str]]:
        """Markdown blocks (each a list of lines) for the children of ``el``."""
        out: list[list[str]] = []
        inline: list[Any] = []

        def flush() -> None:
            if inline:
                text = self.inline_text(inline)
                if text:
                    out.append([text])
                inline.clear()

        for child in el.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                inline.append(child)
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name == "title":
                self.title = _WS.sub(" ", child.get_text()).strip() or None
                continue
            if name in _SKIP:
                continue
            if name in _BLOCK:
                flush()
                out.extend(self.block(child, name))
            elif name == "br":
                inline.append(" ")
            else:
                inline.append(child)
        flush()
        return out

    def block(self, el: Tag, name: str) -> list[list[str]]:
        if name[0] == "h" and name[1:].isdigit() and len(name) == 2:
            text = self.inline_text(list(el.children))
            return [[f"{'#' * int(name[1])} {text}"]] if text else []
        if name == "p" or name == "dt" or name == "summary" or name == "figcaption":
            return self.blocks(el)
        if name == "ul" or name == "ol" or name == "ac:task-list":
            return [self.list_block(el, ordered=name == "ol")]
        if name == "pre":
            return [self.fence(_pre_text(el), _pre_language(el))]
        if name == "table":
            table = self.table(el)
            return [table] if table else []
        if name == "hr":
            return []
        if name == "ac:structured-macro":
            return self.macro(el)
        if name == "li" or name == "ac:task":
            # A stray <li> outside a list: treat it as a one-item list.
            return [self.list_block_items([el], ordered=False)]
        return self.blocks(el)

    def macro(self, el: Tag) -> list[list[str]]:
        macro = str(el.get("ac:name", "")).lower()
        if macro in _SKIP_MACROS:
            return []
        if macro in _CODE_MACROS:
            language = ""
            for param in el.find_all("ac:parameter", recursive=False):
                if str(param.get("ac:name", "")).lower() == "language":
                    language = param.get_text().strip().lower()
            body = el.find("ac:plain-text-body")
            text = body.get_text() if isinstance(body, Tag) else ""
            return [self.fence(text, language)]
        out: list[list[str]] = []
        for param in el.find_all("ac:parameter", recursive=False):
            if str(param.get("ac:name", "")).lower() == "title" and param.get_text().strip():
                out.append([_escape(_WS.sub(" ", param.get_text()).strip())])
        body = el.find("ac:rich-text-body")
        if isinstance(body, Tag):
            out.extend(self.blocks(body))
        return out

    def list_block(self, el: Tag, ordered: bool) -> list[str]:
        items = [
            c for c in el.children if isinstance(c, Tag) and c.name.lower() in ("li", "ac:task")
        ]
        return self.list_block_items(items, ordered)

    def list_block_items(self, items: list[Tag], ordered: bool) -> list[str]:
        lines: list[str] = []
        for n, item in enumerate(items, start=1):
            marker = f"{n}. " if ordered else "- "
            pad = " " * len(marker)
            body = item.find("ac:task-body") if item.name.lower() == "ac:task" else item
            blocks = self.blocks(body) if isinstance(body, Tag) else []
            if not blocks:
                blocks = [[""]]
            first = True
            for block in blocks:
                if not first:
                    lines.append("")
                for k, line in enumerate(block):
                    if first and k == 0:
                        lines.append((marker + line).rstrip())
                    else:
                        lines.append((pad + line) if line else "")
                first = False
        return lines

    def fence(self, text: str, language: str) -> list[str]:
        text = text.strip("\n")
        longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
        ticks = "`" * max(3, longest + 1)
        return [f"{ticks}{language}", *text.split("\n"), ticks]

    def table(self, el: Tag) -> list[str]:
        rows: list[list[str]] = []
        for tr in el.find_all("tr"):
            if tr.find_parent("table") is not el:
                continue
            cells = [
                self.inline_text(list(cell.children), in_table=True)
                for cell in tr.find_all(["td", "th"], recursive=False)
            ]
            if cells:
                rows.append(cells)
        if not rows:
            return []
        width = max(len(r) for r in rows)
        lines = []
        for k, row in enumerate(rows):
            row = row + [""] * (width - len(row))
            lines.append("| " + " | ".join(c or " " for c in row) + " |")
            if k == 0:
                lines.append("|" + "---|" * width)
        return lines

    def inline_text(self, nodes: list[Any], in_table: bool = False) -> str:
        parts: list[str] = []
        for node in nodes:
            self._inline(node, parts, in_table)
        return _WS.sub(" ", "".join(parts)).strip()

    def _inline(self, node: Any, parts: list[str], in_table: bool) -> None:
        if isinstance(node, Comment):
            return
        if isinstance(node, CData | NavigableString):
            parts.append(_escape(str(node)))
            return
        if not isinstance(node, Tag):
            return
        name = node.name.lower()
        if name in _SKIP or name == "title":
            return
        if name == "br":
            parts.append(" ")
            return
        if name in _CODE_INLINE:
            parts.append(_code_span(node.get_text(), in_table))
            return
        if name == "pre":
            parts.append(_code_span(node.get_text(), in_table))
            return
        if name == "ac:structured-macro":
            body = node.find("ac:plain-text-body") or node.find("ac:rich-text-body")
            if isinstance(body, Tag):
                if body.name.lower() == "ac:plain-text-body":
                    parts.append(_code_span(body.get_text(), in_table))
                else:
                    for child in body.children:
                        self._inline(child, parts, in_table)
            return
        if name == "ac:link":
            page = node.find(["ri:page", "ri:attachment", "ri:url"])
            label = node.find(["ac:plain-text-link-body", "ac:link-body"])
            if isinstance(label, Tag):
                parts.append(_escape(label.get_text()))
            elif isinstance(page, Tag):
                parts.append(
                    _escape(str(page.get("ri:content-title") or page.get("ri:filename") or ""))
                )
            return
        if name == "a":
            label_parts: list[str] = []
            for child in node.children:
                self._inline(child, label_parts, in_table)
            link_text = "".join(label_parts).strip()
            href = str(node.get("href") or "")
            if href and link_text and not href.lower().startswith("javascript:"):
                safe = href.replace(" ", "%20").replace(")", "%29").replace("(", "%28")
                parts.append(f"[{link_text}]({safe})")
            else:
                parts.append(link_text)
            return
        if name in ("img", "ac:image"):
            alt = node.get("alt")
            if alt:
                parts.append(_escape(str(alt)))
            return
        for child in node.children:
            self._inline(child, parts, in_table)
        if name in _BLOCK:
            parts.append(" ")


def _code_span(text: str, in_table: bool) -> str:
    text = _WS.sub(" ", text).strip()
    if not text:
        return ""
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _pre_text(el: Tag) -> str:
    parts: list[str] = []
    for node in el.descendants:
        if isinstance(node, Tag) and node.name.lower() == "br":
            parts.append("\n")
        elif isinstance(node, NavigableString) and not isinstance(node, Comment):
            parts.append(str(node))
    return "".join(parts)


def _pre_language(el: Tag) -> str:
    params = str(el.get("data-syntaxhighlighter-params") or "")
    m = _BRUSH.search(params)
    if m:
        return m.group(1).lower()
    for tag in [el, *el.find_all("code", limit=1)]:
        if not isinstance(tag, Tag):
            continue
        lang = tag.get("data-language") or tag.get("data-lang")
        if lang:
            return str(lang).lower()
        classes: Any = tag.get("class") or []
        for cls in classes if isinstance(classes, list) else [classes]:
            cm = _LANG_CLASS.match(str(cls))
            if cm:
                return cm.group(1).lower()
    return ""
