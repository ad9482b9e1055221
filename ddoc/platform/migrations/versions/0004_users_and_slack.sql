-- People who decide (responders): their roles, and how Slack identifies them.

CREATE TABLE users (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    email          text NOT NULL,
    display_name   text NOT NULL,
    roles          text[] NOT NULL,
    slack_user_id  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);
CREATE UNIQUE INDEX users_slack ON users (tenant_id, slack_user_id) WHERE slack_user_id IS NOT NULL;

-- Signed Slack requests already seen (by signature), so a replay inside the 5-minute window is
-- refused; older rows are useless (the timestamp check refuses them) and are pruned.
CREATE TABLE slack_requests (
    signature    text PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now()
);
