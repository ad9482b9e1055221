"""Learned triggers and the URLs that show a runbook."""

from ddoc.platform.migrations import run_sql

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    run_sql(revision)
