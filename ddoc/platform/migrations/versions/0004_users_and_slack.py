"""Responders: their roles, and how Slack identifies them."""

from ddoc.platform.migrations import run_sql

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    run_sql(revision)
