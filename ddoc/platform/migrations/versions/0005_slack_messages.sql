-- The Slack message of each execution: where it is, and how far it has caught up.

CREATE TABLE slack_messages (
    execution_id     text PRIMARY KEY REFERENCES executions (id),
    tenant_id        text NOT NULL REFERENCES tenants (id),
    channel          text NOT NULL,
    ts               text NOT NULL,
    synced_event_id  bigint NOT NULL DEFAULT 0,   -- execution_events up to here are posted
    posted_outputs   text[] NOT NULL DEFAULT '{}', -- steps whose output is in the thread
    updated_at       timestamptz NOT NULL DEFAULT now()
);
