"""SQLModel mappings of the tables that `ddoc/platform/migrations/versions/*.sql` creates.

The SQL files own the schema; these classes only map it (a test checks the two agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import Column, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _now() -> Any:
    return Field(
        default_factory=lambda: datetime.now(UTC),
        sa_column=Column(DateTime(timezone=True), nullable=False),
    )


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSONB, nullable=False))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True)
    name: str
    webhook_token_hash: str | None = None
    settings: dict[str, Any] = _json(dict)
    created_at: datetime = _now()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(primary_key=True)
    tenant_id: str
    name: str
    key_hash: str
    key_prefix: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    created_at: datetime = _now()
    revoked_at: datetime | None = _ts()


class Runbook(SQLModel, table=True):
    __tablename__ = "runbooks"
    id: str = Field(primary_key=True)
    tenant_id: str
    title: str
    source_path: str | None = None
    current_version: int
    alert_names: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    services: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    trigger_labels: dict[str, Any] = _json(dict)
    search_text: str = ""
    # search_tsv (tsvector) is written only by SQL in ddoc/runbooks/search.py and stays unmapped.
    trust_level: str = "copilot"
    # URLs that show the runbook (ddoc/alerts/runbook_urls.py): from its source, and all with the
    # front-matter's; url_keys normalised for lookup.
    source_urls: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    urls: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    url_keys: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    archived_at: datetime | None = _ts()
    # A draft (made from a session, a history, a postmortem, an execution) matches no alert
    # until published; origin says what it was drafted from (kept after publishing).
    draft: bool = False
    origin: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # Steps every execution pauses before (step id -> who set it).
    breakpoints: dict[str, Any] = _json(dict)
    created_at: datetime = _now()
    updated_at: datetime = _now()


class RunbookVersion(SQLModel, table=True):
    __tablename__ = "runbook_versions"
    id: str = Field(primary_key=True)
    tenant_id: str
    runbook_id: str
    version: int
    format: str
    content: str
    content_sha256: str
    parsed: dict[str, Any] = _json(dict)
    created_by: str | None = None
    created_at: datetime = _now()


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    id: str = Field(primary_key=True)
    tenant_id: str
    dedup_key: str
    source: str
    status: str
    title: str
    service: str | None = None
    severity: str | None = None
    environment: str | None = None
    labels: dict[str, Any] = _json(dict)
    annotations: dict[str, Any] = _json(dict)
    alert_count: int = 1
    match_status: str
    match: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    runbook_id: str | None = None
    runbook_version: int | None = None
    execution_id: str | None = None
    # The opening alert's fingerprint (ddoc/alerts/fingerprints.py): a pick learns it.
    fingerprint: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    opened_at: datetime = _now()
    last_seen_at: datetime = _now()
    resolved_at: datetime | None = _ts()


class LearnedTrigger(SQLModel, table=True):
    __tablename__ = "learned_triggers"
    id: str = Field(primary_key=True)
    tenant_id: str
    runbook_id: str
    fingerprint: str
    source: str
    alert_name: str | None = None
    service: str | None = None
    title_pattern: str
    incident_id: str | None = None
    created_by: str
    created_by_name: str
    created_at: datetime = _now()


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    id: str = Field(primary_key=True)
    tenant_id: str
    incident_id: str | None = None
    source: str
    dedup_key: str
    status: str
    title: str
    description: str | None = None
    service: str | None = None
    severity: str | None = None
    environment: str | None = None
    labels: dict[str, Any] = _json(dict)
    annotations: dict[str, Any] = _json(dict)
    links: list[Any] = _json(list)
    raw: dict[str, Any] = _json(dict)
    starts_at: datetime | None = _ts()
    received_at: datetime = _now()


class Execution(SQLModel, table=True):
    __tablename__ = "executions"
    id: str = Field(primary_key=True)
    tenant_id: str
    incident_id: str | None = None
    runbook_id: str
    runbook_version: int
    mode: str
    status: str
    environment: str
    started_by: str | None = None
    workflow_started: bool = False
    # The workflow input, stored when the execution is created (ddoc/execution/outbox.py).
    start_input: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = _now()
    finished_at: datetime | None = _ts()
    current_step: str | None = None


class Drill(SQLModel, table=True):
    __tablename__ = "drills"
    execution_id: str = Field(primary_key=True)
    tenant_id: str
    runbook_id: str
    team: str
    environment: str
    alert_title: str
    started_by: str
    created_at: datetime = _now()


class ExecutionStep(SQLModel, table=True):
    __tablename__ = "execution_steps"
    execution_id: str = Field(primary_key=True)
    step_id: str = Field(primary_key=True)
    tenant_id: str
    position: int
    kind: str
    text: str
    command: str | None = None
    risk: str | None = None
    status: str
    exit_code: int | None = None
    output: str | None = None
    output_truncated: bool = False
    detail: str | None = None
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    undoes: str | None = None
    decisions: list[dict[str, Any]] = _json(list)
    awaiting: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    edited_by: str | None = None
    original_command: str | None = None
    parallel: str | None = None  # the parallel group it walks in


class ExecutionEventRow(SQLModel, table=True):
    __tablename__ = "execution_events"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    execution_id: str
    at: datetime = _now()
    type: str
    step_id: str | None = None
    data: dict[str, Any] = _json(dict)


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: str = Field(primary_key=True)
    tenant_id: str
    email: str
    display_name: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    slack_user_id: str | None = None
    created_at: datetime = _now()


class SlackRequest(SQLModel, table=True):
    __tablename__ = "slack_requests"
    signature: str = Field(primary_key=True)
    received_at: datetime = _now()


class SlackMessage(SQLModel, table=True):
    __tablename__ = "slack_messages"
    execution_id: str = Field(primary_key=True)
    tenant_id: str
    channel: str
    ts: str
    synced_event_id: int = 0
    posted_outputs: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    updated_at: datetime = _now()


class SlackIncidentMessage(SQLModel, table=True):
    __tablename__ = "slack_incident_messages"
    incident_id: str = Field(primary_key=True)
    tenant_id: str
    channel: str
    ts: str
    updated_at: datetime = _now()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    tenant_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    at: datetime = _now()
    actor: str
    action: str
    subject: str
    data: dict[str, Any] = _json(dict)
    prev_hash: str
    hash: str


class TrustChange(SQLModel, table=True):
    __tablename__ = "trust_changes"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    runbook_id: str
    at: datetime = _now()
    from_level: str
    to_level: str
    kind: str
    reason: str
    actor: str
    execution_id: str | None = None
    evidence: dict[str, Any] = _json(dict)


class RunbookSuggestion(SQLModel, table=True):
    __tablename__ = "runbook_suggestions"
    id: str = Field(primary_key=True)
    tenant_id: str
    runbook_id: str
    base_version: int
    status: str
    fingerprint: str
    changes: list[dict[str, Any]] = _json(list)
    content: str
    diff: str
    created_at: datetime = _now()
    decided_at: datetime | None = _ts()
    decided_by: str | None = None
    decision_reason: str | None = None
    accepted_version: int | None = None


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    tenant_id: str = Field(primary_key=True)
    source: str = Field(primary_key=True)
    delivery_id: str = Field(primary_key=True)
    received_at: datetime = _now()


class RunbookEmbedding(SQLModel, table=True):
    __tablename__ = "runbook_embeddings"
    runbook_id: str = Field(primary_key=True)
    tenant_id: str
    version: int
    model: str
    dimension: int
    embedding: Any = Field(sa_column=Column(Vector(384), nullable=False))
    created_at: datetime = _now()


class IncidentKey(SQLModel, table=True):
    __tablename__ = "incident_keys"
    # No single-column key in SQL (open keys are unique by a partial index); mapped for reads.
    tenant_id: str = Field(primary_key=True)
    dedup_key: str = Field(primary_key=True)
    incident_id: str = Field(primary_key=True)
    open: bool = True
    alert_count: int = 1
    first_seen: datetime = _now()
    last_seen: datetime = _now()


class RunbookBreaker(SQLModel, table=True):
    __tablename__ = "runbook_breakers"
    id: str = Field(primary_key=True)
    tenant_id: str
    runbook_id: str
    opened_at: datetime = _now()
    reason: str
    execution_ids: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False)
    )
    opened_by_execution: str
    paged_at: datetime | None = _ts()
    page_detail: str | None = None
    resumed_at: datetime | None = _ts()
    resumed_by: str | None = None
    resume_reason: str | None = None


class Secret(SQLModel, table=True):
    """A tenant secret, encrypted (ddoc/platform/secrets.py reads and writes it)."""

    __tablename__ = "secrets"
    tenant_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    ciphertext: bytes
    wrapped_key: bytes
    key_id: str
    created_at: datetime = _now()
    updated_at: datetime = _now()


class WebhookRateBucket(SQLModel, table=True):
    """A tenant's webhook token bucket (ddoc/platform/ratelimit.py, unlogged)."""

    __tablename__ = "webhook_rate_buckets"
    tenant_id: str = Field(primary_key=True)
    tokens: float
    granted: bool
    updated_at: datetime = _now()


