"""Breakpoints on a runbook's steps, and each execution step's parallel group."""

from ddoc.platform.migrations import run_sql

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    run_sql(revision)
