"""The schema's Alembic revisions: `versions/NNNN_name.py` runs the SQL of `versions/NNNN_name.sql`.

A schema change is a new pair of files: copy the last revision, set `revision` to the next
number (four digits) and `down_revision` to the last one's, and write its SQL. Never edit a
released revision: `ddoc.platform.db.migrate` refuses to run while an applied revision's SQL
differs from what the database recorded when it ran it.
"""

from __future__ import annotations

from pathlib import Path

# Alembic's script directory (env.py here, the revisions in versions/).
DIRECTORY = Path(__file__).parent


def sql_file(revision: str) -> Path:
    """The one SQL file of a revision, named after it."""
    (path,) = (DIRECTORY / "versions").glob(f"{revision}_*.sql")
    return path


def sql_text(revision: str) -> str:
    """What a revision runs, and what its checksum is taken of."""
    return sql_file(revision).read_text(encoding="utf-8")


def run_sql(revision: str) -> None:
    """Run a revision's SQL on the migrating connection, straight to psycopg without parameters:
    the simple-query protocol runs a whole multi-statement file, and `%` in PL/pgSQL is not taken
    for a placeholder."""
    from alembic import op  # only ever called by Alembic (and imported late: see db.py)

    driver_conn = op.get_bind().connection.driver_connection
    assert driver_conn is not None
    driver_conn.execute(sql_text(revision).encode())
