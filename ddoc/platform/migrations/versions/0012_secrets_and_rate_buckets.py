"""Tenant secrets encrypted at rest, and webhook rate limits shared by the API processes."""

from ddoc.platform.migrations import run_sql

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    run_sql(revision)
