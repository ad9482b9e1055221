"""Database engine and versioned schema migrations.

Migrations are the SQL files in `ddoc/migrations/`, applied in order at start-up inside one
transaction under an advisory lock, so two processes starting together (API and worker) and a
second start both leave the schema exactly once migrated.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process of a deployment.
_MIGRATION_LOCK_ID = 0x64643063


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def sqlalchemy_url(database_url: str) -> str:
    """Accept plain `postgresql://` URLs (what operators have) and pick the psycopg 3 driver."""
    url = make_url(database_url)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def make_engine(database_url: str, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    return create_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
    )


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("ddoc.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def migrate(engine: Engine) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    applied_now: list[int] = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        done = {
            row.version: row.checksum
            for row in conn.execute(text("SELECT version, checksum FROM schema_migrations"))
        }
        for migration in migrations():
            checksum = hashlib.sha256(migration.sql.encode()).hexdigest()
            if migration.version in done:
                if done[migration.version] != checksum:
                    # An applied migration was edited: the schema may not be what the code expects.
                    log.warning(
                        "migration %04d was changed after it was applied", migration.version
                    )
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            # Straight to psycopg without parameters: the simple-query protocol runs a whole
            # multi-statement file, and `%` in PL/pgSQL is not taken for a placeholder.
            driver_conn = conn.connection.driver_connection
            assert driver_conn is not None
            driver_conn.execute(migration.sql.encode())
            conn.execute(
                text("INSERT INTO schema_migrations (version, name, checksum) VALUES (:v, :n, :c)"),
                {"v": migration.version, "n": migration.name, "c": checksum},
            )
            applied_now.append(migration.version)
    return applied_now


def check(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
