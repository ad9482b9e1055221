"""A wiki page pasted as text starts with its chrome: the space, a breadcrumb, "Created by …,
last updated …", macro names, "Status:" lines. None of it is the page's title; the line just
above the byline usually is. Used for runbooks' and postmortems' titles."""

from __future__ import annotations

import re

_CHROME = re.compile(
    r"^(?:created by\b|last updated\b|owned by\b|space shortcuts$|pages?$|page tree$|"
    r"jump to\b|skip to\b|expand source$|collapse source$|info$|note$|tip$|warning$|"
    r"(?:space|status|labels?|tags?|owner|authors?|updated|date|breadcrumbs?)\s*:)"
    r"|\b(?:minutes? read|min read|last updated)\b",
    re.IGNORECASE,
)
_BREADCRUMB = re.compile(r"\s[/>\u203a\u00bb]\s")
BYLINE = re.compile(r"^created by\b|\blast updated\b", re.IGNORECASE)


def is_chrome(line: str) -> bool:
    """A breadcrumb (short parts between slashes or angle quotes), a byline, a macro's name."""
    parts = _BREADCRUMB.split(line)
    crumbs = len(parts) >= 2 and all(0 < len(part.strip()) <= 40 for part in parts)
    return bool(_CHROME.search(line.strip())) or crumbs


def title_line(body: str) -> str | None:
    """The title of a document without headings: its first line, past a pasted wiki page's
    chrome (the line just above "Created by …, last updated …" when there is one)."""
    lines = [ln.strip() for ln in body.split("\n") if ln.strip()][:12]
    byline = next((i for i, line in enumerate(lines) if BYLINE.search(line)), None)
    if byline and not is_chrome(lines[byline - 1]):
        return lines[byline - 1]
    return next((line for line in lines if not is_chrome(line)), lines[0] if lines else None)
