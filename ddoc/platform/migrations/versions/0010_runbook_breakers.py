"""Circuit breakers: a runbook whose executions keep failing has its autopilot suspended."""

from ddoc.platform.migrations import run_sql

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    run_sql(revision)
