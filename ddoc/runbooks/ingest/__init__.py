"""Runbook ingestion: sources (paste, files, git, Confluence, Notion) produce `SourceDocument`s;
`ddoc.runbooks.ingest.sync` stores them as runbook versions.

Connectors (`files`, `git`, `confluence`, `notion`) only fetch and convert; they never touch the
database. That keeps them testable against fakes and lets `sync` own versioning: unchanged
content makes no new version, changed content makes the next one, and documents that vanished
from a source are archived, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceDocument:
    source_path: (
        str  # stable identity within the tenant, e.g. "git:ops/runbooks.git:db/failover.md"
    )
    content: str
    format: str  # markdown | text | html
    title_hint: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # URLs that show the document (e.g. its git web URL); None: the source names none.
    urls: tuple[str, ...] | None = None


class SourceError(RuntimeError):
    """A source could not be read; the message says which one and why (shown to the user)."""
