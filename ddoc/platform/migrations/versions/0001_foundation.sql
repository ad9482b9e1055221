-- Foundation schema: tenants, API keys, versioned runbooks, incidents and alerts, executions
-- with per-step records, and the hash-chained audit log. Every row carries its tenant.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tenants (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    webhook_token_hash  text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,   -- sha256 of the key; keys are 256-bit random
    key_prefix  text NOT NULL,          -- first characters, to tell keys apart in listings
    roles       text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE runbooks (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    title            text NOT NULL,
    source_path      text,
    current_version  integer NOT NULL,
    alert_names      text[] NOT NULL DEFAULT '{}',  -- explicit triggers of the current version
    services         text[] NOT NULL DEFAULT '{}',
    trust_level      text NOT NULL DEFAULT 'copilot',
    archived_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX runbooks_source_path ON runbooks (tenant_id, source_path)
    WHERE source_path IS NOT NULL;
CREATE INDEX runbooks_alert_names ON runbooks USING gin (alert_names);
CREATE INDEX runbooks_tenant ON runbooks (tenant_id);

CREATE TABLE runbook_versions (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    runbook_id      text NOT NULL REFERENCES runbooks (id),
    version         integer NOT NULL,
    format          text NOT NULL,
    content         text NOT NULL,
    content_sha256  text NOT NULL,
    parsed          jsonb NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (runbook_id, version)
);

-- Immutable rows are enforced by the database, not only by the code that writes them.
CREATE FUNCTION ddoc_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER runbook_versions_immutable BEFORE UPDATE OR DELETE ON runbook_versions
    FOR EACH ROW EXECUTE FUNCTION ddoc_reject_change();

CREATE TABLE incidents (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    dedup_key        text NOT NULL,
    source           text NOT NULL,
    status           text NOT NULL,          -- open | resolved
    title            text NOT NULL,
    service          text,
    severity         text,
    environment      text,
    labels           jsonb NOT NULL DEFAULT '{}',
    annotations      jsonb NOT NULL DEFAULT '{}',
    alert_count      integer NOT NULL DEFAULT 1,
    match_status     text NOT NULL,          -- attached | suggested | unmatched
    match            jsonb,
    runbook_id       text REFERENCES runbooks (id),
    runbook_version  integer,
    execution_id     text,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz
);
-- One open incident per dedup key: the database settles racing webhook deliveries.
CREATE UNIQUE INDEX incidents_open_dedup ON incidents (tenant_id, dedup_key) WHERE status = 'open';
CREATE INDEX incidents_tenant_opened ON incidents (tenant_id, opened_at DESC);

CREATE TABLE alerts (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    incident_id  text REFERENCES incidents (id),
    source       text NOT NULL,
    dedup_key    text NOT NULL,
    status       text NOT NULL,              -- firing | resolved
    title        text NOT NULL,
    description  text,
    service      text,
    severity     text,
    environment  text,
    labels       jsonb NOT NULL DEFAULT '{}',
    annotations  jsonb NOT NULL DEFAULT '{}',
    links        jsonb NOT NULL DEFAULT '[]',
    raw          jsonb NOT NULL,
    starts_at    timestamptz,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE executions (
    id               text PRIMARY KEY,       -- also the Temporal workflow id
    tenant_id        text NOT NULL REFERENCES tenants (id),
    incident_id      text REFERENCES incidents (id),
    runbook_id       text NOT NULL REFERENCES runbooks (id),
    runbook_version  integer NOT NULL,
    mode             text NOT NULL,
    status           text NOT NULL,
    environment      text NOT NULL,
    started_by       text,
    -- false until Temporal confirmed the start: a retried webhook delivery finishes the job
    workflow_started boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX executions_tenant_status ON executions (tenant_id, status);

CREATE TABLE execution_steps (
    execution_id      text NOT NULL REFERENCES executions (id),
    step_id           text NOT NULL,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    position          integer NOT NULL,
    kind              text NOT NULL,
    text              text NOT NULL,
    command           text,
    risk              text,
    status            text NOT NULL,
    exit_code         integer,
    output            text,
    output_truncated  boolean NOT NULL DEFAULT false,
    detail            text,
    started_at        timestamptz,
    finished_at       timestamptz,
    PRIMARY KEY (execution_id, step_id)
);

CREATE TABLE audit_events (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    seq        bigint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text NOT NULL,
    data       jsonb NOT NULL DEFAULT '{}',
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION ddoc_reject_change();
