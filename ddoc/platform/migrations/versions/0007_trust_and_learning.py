"""Progressive trust, resolution tracking, the learning loop, the API's database role."""

from ddoc.platform.migrations import run_sql

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    run_sql(revision)
