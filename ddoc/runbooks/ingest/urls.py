"""The URLs a source gives for a document, as a runbook's URLs (ddoc/runbooks/urls.py)."""

from __future__ import annotations

from ddoc.runbooks.ingest import SourceDocument
from ddoc.runbooks.urls import clean_urls


def document_urls(document: SourceDocument) -> list[str] | None:
    """The URLs a source gives for a document (its own, and a connector's page URL); None when
    it gives none, so that a runbook keeps the URLs an earlier import gave it."""
    given = list(document.urls or ())
    page = document.metadata.get("url")
    if page:
        given.append(page)
    if document.urls is None and not page:
        return None
    return clean_urls(given)
