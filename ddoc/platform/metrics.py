"""Prometheus metrics of the control plane.

The API serves `/metrics`; the control-plane worker serves them on `DDOC_WORKER_METRICS_PORT`.
Counters and histograms live in the process that sees the event (webhooks and matching: API;
escalations, approvals and commands as the workflow records them: worker); the executions gauge
is read from PostgreSQL at scrape time, so every process reports the same, true number.
With `ddoc api --workers N`, set PROMETHEUS_MULTIPROC_DIR to an empty directory so the processes'
counters are summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

WEBHOOKS_RECEIVED = Counter(
    "ddoc_webhooks_received", "Alert webhook deliveries accepted, by source", ["source"]
)
WEBHOOKS_REJECTED = Counter(
    "ddoc_webhooks_rejected",
    "Alert webhook deliveries refused, by source and reason "
    "(auth, signature, invalid, duplicate, too_large, rate_limited)",
    ["source", "reason"],
)
WEBHOOK_COERCED = Counter(
    "ddoc_webhook_coerced",
    "Fields of accepted webhook deliveries that came in another shape than the usual one and were "
    "coerced (a number for a string, null, a missing per-alert status, an epoch time, …), by "
    "source and field; once per field per delivery",
    ["source", "field"],
)
MATCH_CONFIDENCE = Histogram(
    "ddoc_match_confidence",
    "Confidence of the best runbook candidate for each new incident (0 when none)",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.78, 0.85, 0.9, 0.95, 1.0),
)
APPROVAL_WAIT = Histogram(
    "ddoc_approval_wait_seconds",
    "From a step asking for approval to its approval",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
ESCALATIONS = Counter("ddoc_escalations", "Escalations of unanswered waits (pages sent or not)")
AGENT_COMMAND_SECONDS = Histogram(
    "ddoc_agent_command_seconds",
    "Run time of commands on agents, by outcome",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
AGENT_COMMAND_FAILURES = Counter(
    "ddoc_agent_command_failures", "Commands that ended with a failure on an agent"
)


class ExecutionsCollector(Collector):
    """`ddoc_executions{status}`: executions by status, counted in PostgreSQL at scrape time."""

    engine: Any = None  # the process's engine (set by register_database)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import text  # server side only

        family = GaugeMetricFamily(
            "ddoc_executions", "Executions by status (all tenants)", labels=["status"]
        )
        if self.engine is None:
            return
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT status, count(*) FROM executions GROUP BY status")
                ).all()
        except Exception:  # a scrape must not fail because the database blinked
            rows = []
        for status, count in rows:
            family.add_metric([status], count)
        yield family


_EXECUTIONS = ExecutionsCollector()
REGISTRY.register(_EXECUTIONS)


def register_database(engine: Any) -> None:
    """Count executions in this engine's database (the process's latest engine wins)."""
    _EXECUTIONS.engine = engine


def exposition() -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_EXECUTIONS)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
