"""The Slack message of each execution."""

from ddoc.platform.migrations import run_sql

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    run_sql(revision)
