"""Foundation: tenants, API keys, versioned runbooks, incidents, executions, the audit log."""

from ddoc.platform.migrations import run_sql

revision = "0001"
down_revision = None


def upgrade() -> None:
    run_sql(revision)