class ApiKeyRateBucket(SQLModel, table=True):
    """An API key's token bucket for its MCP calls (api/mcp, ddoc/platform/ratelimit.py,
    unlogged)."""

    __tablename__ = "api_key_rate_buckets"
    key_id: str = Field(primary_key=True)
    tokens: float
    granted: bool
    updated_at: datetime = _now()


class SelfCheckRun(SQLModel, table=True):
    """One run of a tenant's self-check (ddoc/selfcheck/store.py)."""

    __tablename__ = "self_check_runs"
    id: str = Field(primary_key=True)
    tenant_id: str
    workflow_id: str
    trigger: str
    environment: str
    run_read_only: bool
    started_at: datetime = _now()
    finished_at: datetime | None = _ts()
    findings: list[dict[str, Any]] = _json(list)
    checked: int = 0
    failing: int = 0
    drifted: int = 0
    digest: str | None = None


class SelfCheckResult(SQLModel, table=True):
    """A runbook's result in one self-check run."""

    __tablename__ = "self_check_results"
    run_id: str = Field(primary_key=True)
    runbook_id: str = Field(primary_key=True)
    tenant_id: str
    version: int
    run_at: datetime = _now()
    status: str
    findings: list[dict[str, Any]] = _json(list)
    failing_since: datetime | None = _ts()
    agent: str | None = None
