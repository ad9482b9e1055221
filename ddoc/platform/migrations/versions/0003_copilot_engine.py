"""The copilot engine: step decisions and waits, compensations, notifier events."""

from ddoc.platform.migrations import run_sql

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    run_sql(revision)
