-- The copilot engine: decisions and waits on steps, compensations, and the events notifiers read.

ALTER TABLE executions ADD COLUMN current_step text;

ALTER TABLE execution_steps ADD COLUMN undoes text;              -- a compensation: the step it undoes
ALTER TABLE execution_steps ADD COLUMN decisions jsonb NOT NULL DEFAULT '[]';
ALTER TABLE execution_steps ADD COLUMN awaiting jsonb;          -- what a human is asked, until when
ALTER TABLE execution_steps ADD COLUMN edited_by text;

-- Every transition, in order, for notifiers (Slack, ...): they read from their last id, and
-- LISTEN on channel `ddoc_execution_events` to be woken (the payload is the execution id).
CREATE TABLE execution_events (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    execution_id  text NOT NULL REFERENCES executions (id),
    at            timestamptz NOT NULL DEFAULT now(),
    type          text NOT NULL,
    step_id       text,
    data          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX execution_events_execution ON execution_events (execution_id, id);
CREATE INDEX execution_events_tenant ON execution_events (tenant_id, id);
