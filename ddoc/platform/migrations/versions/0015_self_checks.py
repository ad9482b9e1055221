"""Self-checks: each run of a tenant's self-check, and each runbook's result in it."""

from ddoc.platform.migrations import run_sql

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    run_sql(revision)
