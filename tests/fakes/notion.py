"""A fake Notion API (version 2022-06-28) as an httpx transport.

Serves `GET /v1/pages/{id}`, `POST /v1/databases/{id}/query` and
`GET /v1/blocks/{id}/children` with Notion's list objects (`results`, `next_cursor`,
`has_more`), cursor pagination (the cursor is the next item's id, as in Notion), bearer-token
and Notion-Version checks, Notion's error objects, a record of requests, and queued errors.

Build content with `text(...)` and `block(...)`; a block's `children` are stored separately and
reported through `has_children`, the way the real API does.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

import httpx

VERSION = "2022-06-28"
_ROUTE = re.compile(r"^/v1/(pages|databases|blocks)/([0-9a-f-]+)(/query|/children)?$")


def text(
    content: str, *, code: bool = False, bold: bool = False, href: str | None = None
) -> dict[str, Any]:
    """A rich_text item of type text."""
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": href} if href else None},
        "annotations": {
            "bold": bold,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "code": code,
            "color": "default",
        },
        "plain_text": content,
        "href": href,
    }


def block(
    kind: str,
    *rich: dict[str, Any] | str,
    children: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A block of `kind` whose rich_text is `rich` (strings become plain text items)."""
    payload: dict[str, Any] = {}
    if kind not in ("divider", "table", "table_row", "child_page"):
        payload["rich_text"] = [text(r) if isinstance(r, str) else r for r in rich]
    payload.update(fields)
    if kind in ("paragraph", "heading_1", "bulleted_list_item", "to_do", "quote", "callout"):
        payload.setdefault("color", "default")
    result: dict[str, Any] = {"object": "block", "type": kind, kind: payload}
    if children:
        result["children"] = children  # split off by FakeNotion.add_page
    return result


class FakeNotion:
    """Pages, their block trees and databases shared with one integration token."""

    def __init__(self, token: str = "secret_notion_token", max_page_size: int = 100) -> None:
        self.token = token
        self.max_page_size = max_page_size  # lower it to force pagination
        self.pages: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[dict[str, Any]]] = {}
        self.databases: dict[str, list[str]] = {}
        self.requests: list[httpx.Request] = []
        self._errors: deque[tuple[int, dict[str, str]]] = deque()
        self._counter = 0

    def new_id(self) -> str:
        self._counter += 1
        n = self._counter
        return f"{n:08x}-0000-4000-8000-{n:012x}"

    def add_database(self, database_id: str) -> None:
        self.databases.setdefault(database_id, [])

    def add_page(
        self,
        title: str,
        blocks: list[dict[str, Any]],
        *,
        page_id: str | None = None,
        database_id: str | None = None,
        last_edited_time: str = "2024-05-01T10:00:00.000Z",
        archived: bool = False,
    ) -> str:
        page_id = page_id or self.new_id()
        parent: dict[str, Any]
        if database_id is not None:
            parent = {"type": "database_id", "database_id": database_id}
            title_key = "Name"  # database rows name their title property freely
            self.databases.setdefault(database_id, []).append(page_id)
        else:
            parent = {"type": "workspace", "workspace": True}
            title_key = "title"
        self.pages[page_id] = {
            "object": "page",
            "id": page_id,
            "created_time": "2024-04-01T09:00:00.000Z",
            "last_edited_time": last_edited_time,
            "archived": archived,
            "in_trash": archived,
            "parent": parent,
            "url": f"https://www.notion.so/{title.replace(' ', '-')}-{page_id.replace('-', '')}",
            "properties": {
                "Service": {"id": "a%3Fb", "type": "select", "select": {"name": "db"}},
                title_key: {"id": "title", "type": "title", "title": [text(title)]},
            },
        }
        self._store_children(page_id, blocks)
        return page_id

    def _store_children(self, parent_id: str, blocks: list[dict[str, Any]]) -> None:
        stored = []
        for b in blocks:
            b = dict(b)
            kids = b.pop("children", None) or []
            b.update(
                id=self.new_id(),
                parent={"type": "block_id", "block_id": parent_id},
                created_time="2024-04-01T09:00:00.000Z",
                last_edited_time="2024-04-01T09:00:00.000Z",
                has_children=bool(kids),
                archived=False,
                in_trash=False,
            )
            stored.append(b)
            self._store_children(b["id"], kids)  # leaves answer with an empty list
        self.children[parent_id] = stored

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._errors.extend([(status, headers)] * times)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    # -- the API --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._errors:
            status, headers = self._errors.popleft()
            code = "rate_limited" if status == 429 else "internal_server_error"
            return _error(status, code, "injected", headers)
        if request.headers.get("notion-version") != VERSION:
            return _error(400, "missing_version", "Notion-Version header failed validation.")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized", "API token is invalid.")
        route = _ROUTE.match(request.url.path)
        if route is None:
            return _error(400, "invalid_request_url", "Invalid request URL.")
        kind, object_id, action = route.groups()
        if kind == "pages" and action is None and request.method == "GET":
            if object_id not in self.pages:
                return _not_found("page", object_id)
            return httpx.Response(200, json=self.pages[object_id])
        if kind == "databases" and action == "/query" and request.method == "POST":
            if object_id not in self.databases:
                return _not_found("database", object_id)
            body = json.loads(request.content or b"{}")
            rows = [self.pages[p] for p in self.databases[object_id]]
            return self._list(rows, body.get("start_cursor"), body.get("page_size"), "page")
        if kind == "blocks" and action == "/children" and request.method == "GET":
            if object_id not in self.children:
                return _not_found("block", object_id)
            params = request.url.params
            size = params.get("page_size")
            return self._list(
                self.children[object_id],
                params.get("start_cursor"),
                int(size) if size else None,
                "block",
            )
        return _error(400, "invalid_request_url", "Invalid request URL.")

    def _list(
        self, items: list[dict[str, Any]], cursor: str | None, page_size: int | None, kind: str
    ) -> httpx.Response:
        start = 0
        if cursor:
            ids = [i["id"] for i in items]
            if cursor not in ids:
                return _error(400, "validation_error", "start_cursor is not valid.")
            start = ids.index(cursor)
        size = min(page_size or 100, self.max_page_size)
        chunk = items[start : start + size]
        more = start + size < len(items)
        list_type = "block" if kind == "block" else "page_or_database"
        return httpx.Response(
            200,
            json={
                "object": "list",
                "results": chunk,
                "next_cursor": items[start + size]["id"] if more else None,
                "has_more": more,
                "type": list_type,
                list_type: {},
                "request_id": "5f2a1c4e-0000-4000-8000-000000000000",
            },
        )


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        headers=headers,
        json={"object": "error", "status": status, "code": code, "message": message},
    )


def _not_found(what: str, object_id: str) -> httpx.Response:
    return _error(
        404,
        "object_not_found",
        f"Could not find {what} with ID: {object_id}. Make sure the relevant pages and "
        "databases are shared with your integration.",
    )
