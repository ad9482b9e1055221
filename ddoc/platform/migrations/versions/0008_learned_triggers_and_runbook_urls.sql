-- Learned triggers (a responder's pick, remembered by the alert's fingerprint) and the URLs
-- that show a runbook (matched against alerts' runbook_url). docs/decisions/0007.

-- One learned trigger per alert fingerprint in a tenant: a later pick of another runbook for the
-- same fingerprint replaces it. Removed ones are deleted; the audit log keeps their history.
CREATE TABLE learned_triggers (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    runbook_id       text NOT NULL REFERENCES runbooks (id),
    fingerprint      text NOT NULL,         -- SHA-256 of the parts below (ddoc/fingerprints.py)
    source           text NOT NULL,
    alert_name       text,
    service          text,                  -- masked
    title_pattern    text NOT NULL,         -- the masked title, shortened for display
    incident_id      text REFERENCES incidents (id),
    created_by       text NOT NULL,         -- actor id (api_key:…, user:…)
    created_by_name  text NOT NULL,         -- who picked, as people know them
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX learned_triggers_fingerprint ON learned_triggers (tenant_id, fingerprint);
CREATE INDEX learned_triggers_runbook ON learned_triggers (tenant_id, runbook_id);

-- The fingerprint of the alert that opened the incident: a pick learns it.
ALTER TABLE incidents ADD COLUMN fingerprint jsonb;

-- URLs that show a runbook: given by its source on import (source_urls, kept until the source
-- gives others), plus front-matter `urls:`; url_keys are their normalised forms for lookup.
ALTER TABLE runbooks ADD COLUMN source_urls text[] NOT NULL DEFAULT '{}';
ALTER TABLE runbooks ADD COLUMN urls text[] NOT NULL DEFAULT '{}';
ALTER TABLE runbooks ADD COLUMN url_keys text[] NOT NULL DEFAULT '{}';
CREATE INDEX runbooks_url_keys ON runbooks USING gin (url_keys);
