"""The matcher on real Postgres (full-text, pgvector) with the real embedding model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.alerts.matching import Matcher
from ddoc.alerts.sources import GenericAlert, NormalizedAlert, normalize_generic
from ddoc.runbooks import search
from ddoc.runbooks.embedding import default_embedder
from tests.conftest import store_runbooks

TENANT = "acme"

RUNBOOKS = {
    "disk.md": """---
title: Disk almost full on a database host
alerts: [PostgresDiskFull]
services: [postgres]
---
# Disk almost full on a database host

The PostgreSQL data volume is running out of space; writes will fail soon.

1. Check free space: `df -h /var/lib/postgresql`
""",
    "cert.md": """---
title: TLS certificate expiring
labels: {team: edge, kind: certificate}
---
# TLS certificate expiring

A certificate served by the load balancer expires within days.

1. Show its expiry: `openssl x509 -noout -enddate -in /etc/ssl/site.pem`
""",
    "queue-a.md": """---
title: Orders queue backlog
alerts: [QueueBacklog]
services: [orders]
---
# Orders queue backlog

1. Show the queue depth: `rabbitmqctl list_queues name messages`
""",
    "queue-b.md": """---
title: Billing queue backlog
alerts: [QueueBacklog]
services: [billing]
---
# Billing queue backlog

1. Show the queue depth: `rabbitmqctl list_queues name messages`
""",
}


@pytest.fixture
def loaded(engine: Engine) -> Iterator[Engine]:
    store_runbooks(engine, TENANT, RUNBOOKS)
    yield engine


def alert(**fields: object) -> NormalizedAlert:
    return normalize_generic(GenericAlert.model_validate(fields))[0]


def paths(result_candidates: list) -> list[str | None]:  # type: ignore[type-arg]
    return [c.source_path for c in result_candidates]


def test_explicit_alert_name_and_label_selector(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        by_name = matcher.match(
            session,
            tenant_id=TENANT,
            alert=alert(title="x", labels={"alertname": "PostgresDiskFull"}),
        )
        by_labels = matcher.match(
            session,
            tenant_id=TENANT,
            alert=alert(title="cert", labels={"team": "edge", "kind": "certificate", "x": "y"}),
        )
    assert by_name.attached is not None and by_name.attached.source_path == "disk.md"
    assert by_labels.attached is not None and by_labels.attached.source_path == "cert.md"
    assert by_labels.attached.reasons == [
        "its label selector kind=certificate, team=edge matches the alert"
    ]


def test_several_explicit_runbooks_need_a_service_or_a_human(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        ambiguous = matcher.match(
            session, tenant_id=TENANT, alert=alert(title="q", labels={"alertname": "QueueBacklog"})
        )
        billing = matcher.match(
            session,
            tenant_id=TENANT,
            alert=alert(title="q", service="billing", labels={"alertname": "QueueBacklog"}),
        )
    assert ambiguous.attached is None
    assert sorted(paths(ambiguous.candidates)) == ["queue-a.md", "queue-b.md"]
    assert billing.attached is not None and billing.attached.source_path == "queue-b.md"


def test_text_only_alert_ranks_the_right_runbook_first(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        ranked = matcher.rank(
            session,
            tenant_id=TENANT,
            alert=alert(title="The postgres data disk is nearly out of free space"),
        )
    assert ranked[0][1].source_path == "disk.md"
    assert any(r.startswith("semantic similarity") for r in ranked[0][1].reasons)


def test_lookalike_written_for_another_alert_is_never_attached(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        result = matcher.match(
            session,
            tenant_id=TENANT,
            alert=alert(
                title="Disk almost full on a database host",
                description="The PostgreSQL data volume is running out of space",
                labels={"alertname": "MysqlDiskFull"},
            ),
        )
    assert result.attached is None
    assert result.candidates[0].source_path == "disk.md"
    assert (
        "not attached: written for PostgresDiskFull, not MysqlDiskFull"
        in result.candidates[0].reasons
    )


def test_unrelated_alert_gets_no_confident_match(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        result = matcher.match(
            session,
            tenant_id=TENANT,
            alert=alert(title="Kubernetes node kernel panic detected on worker-7"),
        )
    assert result.attached is None


def test_embeddings_of_another_model_are_redone(loaded: Engine) -> None:
    with loaded.begin() as conn:
        conn.execute(text("UPDATE runbook_embeddings SET model = 'old-model'"))
    embedder = default_embedder()
    assert search.reembed_stale(loaded, embedder) == len(RUNBOOKS)
    with loaded.connect() as conn:
        models = conn.execute(text("SELECT DISTINCT model FROM runbook_embeddings")).scalars().all()
    assert models == [embedder.model_name]
    assert search.reembed_stale(loaded, embedder) == 0


def test_embedder_is_safe_to_share_between_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    embedder = default_embedder()
    texts = [f"disk nearly full on host {i}" for i in range(32)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        vectors = list(pool.map(lambda t: embedder.embed([t])[0], texts))
    assert [len(v) for v in vectors] == [384] * 32
    assert vectors[3] == embedder.embed([texts[3]])[0]
