-- Self-checks (docs/decisions/0018-self-checks.md, issue 21): a tenant's Temporal Schedule runs
-- the SelfCheck workflow, which probes every active runbook on an agent. One row per run
-- (derived from the workflow run, so a retried plan finds its row); the findings about the run
-- itself (agent offline, runbooks over the limit) are kept here.
CREATE TABLE self_check_runs (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    workflow_id      text NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    environment      text NOT NULL,
    run_read_only    boolean NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    findings         jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{kind, message, step_id}]
    checked          integer NOT NULL DEFAULT 0,          -- runbooks with a result in this run
    failing          integer NOT NULL DEFAULT 0,          -- of them: failed (never passed)
    drifted          integer NOT NULL DEFAULT 0,          -- of them: failing after a pass
    digest           text                                 -- the weekly Slack digest: posted, skipped: …
);
CREATE INDEX self_check_runs_tenant ON self_check_runs (tenant_id, started_at DESC);

-- A runbook's result in one run. `failing_since` is the first failing run of the current streak,
-- kept on every result until one passes; `status` is drifted when that streak began after a
-- passed result, failed when it did not.
CREATE TABLE self_check_results (
    run_id         text NOT NULL REFERENCES self_check_runs (id),
    tenant_id      text NOT NULL REFERENCES tenants (id),
    runbook_id     text NOT NULL REFERENCES runbooks (id),
    version        integer NOT NULL,
    run_at         timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL CHECK (status IN ('passed', 'failed', 'drifted')),
    findings       jsonb NOT NULL DEFAULT '[]'::jsonb,    -- [{step_id, kind, message, failing}]
    failing_since  timestamptz,
    agent          text,                                  -- the host and queue that checked
    PRIMARY KEY (run_id, runbook_id)
);
CREATE INDEX self_check_results_latest ON self_check_results (tenant_id, runbook_id, run_at DESC);
