-- Fire drills (ddoc/execution/drills.py, issue 21): an execution in mode `drill` for a team,
-- against a sandbox environment (its own agent task queue), with a simulated alert. It never
-- pages anyone. The score card is computed from the execution's trail when read, so it is
-- always the trail's; the team and the sandbox are kept here.
CREATE TABLE drills (
    execution_id text PRIMARY KEY REFERENCES executions (id),
    tenant_id    text NOT NULL REFERENCES tenants (id),
    runbook_id   text NOT NULL REFERENCES runbooks (id),
    team         text NOT NULL,
    environment  text NOT NULL,
    alert_title  text NOT NULL,
    started_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drills_team ON drills (tenant_id, runbook_id, team, created_at);
