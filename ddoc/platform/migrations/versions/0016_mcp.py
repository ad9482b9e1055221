"""MCP: a rate bucket per API key for its MCP calls."""

from ddoc.platform.migrations import run_sql

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    run_sql(revision)
