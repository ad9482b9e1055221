-- MCP (docs/decisions/0020-mcp-server.md): each API key's rate bucket for its MCP calls, shared
-- by every API process like the webhooks' (UNLOGGED: a lost bucket after a crash starts full).
CREATE UNLOGGED TABLE api_key_rate_buckets (
    key_id     text PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    tokens     double precision NOT NULL,
    granted    boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
