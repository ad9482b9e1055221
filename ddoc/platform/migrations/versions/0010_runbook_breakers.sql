-- Circuit breakers (docs/LIMITS.md, ddoc/trust/breaker.py): when a runbook's executions end
-- failed or rolled back often enough within the tenant's window, its breaker opens and intake
-- runs it in copilot instead of autopilot until a human resumes it. One row per opening, kept
-- after the resume; at most one open per runbook.
CREATE TABLE runbook_breakers (
    id                  text PRIMARY KEY,
    tenant_id           text NOT NULL REFERENCES tenants (id),
    runbook_id          text NOT NULL REFERENCES runbooks (id),
    opened_at           timestamptz NOT NULL DEFAULT now(),
    reason              text NOT NULL,
    execution_ids       text[] NOT NULL,      -- the failed or rolled-back executions counted
    opened_by_execution text NOT NULL,        -- the execution whose end opened it
    paged_at            timestamptz,          -- the owner was paged (or told no pager is set)
    page_detail         text,
    resumed_at          timestamptz,
    resumed_by          text,
    resume_reason       text
);
CREATE INDEX runbook_breakers_runbook ON runbook_breakers (tenant_id, runbook_id, opened_at);
CREATE UNIQUE INDEX runbook_breakers_one_open ON runbook_breakers (tenant_id, runbook_id)
    WHERE resumed_at IS NULL;
