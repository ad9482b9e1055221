"""Which stored runbook a document is, however its file was added.

A file's source path depends on how it reached us: pasted with `?source_path=examples/x.md`,
added with `ddoc runbook add examples/x.md` (`x.md`), imported with `ddoc runbook import
examples/` (`x.md`, relative to the folder) or `ddoc runbook import .` (`examples/x.md`). Each
is the same file, and must stay one runbook: two runbooks declaring one alert stop its runbook
from being attached.

Before a document without a runbook at its exact path is stored, `resolve` looks for the runbook
it already is:

- a runbook whose path names the same file: one path is the other with leading folders (same
  file name, the shorter path's folders the end of the longer's), and either the content is
  identical or the title is the same (`team-a/README.md` and `team-b/README.md` imported from
  `team-b/` stay apart: different titles);
- a runbook with identical content where one side has no path at all (pasted without one).

Exactly one such runbook (identical content first) is the document's: it takes the document's
path (audited as `runbook.source_path_changed`), so the source that was just imported and its
`--archive-missing` agree, and the store makes a new version of it, or nothing when the
content is unchanged. Connector sources (`git:`, `confluence:`, `notion:`) have exact paths of
their own and are never matched this way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from ddoc.platform import audit

CONNECTOR_PREFIXES = ("git:", "confluence:", "notion:")


@dataclass(frozen=True)
class Resolved:
    source_path: str | None  # the path to store under
    runbook_id: str | None = None  # the runbook to store into, when the path cannot find it


def parts(path: str) -> list[str]:
    """A relative POSIX path's components, without `.` and empty ones."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def same_file(a: str, b: str) -> bool:
    """Whether two source paths can name one file: the shorter one's components end the longer's
    (`x.md` ~ `examples/x.md` ~ `repo/examples/x.md`; `a/x.md` !~ `b/x.md`)."""
    pa, pb = parts(a), parts(b)
    if not pa or not pb:
        return False
    short, long_ = (pa, pb) if len(pa) <= len(pb) else (pb, pa)
    return long_[len(long_) - len(short) :] == short


def resolve(
    engine: Engine,
    *,
    tenant_id: str,
    source_path: str | None,
    content: str,
    fmt: str,
    title: str,
    actor: str,
) -> Resolved:
    """Where to store a document (see the module's docstring); the path unchanged when it is
    new, already stored, or a connector's."""
    as_given = Resolved(source_path)
    if source_path is not None and (
        source_path.startswith(CONNECTOR_PREFIXES) or not parts(source_path)
    ):
        return as_given
    digest = hashlib.sha256(content.encode()).hexdigest()
    with Session(engine) as session:
        if source_path is not None and _exists(session, tenant_id, source_path):
            return as_given
        candidates = _candidates(session, tenant_id, source_path, digest, fmt)
        same = [c for c in candidates if c.content_sha256 == digest and c.format == fmt]
        matched = [
            c
            for c in candidates
            if (
                c.source_path is not None
                and source_path is not None
                and same_file(c.source_path, source_path)
                and (c in same or c.title == title)
            )
            or (c in same and (c.source_path is None or source_path is None))
        ]
        identical = [c for c in matched if c in same]
        chosen = identical if len(identical) == 1 else matched
        if len(chosen) != 1:
            return as_given
        runbook = chosen[0]
        if source_path is None or runbook.source_path == source_path:
            return Resolved(runbook.source_path, runbook_id=runbook.id)
        try:
            session.execute(
                text(
                    "UPDATE runbooks SET source_path = :path, updated_at = now()"
                    " WHERE id = :id AND tenant_id = :tenant"
                ),
                {"path": source_path, "id": runbook.id, "tenant": tenant_id},
            )
            audit.append(
                session,
                tenant_id=tenant_id,
                actor=actor,
                action="runbook.source_path_changed",
                subject=runbook.id,
                data={
                    "from": runbook.source_path,
                    "to": source_path,
                    "reason": "the same file, added another way",
                },
            )
            session.commit()
        except IntegrityError:
            # A concurrent store took the path first: it is found there.
            session.rollback()
            return as_given
    return Resolved(source_path, runbook_id=runbook.id)


@dataclass(frozen=True)
class _Candidate:
    id: str
    source_path: str | None
    title: str
    content_sha256: str
    format: str


def _exists(session: Session, tenant_id: str, source_path: str) -> bool:
    found = session.execute(
        text("SELECT 1 FROM runbooks WHERE tenant_id = :tenant AND source_path = :path"),
        {"tenant": tenant_id, "path": source_path},
    ).first()
    return found is not None


def _candidates(
    session: Session, tenant_id: str, source_path: str | None, digest: str, fmt: str
) -> list[_Candidate]:
    current = (
        "SELECT r.id, r.source_path, r.title, v.content_sha256, v.format FROM runbooks r"
        " JOIN runbook_versions v ON v.tenant_id = r.tenant_id AND v.runbook_id = r.id"
        " AND v.version = r.current_version WHERE r.tenant_id = :tenant AND "
    )
    rows: list[Any] = []
    if source_path is not None:
        name = parts(source_path)[-1]
        # The same file name, as a whole path or after a folder: `same_file` decides the rest.
        rows += session.execute(
            text(current + "(r.source_path = :name OR right(r.source_path, :n) = :slash_name)"),
            {"tenant": tenant_id, "name": name, "n": len(name) + 1, "slash_name": f"/{name}"},
        ).all()
        rows += session.execute(
            text(current + "r.source_path IS NULL AND v.content_sha256 = :digest"),
            {"tenant": tenant_id, "digest": digest},
        ).all()
    else:
        rows += session.execute(
            text(current + "v.content_sha256 = :digest AND v.format = :fmt"),
            {"tenant": tenant_id, "digest": digest, "fmt": fmt},
        ).all()
    return [
        _Candidate(r.id, r.source_path, r.title, r.content_sha256, r.format)
        for r in rows
        if not (r.source_path or "").startswith(CONNECTOR_PREFIXES)
    ]
