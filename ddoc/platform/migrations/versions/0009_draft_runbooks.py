"""Draft runbooks: made from what engineers did; they match no alert until published."""

from ddoc.platform.migrations import run_sql

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    run_sql(revision)
