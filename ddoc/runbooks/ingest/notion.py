"""Notion connector: pages (given directly or as rows of databases), converted to Markdown.

Notion has no export endpoint, so a page is read as its block tree (`GET /v1/blocks/{id}/
children`, recursing into blocks with children) and `blocks_to_markdown` turns the blocks that
matter in runbooks (headings, paragraphs, lists, to-dos, code, quotes, callouts, toggles, tables,
dividers) into Markdown for the Markdown parser downstream. Block types with no text of their
own (images hosted by Notion, child pages, ...) are left out: hosted file URLs are signed and
expire, so keeping them would make every sync look like an edit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from ddoc.runbooks.ingest import SourceDocument, SourceError
from ddoc.runbooks.ingest.confluence import (
    DEFAULT_TIMEOUT,
    MAX_RETRIES,
    Sleep,
    request_with_retries,
)

NOTION_VERSION = "2022-06-28"
# Notion nests at most a few levels in practice; the cap protects against pathological trees.
MAX_DEPTH = 12
_HEX32 = re.compile(r"([0-9a-f]{32})$")
# Blocks that render as list items; consecutive ones are joined without a blank line.
_LIST_TYPES = frozenset({"bulleted_list_item", "numbered_list_item", "to_do", "toggle"})
# Their children are separate pages (imported on their own if selected), not part of this one.
_LIST_START = re.compile(r"(?:- |1\. )")
_SKIP_CHILDREN = frozenset({"child_page", "child_database"})


def normalize_id(value: str) -> str:
    """A Notion id in its dashed form; accepts dashed or bare ids and page URLs."""
    compact = re.split(r"[?#]", value.strip(), maxsplit=1)[0].rstrip("/").replace("-", "").lower()
    match = _HEX32.search(compact)
    if not match:
        raise SourceError(f"Notion: {value!r} is not a page or database id")
    h = match.group(1)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rich_text_to_markdown(rich_text: Sequence[Mapping[str, Any]]) -> str:
    """Plain text of a rich_text array; inline code in backticks, links as Markdown links."""
    parts: list[str] = []
    for item in rich_text:
        text = str(item.get("plain_text", ""))
        annotations = item.get("annotations") or {}
        if annotations.get("code") and text:
            fence = "``" if "`" in text else "`"
            text = f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"
        href = item.get("href")
        if href and text and text != href:
            text = f"[{text}]({href})"
        parts.append(text)
    return "".join(parts)


def page_title(page: Mapping[str, Any]) -> str | None:
    """The text of the page's `title`-type property (every Notion page has exactly one)."""
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return rich_text_to_markdown(prop.get("title") or []).strip() or None
    return None


def blocks_to_markdown(blocks: Sequence[Mapping[str, Any]]) -> str:
    """Markdown for a list of Notion blocks; a block's fetched children are under "children"."""
    out: list[str] = []
    previous: str | None = None
    for block in blocks:
        kind = str(block.get("type"))
        rendered = _render_block(block)
        if not rendered:
            continue
        if out:
            tight = kind in _LIST_TYPES and previous in _LIST_TYPES
            out.append("\n" if tight else "\n\n")
        out.append(rendered)
        previous = kind
    return "".join(out) + "\n" if out else ""


def _render_block(block: Mapping[str, Any]) -> str:
    kind = str(block.get("type"))
    data: Mapping[str, Any] = block.get(kind) or {}
    text = rich_text_to_markdown(data.get("rich_text") or [])
    children = block.get("children") or []
    inner = blocks_to_markdown(children).rstrip("\n") if children else ""

    if kind in ("heading_1", "heading_2", "heading_3"):
        heading = f"{'#' * int(kind[-1])} {text}" if text else ""
        return _join(heading, inner)  # toggleable headings carry children
    if kind == "bulleted_list_item" or kind == "toggle":
        return _item("- ", text, inner)
    if kind == "numbered_list_item":
        return _item("1. ", text, inner)
    if kind == "to_do":
        box = "[x]" if data.get("checked") else "[ ]"
        return _item("- ", f"{box} {text}", inner)
    if kind == "code":
        code = "".join(str(t.get("plain_text", "")) for t in data.get("rich_text") or [])
        language = str(data.get("language") or "")
        language = "" if language == "plain text" else language
        fence = "```"
        while fence in code:
            fence += "`"
        return f"{fence}{language}\n{code}\n{fence}"
    if kind == "quote":
        return _quote(_join(text, inner))
    if kind == "callout":
        icon = data.get("icon") or {}
        emoji = icon.get("emoji") if icon.get("type") == "emoji" else None
        return _quote(_join(f"{emoji} {text}" if emoji else text, inner))
    if kind == "divider":
        return "---"
    if kind == "table":
        return _table(children, has_header=bool(data.get("has_column_header")))
    if kind in ("bookmark", "embed", "link_preview"):
        url = str(data.get("url") or "")
        caption = rich_text_to_markdown(data.get("caption") or [])
        return f"[{caption}]({url})" if caption and url else url
    if kind in _SKIP_CHILDREN:
        return ""
    # paragraph, and anything else with text of its own (template, synced_block, ...).
    return _join(text, inner)


