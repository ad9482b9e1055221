-- The Slack message of an incident that got no runbook attached (suggestions, or none).

CREATE TABLE slack_incident_messages (
    incident_id  text PRIMARY KEY REFERENCES incidents (id),
    tenant_id    text NOT NULL REFERENCES tenants (id),
    channel      text NOT NULL,
    ts           text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
