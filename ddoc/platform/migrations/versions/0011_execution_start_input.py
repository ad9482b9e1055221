"""The outbox of execution starts: each execution keeps the workflow input it is started with."""

from ddoc.platform.migrations import run_sql

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    run_sql(revision)