def _join(first: str, rest: str) -> str:
    return "\n\n".join(part for part in (first, rest) if part)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _item(marker: str, text: str, inner: str) -> str:
    pad = " " * len(marker)
    first, _, more = text.partition("\n")
    lines = marker + first + ("\n" + _indent(more, pad) if more else "")
    if inner:
        # Nested lists stay tight; anything else needs a blank line, or a child paragraph would
        # run on into the item's own text.
        sep = "\n" if _LIST_START.match(inner) else "\n\n"
        lines += sep + _indent(inner, pad)
    return lines


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n")) if text else ""


def _cell(rich_text: Sequence[Mapping[str, Any]]) -> str:
    # A cell must stay on one line and must not close the cell early.
    return rich_text_to_markdown(rich_text).replace("\n", " ").replace("|", "\\|")


def _table(rows: Sequence[Mapping[str, Any]], *, has_header: bool) -> str:
    cells = [
        [_cell(cell) for cell in row["table_row"]["cells"]]
        for row in rows
        if row.get("type") == "table_row"
    ]
    if not cells:
        return ""
    width = max(len(r) for r in cells)
    cells = [r + [""] * (width - len(r)) for r in cells]
    # Markdown tables need a header row; without one in Notion, an empty header is the honest one.
    header, body = (cells[0], cells[1:]) if has_header else ([""] * width, cells)
    lines = [header, ["---"] * width, *body]
    return "\n".join("| " + " | ".join(r) + " |" for r in lines)


class NotionSource:
    """Notion pages, given by id and/or as the rows of databases, shared with one integration."""

    prefix = "notion:"

    def __init__(
        self,
        token: str,
        page_ids: Sequence[str] = (),
        database_ids: Sequence[str] = (),
        client: httpx.Client | None = None,
        base_url: str = "https://api.notion.com",
        *,
        sleep: Sleep = time.sleep,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        if not page_ids and not database_ids:
            raise SourceError("Notion: give at least one page or database id")
        self.page_ids = [normalize_id(p) for p in page_ids]
        self.database_ids = [normalize_id(d) for d in database_ids]
        self.base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Notion-Version": NOTION_VERSION,
            "Accept": "application/json",
        }
        self._client = client  # None: a client of our own per fetch, closed afterwards
        self._sleep = sleep
        self._timeout = timeout
        self._max_retries = max_retries

    def fetch(self) -> list[SourceDocument]:
        """Every selected page (each once), page ids first, then database rows in query order."""
        if self._client is not None:
            return self._fetch(self._client)
        with httpx.Client() as client:
            return self._fetch(client)

    def _fetch(self, client: httpx.Client) -> list[SourceDocument]:
        pages: dict[str, dict[str, Any]] = {}
        for page_id in self.page_ids:
            page = self._call(client, "GET", f"/v1/pages/{page_id}", what=f"reading page {page_id}")
            pages.setdefault(str(page["id"]), page)
        for database_id in self.database_ids:
            for page in self._query(client, database_id):
                pages.setdefault(str(page["id"]), page)
        documents: list[SourceDocument] = []
        for page_id, page in pages.items():
            if page.get("archived") or page.get("in_trash"):
                continue
            blocks = self._children(client, page_id, depth=0)
            metadata = {key: str(page[key]) for key in ("last_edited_time", "url") if page.get(key)}
            documents.append(
                SourceDocument(
                    source_path=f"notion:{page_id}",
                    content=blocks_to_markdown(blocks),
                    format="markdown",
                    title_hint=page_title(page),
                    metadata=metadata,
                )
            )
        return documents

    def _query(self, client: httpx.Client, database_id: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            payload: dict[str, Any] = {"page_size": 100}
            if cursor:
                payload["start_cursor"] = cursor
            body = self._call(
                client,
                "POST",
                f"/v1/databases/{database_id}/query",
                json=payload,
                what=f"querying database {database_id}",
            )
            for result in body.get("results") or []:
                if result.get("object") == "page":
                    yield result
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return

    def _children(self, client: httpx.Client, block_id: str, depth: int) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"page_size": 100}
            if cursor:
                params["start_cursor"] = cursor
            body = self._call(
                client,
                "GET",
                f"/v1/blocks/{block_id}/children",
                params=params,
                what=f"reading blocks of {block_id}",
            )
            for block in body.get("results") or []:
                kind = block.get("type")
                if block.get("has_children") and kind not in _SKIP_CHILDREN and depth < MAX_DEPTH:
                    block = {**block, "children": self._children(client, block["id"], depth + 1)}
                blocks.append(block)
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return blocks

    def _call(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = request_with_retries(
            lambda: client.request(
                method,
                self.base_url + path,
                params=params,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
            ),
            service="Notion",
            what=what,
            sleep=self._sleep,
            max_retries=self._max_retries,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SourceError(f"Notion sent an answer that is not a JSON object while {what}")
        return body
