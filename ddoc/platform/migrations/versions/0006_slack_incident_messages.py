"""The Slack message of an incident that got no runbook attached."""

from ddoc.platform.migrations import run_sql

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    run_sql(revision)
