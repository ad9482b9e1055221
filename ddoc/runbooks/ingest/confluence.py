"""Confluence Cloud connector: pages of a space and/or with a label, as storage-format HTML.

Uses the documented v1 content search (`GET /wiki/rest/api/content/search` with CQL), following
`_links.next` until the result set is exhausted. Pages come back in Confluence's storage format
(XHTML); it is passed through unchanged, the HTML parser downstream understands it.

`request_with_retries` is the retry policy shared with the Notion connector: 429 waits for
`Retry-After`, 5xx and network errors back off, both a bounded number of times; credentials
errors fail at once with a message that says what to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ddoc.runbooks.ingest import SourceDocument, SourceError

Sleep = Callable[[float], None]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_RETRIES = 3
# A server asking for longer than this is effectively down; we give up rather than stall a sync.
MAX_RETRY_AFTER = 120.0
_CREDENTIALS_STATUSES = (401, 403)


def retry_after_seconds(response: httpx.Response, attempt: int) -> float:
    """How long to wait before retrying `response` (Retry-After, else exponential backoff)."""
    header = response.headers.get("retry-after")
    if header:
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = 2.0**attempt
        return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    return min(2.0**attempt, MAX_RETRY_AFTER)


def request_with_retries(
    send: Callable[[], httpx.Response],
    *,
    service: str,
    what: str,
    sleep: Sleep,
    max_retries: int = MAX_RETRIES,
) -> httpx.Response:
    """Call `send` until it gives a non-retryable answer; return the 2xx response.

    `service` names the product in messages ("Confluence", "Notion"), `what` the request.
    """
    for attempt in range(max_retries + 1):
        last_try = attempt == max_retries
        try:
            response = send()
        except httpx.TransportError as exc:
            if last_try:
                raise SourceError(
                    f"{service} could not be reached while {what}: {type(exc).__name__}: {exc}"
                ) from None
            sleep(min(2.0**attempt, MAX_RETRY_AFTER))
            continue
        status = response.status_code
        if status in _CREDENTIALS_STATUSES:
            raise SourceError(
                f"{service} refused the credentials (HTTP {status}) while {what}; "
                "check the account and API token and that it can read this content"
            )
        if status == 429 or status >= 500:
            if last_try:
                problem = "rate limit" if status == 429 else f"server error (HTTP {status})"
                raise SourceError(
                    f"{service} {problem} while {what}; gave up after {max_retries} retries"
                )
            sleep(retry_after_seconds(response, attempt))
            continue
        if status >= 400:
            raise SourceError(
                f"{service} rejected the request (HTTP {status}) while {what}: "
                f"{_error_message(response)}"
            )
        return response
    raise AssertionError("unreachable")  # the loop always returns or raises


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "errorMessage"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return response.text[:300]


def _cql_string(value: str) -> str:
    # CQL string literals are double-quoted with backslash escapes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ConfluenceSource:
    """The pages of one Confluence Cloud site selected by space and/or label."""

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        space: str | None,
        label: str | None,
        client: httpx.Client | None = None,
        *,
        sleep: Sleep = time.sleep,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = MAX_RETRIES,
        page_size: int = 25,
    ) -> None:
        if not space and not label:
            # Without a filter we would import every page of the site.
            raise SourceError("Confluence: give a space key, a label, or both")
        base = base_url.rstrip("/")
        # Users paste either the site URL or the wiki URL; normalise to the site.
        self.base_url = base.removesuffix("/wiki")
        self.space = space
        self.label = label
        self._auth = httpx.BasicAuth(email, api_token)
        self._client = client  # None: a client of our own per fetch, closed afterwards
        self._sleep = sleep
        self._timeout = timeout
        self._max_retries = max_retries
        self._page_size = page_size

    @property
    def prefix(self) -> str:
        """The `source_path` prefix every document of this source starts with."""
        return f"confluence:{self.space}:" if self.space else "confluence:"

    @property
    def cql(self) -> str:
        clauses = ["type=page"]
        if self.space:
            clauses.append(f"space={_cql_string(self.space)}")
        if self.label:
            clauses.append(f"label={_cql_string(self.label)}")
        return " AND ".join(clauses)

    def fetch(self) -> list[SourceDocument]:
        """Every current page matching the space/label, in the order Confluence returns them."""
        if self._client is not None:
            return self._fetch(self._client)
        with httpx.Client() as client:
            return self._fetch(client)

    def _fetch(self, client: httpx.Client) -> list[SourceDocument]:
        documents: list[SourceDocument] = []
        seen: set[str] = set()
        url: str | None = self._search_url()
        params: dict[str, str | int] | None = {
            "cql": self.cql,
            "expand": "body.storage,version,space",
            "limit": self._page_size,
            "start": 0,
        }
        while url is not None:
            body = self._get(client, url, params)
            results = body.get("results") or []
            wiki_base = _links(body).get("base") or f"{self.base_url}/wiki"
            for page in results:
                document = self._document(page, wiki_base)
                if document is not None and document.source_path not in seen:
                    seen.add(document.source_path)
                    documents.append(document)
            url, params = self._next(body, params, len(results))
        return documents

    def _next(
        self, body: dict[str, Any], params: dict[str, str | int] | None, count: int
    ) -> tuple[str | None, dict[str, str | int] | None]:
        links = _links(body)
        next_link = links.get("next")
        if next_link:
            base = links.get("base") or f"{self.base_url}/wiki"
            url = next_link if next_link.startswith(("http://", "https://")) else base + next_link
            # The link carries our credentials' destination: never follow it off-site.
            if urlsplit(url).netloc != urlsplit(self.base_url).netloc:
                raise SourceError(f"Confluence pagination pointed to another host: {url}")
            return url, None  # the link already has cql/expand/limit/cursor in it
        if "_links" in body or params is None or count == 0:
            return None, None
        # No links at all (older servers): page with start/limit/size.
        size = int(body.get("size", count))
        limit = int(body.get("limit", params["limit"]))
        if size < limit:
            return None, None
        return self._search_url(), {**params, "start": int(params["start"]) + size}

    def _search_url(self) -> str:
        return f"{self.base_url}/wiki/rest/api/content/search"

    def _get(
        self, client: httpx.Client, url: str, params: dict[str, str | int] | None
    ) -> dict[str, Any]:
        response = request_with_retries(
            lambda: client.get(
                url,
                params=params,
                auth=self._auth,
                timeout=self._timeout,
                headers={"Accept": "application/json"},
            ),
            service="Confluence",
            what=f"searching {self.base_url} for {self.cql}",
            sleep=self._sleep,
            max_retries=self._max_retries,
        )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"Confluence at {self.base_url} did not answer with JSON; is the URL right?"
            ) from None
        if not isinstance(body, dict):
            raise SourceError(f"Confluence at {self.base_url} sent an unexpected answer")
        return body

    def _document(self, page: dict[str, Any], wiki_base: str) -> SourceDocument | None:
        if page.get("type", "page") != "page" or page.get("status", "current") != "current":
            return None
        try:
            page_id = str(page["id"])
            content = page["body"]["storage"]["value"]
        except (KeyError, TypeError):
            raise SourceError(
                "Confluence sent a page without its body; the API answer was not as documented"
            ) from None
        space_key = (page.get("space") or {}).get("key") or self.space or "?"
        metadata: dict[str, str] = {}
        version = (page.get("version") or {}).get("number")
        if version is not None:
            metadata["version"] = str(version)
        webui = _links(page).get("webui")
        if webui:
            metadata["url"] = wiki_base + webui
        return SourceDocument(
            source_path=f"confluence:{space_key}:{page_id}",
            content=str(content),
            format="html",
            title_hint=page.get("title") or None,
            metadata=metadata,
        )


def _links(obj: dict[str, Any]) -> dict[str, str]:
    links = obj.get("_links")
    return links if isinstance(links, dict) else {}
