-- Tenant settings, webhook delivery de-duplication, and the search data for alert matching.

ALTER TABLE tenants ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';

-- At-least-once senders (PagerDuty) repeat deliveries with the same id: remember them.
CREATE TABLE webhook_deliveries (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    source       text NOT NULL,
    delivery_id  text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source, delivery_id)
);

-- What matching searches: the current version's text, as a weighted tsvector.
ALTER TABLE runbooks ADD COLUMN search_text text NOT NULL DEFAULT '';
ALTER TABLE runbooks ADD COLUMN search_tsv tsvector NOT NULL DEFAULT ''::tsvector;
CREATE INDEX runbooks_search_tsv ON runbooks USING gin (search_tsv);

-- One embedding per runbook (its current version), with the model that made it: a model
-- change is detected and re-embeds.
CREATE TABLE runbook_embeddings (
    runbook_id  text PRIMARY KEY REFERENCES runbooks (id),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    version     integer NOT NULL,
    model       text NOT NULL,
    dimension   integer NOT NULL,
    embedding   vector(384) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runbook_embeddings_hnsw ON runbook_embeddings
    USING hnsw (embedding vector_cosine_ops);
CREATE INDEX runbook_embeddings_tenant ON runbook_embeddings (tenant_id);

-- Multi-alert correlation: an incident can gather several dedup keys (alerts of one service
-- within a window). Each open key belongs to one incident.
CREATE TABLE incident_keys (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    dedup_key    text NOT NULL,
    incident_id  text NOT NULL REFERENCES incidents (id),
    open         boolean NOT NULL DEFAULT true,
    alert_count  integer NOT NULL DEFAULT 1,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX incident_keys_open ON incident_keys (tenant_id, dedup_key) WHERE open;
CREATE INDEX incident_keys_incident ON incident_keys (incident_id);
CREATE INDEX incidents_open_service ON incidents (tenant_id, service, opened_at DESC)
    WHERE status = 'open';

-- Label selectors a runbook declares (`labels:` in its front-matter): an explicit trigger.
ALTER TABLE runbooks ADD COLUMN trigger_labels jsonb NOT NULL DEFAULT '{}';
CREATE INDEX runbooks_trigger_labels ON runbooks USING gin (trigger_labels);
