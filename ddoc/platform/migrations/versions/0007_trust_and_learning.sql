-- Progressive trust, resolution tracking, the learning loop, and the API's own database role.

-- Every change of a runbook's trust level, with the evidence it was judged on.
CREATE TABLE trust_changes (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    runbook_id    text NOT NULL REFERENCES runbooks (id),
    at            timestamptz NOT NULL DEFAULT now(),
    from_level    text NOT NULL,
    to_level      text NOT NULL,
    kind          text NOT NULL,            -- promoted | demoted | forced | auto_demoted
    reason        text NOT NULL,
    actor         text NOT NULL,
    execution_id  text,                     -- the execution that caused an automatic demotion
    evidence      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX trust_changes_runbook ON trust_changes (tenant_id, runbook_id, id);

-- A human's edit keeps the runbook's command beside the one that ran.
ALTER TABLE execution_steps ADD COLUMN original_command text;

CREATE INDEX executions_runbook ON executions (tenant_id, runbook_id, created_at DESC);

-- A revision learned from executions: a diff against base_version an editor accepts (it becomes
-- the next version) or dismisses (the same changes are not suggested again).
CREATE TABLE runbook_suggestions (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    runbook_id       text NOT NULL REFERENCES runbooks (id),
    base_version     integer NOT NULL,
    status           text NOT NULL,         -- open | accepted | dismissed | superseded
    fingerprint      text NOT NULL,         -- the changes, hashed: a dismissed set stays dismissed
    changes          jsonb NOT NULL,
    content          text NOT NULL,         -- the proposed next version
    diff             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    decided_by       text,
    decision_reason  text,
    accepted_version integer
);
CREATE INDEX runbook_suggestions_runbook ON runbook_suggestions (tenant_id, runbook_id, created_at);
CREATE UNIQUE INDEX runbook_suggestions_one_open ON runbook_suggestions (tenant_id, runbook_id)
    WHERE status = 'open';

-- The role the API and workers run as (deployments make a login role a member of it). It may
-- read and write the product's tables but never change or remove an audit event or a runbook
-- version: the grants themselves are (re)applied by `ddoc migrate` (ddoc/db.py), so tables
-- added later are covered. Creating a role needs CREATEROLE; without it, a DBA creates it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ddoc_app') THEN
        CREATE ROLE ddoc_app NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role ddoc_app: ask a DBA to create it (NOLOGIN)';
END
$$;
