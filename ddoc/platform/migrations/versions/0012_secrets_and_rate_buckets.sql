-- Tenant secrets (ddoc/platform/secrets.py): envelope encryption. Each value is encrypted with
-- its own random AES-256 data key (AES-GCM, `ciphertext` = nonce || sealed value), and the data
-- key with a master key from the environment (`wrapped_key` = nonce || sealed data key), which
-- never reaches the database: `key_id` names it, so `ddoc secrets rotate` can re-wrap under a
-- new one. Both are bound to (tenant_id, name): a row copied elsewhere does not decrypt.
CREATE TABLE secrets (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    ciphertext  bytea NOT NULL,
    wrapped_key bytea NOT NULL,
    key_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX secrets_key_id ON secrets (key_id);

-- Webhook rate limits (ddoc/platform/ratelimit.py): one token bucket per tenant, shared by every
-- API process, taken with one upsert per delivery on the database's clock. Unlogged: after a
-- database crash the buckets start full again, which is all they would lose.
CREATE UNLOGGED TABLE webhook_rate_buckets (
    tenant_id  text PRIMARY KEY REFERENCES tenants (id),
    tokens     double precision NOT NULL,
    granted    boolean NOT NULL,           -- whether the last take was let through
    updated_at timestamptz NOT NULL
);
