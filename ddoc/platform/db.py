"""Database engine and versioned schema migrations.

Migrations are the SQL files in `ddoc/platform/migrations/`, applied in order at start-up inside one
transaction under an advisory lock, so two processes starting together (API and worker) and a
second start both leave the schema exactly once migrated.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import Connection, Engine, create_engine, text
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
    for entry in resources.files("ddoc.platform.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


# The API's role may do anything to the product's rows except change the record: audit events
# and runbook versions are insert-only for it (the append-only trigger also stops the owner).
APP_ROLE = "ddoc_app"
_INSERT_ONLY_TABLES = ("audit_events", "runbook_versions")
_GRANTS = f"""
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM {APP_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(_INSERT_ONLY_TABLES)} FROM {APP_ROLE};
"""


class MigrationsPending(RuntimeError):
    pass


def migrate(engine: Engine) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call.

    A role that cannot change the schema (the API's `ddoc_app` role) passes when nothing is
    pending, and otherwise gets `MigrationsPending` naming what to run."""
    applied_now: list[int] = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        done: dict[int, str] = {}
        if conn.execute(text("SELECT to_regclass('schema_migrations')")).scalar() is not None:
            done = {
                row.version: row.checksum
                for row in conn.execute(text("SELECT version, checksum FROM schema_migrations"))
            }
        pending = [m for m in migrations() if m.version not in done]
        if not _owns_schema(conn):
            if pending:
                raise MigrationsPending(
                    f"{len(pending)} database migration(s) pending and this role cannot apply "
                    "them: run `ddoc migrate` with DDOC_DATABASE_URL set to the owner's URL"
                )
            return []
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
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
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).first():
            driver_conn = conn.connection.driver_connection
            assert driver_conn is not None
            driver_conn.execute(_GRANTS.encode())
    return applied_now


def _owns_schema(conn: Connection) -> bool:
    """Whether this role may change the schema: a superuser, or the owner of the tables (a
    database no one has migrated yet counts as this role's to create)."""
    row = conn.execute(
        text(
            "SELECT r.rolsuper, t.tableowner FROM pg_roles r"
            " LEFT JOIN pg_tables t"
            " ON t.schemaname = 'public' AND t.tablename = 'schema_migrations'"
            " WHERE r.rolname = current_user"
        )
    ).one()
    return bool(row.rolsuper) or row.tableowner is None or row.tableowner == _current(conn)


def _current(conn: Connection) -> str:
    return str(conn.execute(text("SELECT current_user")).scalar_one())


def check(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
