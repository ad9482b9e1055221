"""Tenant settings, webhook de-duplication, the search data for alert matching."""

from ddoc.platform.migrations import run_sql

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    run_sql(revision)
