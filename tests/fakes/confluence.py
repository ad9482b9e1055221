"""A fake Confluence Cloud site speaking the v1 content-search API, as an httpx transport.

It checks basic auth, understands the CQL the connector sends (`type=page`, `space="K"`,
`label="l"` joined by AND), honours `expand`, paginates with `start`/`limit` and a relative
`_links.next` like Cloud does, records every request, and can answer with queued errors
(401/429/500...) to exercise the connector's error handling.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

SEARCH_PATH = "/wiki/rest/api/content/search"
_CQL_CLAUSE = re.compile(r'^(type)=(page)$|^(space|label)="((?:[^"\\]|\\.)*)"$')


@dataclass
class FakePage:
    id: str
    title: str
    space: str
    body: str
    version: int = 1
    labels: tuple[str, ...] = ()
    status: str = "current"


class FakeConfluence:
    """Pages of one site; call `client()` for an httpx.Client wired to it."""

    def __init__(
        self,
        base_url: str = "https://acme.atlassian.net",
        email: str = "oncall@acme.test",
        api_token: str = "atl-token-123",
        pages: list[FakePage] | None = None,
        max_limit: int = 25,
    ) -> None:
        self.base_url = base_url
        self.email = email
        self.api_token = api_token
        self.pages = list(pages or [])
        self.max_limit = max_limit  # Cloud caps `limit` when bodies are expanded
        self.requests: list[httpx.Request] = []
        self._errors: deque[tuple[int, dict[str, str]]] = deque()

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` requests with `status` (and a Retry-After header if given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._errors.extend([(status, headers)] * times)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    @property
    def queries(self) -> list[dict[str, str]]:
        """The query parameters of each recorded request."""
        return [dict(r.url.params) for r in self.requests]

    # -- the API --------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._errors:
            status, headers = self._errors.popleft()
            return httpx.Response(
                status, headers=headers, json={"statusCode": status, "message": "injected"}
            )
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            # Cloud answers bad basic auth with a bare 401 and a plain-text body.
            return httpx.Response(401, text="Basic authentication with passwords is deprecated.")
        if request.method != "GET" or request.url.path != SEARCH_PATH:
            return httpx.Response(404, json={"statusCode": 404, "message": "No such endpoint"})
        params = request.url.params
        filters = _parse_cql(params.get("cql", ""))
        if filters is None:
            return httpx.Response(
                400,
                json={"statusCode": 400, "message": "Could not parse cql : " + params["cql"]},
            )
        matching = [
            p
            for p in self.pages
            if p.status == "current"
            and ("space" not in filters or p.space == filters["space"])
            and ("label" not in filters or filters["label"] in p.labels)
        ]
        start = int(params.get("start", "0"))
        limit = min(int(params.get("limit", "25")), self.max_limit)
        chunk = matching[start : start + limit]
        expand = set(params.get("expand", "").split(","))
        wiki = self.base_url + "/wiki"
        links: dict[str, str] = {
            "base": wiki,
            "context": "/wiki",
            "self": wiki + "/rest/api/content/search?" + urlencode(dict(params)),
        }
        if start + limit < len(matching):
            nxt = {**dict(params), "start": str(start + limit), "limit": str(limit)}
            # Cloud adds an opaque cursor; clients must follow the link, not rebuild it.
            nxt["cursor"] = base64.urlsafe_b64encode(f"s{start + limit}".encode()).decode()
            links["next"] = "/rest/api/content/search?" + urlencode(nxt)
        return httpx.Response(
            200,
            json={
                "results": [self._page_json(p, expand) for p in chunk],
                "start": start,
                "limit": limit,
                "size": len(chunk),
                "_links": links,
            },
        )

    def _page_json(self, page: FakePage, expand: set[str]) -> dict[str, object]:
        slug = page.title.replace(" ", "+")
        data: dict[str, object] = {
            "id": page.id,
            "type": "page",
            "status": page.status,
            "title": page.title,
            "_links": {
                "webui": f"/spaces/{page.space}/pages/{page.id}/{slug}",
                "self": f"{self.base_url}/wiki/rest/api/content/{page.id}",
                "tinyui": f"/x/{page.id[-4:]}",
            },
            "_expandable": {"children": "", "ancestors": "", "history": ""},
        }
        if "space" in expand:
            data["space"] = {
                "id": 98000 + len(page.space),
                "key": page.space,
                "name": f"{page.space} space",
                "type": "global",
                "status": "current",
            }
        if "version" in expand:
            data["version"] = {
                "number": page.version,
                "when": "2024-05-01T10:00:00.000Z",
                "minorEdit": False,
            }
        if "body.storage" in expand:
            data["body"] = {
                "storage": {"value": page.body, "representation": "storage"},
                "_expandable": {"view": "", "export_view": ""},
            }
        return data


def _parse_cql(cql: str) -> dict[str, str] | None:
    """{"space": ..., "label": ...} from the AND-joined clauses we support; None if unparsable."""
    filters: dict[str, str] = {}
    saw_type = False
    for clause in re.split(r"\s+AND\s+", cql.strip()):
        match = _CQL_CLAUSE.match(clause.strip())
        if not match:
            return None
        if match.group(1):
            saw_type = True
        else:
            filters[match.group(3)] = re.sub(r"\\(.)", r"\1", match.group(4))
    return filters if saw_type else None
