"""Fire drills: a runbook practised by a team against a sandbox environment."""

from ddoc.platform.migrations import run_sql

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    run_sql(revision)
