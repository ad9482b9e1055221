"""The URLs that show a runbook: its source's (a Confluence or Notion page, a git web URL) and
`urls:` in its front-matter, and the normalised keys they are looked up by.

URLs compare normalised: scheme, `www.`, default port, fragment and trailing slash dropped,
percent-decoded, case-insensitive; a query counts only when the runbook's own URL has one
(Confluence's `viewpage.action?pageId=…`). Which runbook an alert's URL shows is
ddoc/alerts/runbook_urls.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote, urlsplit

from ddoc.runbooks.parsing.source import split_front_matter

MAX_URL = 2048
MAX_URLS = 20  # per runbook
_FRONT_MATTER_KEYS = ("urls", "url", "runbook_url", "runbook_urls")


def url_parts(url: str) -> tuple[str, str, str] | None:
    """(host[:port], path, sorted query) of an http(s) URL, host lower-cased; None otherwise."""
    url = url.strip()
    if len(url) > MAX_URL:
        return None
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return None
    if split.scheme.lower() not in ("http", "https") or not split.hostname:
        return None
    host = split.hostname.lower().removeprefix("www.")
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", unquote(split.path)).rstrip("/")
    query = "&".join(sorted(q for q in split.query.split("&") if q))
    return host, path, query


def is_url(value: str) -> bool:
    return url_parts(value) is not None


def stored_key(url: str) -> str | None:
    """The form a runbook's URL is looked up by."""
    parts = url_parts(url)
    if parts is None:
        return None
    host, path, query = parts
    return (f"{host}{path}" + (f"?{query}" if query else "")).lower()


def alert_keys(url: str) -> list[str]:
    """The forms an alert's URL matches runbook URLs by: with its query, and without."""
    parts = url_parts(url)
    if parts is None:
        return []
    host, path, query = parts
    base = f"{host}{path}".lower()
    return [base, f"{base}?{query}".lower()] if query else [base]


def url_columns(
    *, source_urls: Sequence[str], content: str, fmt: str
) -> tuple[list[str], list[str]]:
    """A runbook's URLs (its source's, then its front-matter's) and their lookup keys."""
    urls: list[str] = []
    for url in [*source_urls, *front_matter_urls(content, fmt)]:
        if is_url(url) and url not in urls:
            urls.append(url.strip())
    urls = urls[:MAX_URLS]
    keys = sorted({key for key in map(stored_key, urls) if key})
    return urls, keys


def clean_urls(urls: Iterable[str]) -> list[str]:
    """The http(s) URLs among `urls`, each once, at most MAX_URLS."""
    found: list[str] = []
    for url in urls:
        url = url.strip()
        if is_url(url) and url not in found:
            found.append(url)
    return found[:MAX_URLS]


def front_matter_urls(content: str, fmt: str) -> list[str]:
    if fmt == "html":
        return []
    data = split_front_matter(content).data  # never raises
    found: list[str] = []
    for key in _FRONT_MATTER_KEYS:
        value = data.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and is_url(item):
                found.append(item.strip())
    return found
