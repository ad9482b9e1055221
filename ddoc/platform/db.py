"""Database engine and versioned schema migrations.

Migrations are Alembic revisions, `ddoc/platform/migrations/versions/NNNN_name.py`, each running
the raw SQL file next to it. `migrate` drives Alembic from code (no alembic.ini) inside one
transaction under an advisory lock, so two processes starting together (API and worker) and a
second start both leave the schema exactly once migrated; then it re-grants the API's role.
Revisions only go forward (none has a downgrade): a fix is a new revision.

Besides Alembic's `alembic_version`, `schema_migrations` keeps a row per applied revision with the
SHA-256 of its SQL. The runner before Alembic kept the same table, so a database it migrated (no
`alembic_version`) is stamped with the last revision recorded there and continues from it,
without anything re-run.

An applied revision whose SQL no longer matches its recorded checksum stops `migrate`, for every
role (the API and workers will not start either), with `MigrationChanged` naming it: the schema
may not be what the code expects. The way out is in the code, not the database: restore the
revision as released (`git log` on its file) and put the change in a new revision. Only for an
edit that cannot change the schema (a comment, whitespace), once that is checked, may the schema
owner record the new checksum the error names:
`UPDATE schema_migrations SET checksum = '<new>' WHERE version = <N>`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from ddoc.platform import migrations as revisions

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)
# Alembic logs at INFO as it loads (its plugins) and as it runs (dialect, each step), at every
# start of the API and workers; `migrate` logs what it applies. Hence this, and Alembic imported
# only inside the functions below, once this has run.
logging.getLogger("alembic").setLevel(logging.WARNING)

# Any constant works; it only has to be the same in every process of a deployment.
_MIGRATION_LOCK_ID = 0x64643063


@dataclass(frozen=True)
class Migration:
    """An Alembic revision; `version` is its id ("0003") as the number `schema_migrations` keeps."""

    version: int
    name: str
    sql: str

    @classmethod
    def of(cls, revision: str) -> Migration:
        name = revisions.sql_file(revision).stem.partition("_")[2]
        return cls(int(revision), name, revisions.sql_text(revision))

    @property
    def revision(self) -> str:
        return f"{self.version:04d}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


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
    """The revisions in the order Alembic applies them."""
    scripts = _scripts().walk_revisions()
    return [Migration.of(script.revision) for script in reversed(list(scripts))]


def _config(**attributes: Any) -> Config:
    """Alembic's configuration, built here so that operators need no alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(revisions.DIRECTORY))
    config.attributes.update(attributes)
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _context(conn: Connection) -> MigrationContext:
    """Alembic's view of `conn`: which revision it is at."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn)


# The API's role may do anything to the product's rows except change the record: audit events
# and runbook versions are insert-only for it (the append-only trigger also stops the owner).
APP_ROLE = "ddoc_app"
_INSERT_ONLY_TABLES = ("audit_events", "runbook_versions")
_BOOKKEEPING_TABLES = ("schema_migrations", "alembic_version")
_GRANTS = f"""
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {", ".join(_BOOKKEEPING_TABLES)} FROM {APP_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(_INSERT_ONLY_TABLES)} FROM {APP_ROLE};
"""


class MigrationsPending(RuntimeError):
    pass


class MigrationChanged(RuntimeError):
    """An applied revision's SQL is not what the database ran (the module docstring says why it
    stops everything and how to get out)."""


def migrate(engine: Engine) -> list[int]:
    """Apply pending revisions; returns the versions applied by this call.

    Every role first checks that the applied revisions are unchanged (`MigrationChanged`). A role
    that cannot change the schema (the API's `ddoc_app` role) then passes when nothing is
    pending, and otherwise gets `MigrationsPending` naming what to run."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        ledger = _ledger(conn)
        current = _current_revision(conn, ledger)
        applied, pending = _split(migrations(), current)
        _verify(applied, ledger)
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
        _adopt(conn, current)
        applied_now = _upgrade(conn) if pending else []
        _grant(conn)
    return applied_now


def _ledger(conn: Connection) -> dict[int, str]:
    """The checksum recorded for each applied version (none before the first migrate)."""
    if conn.execute(text("SELECT to_regclass('schema_migrations')")).scalar() is None:
        return {}
    rows = conn.execute(text("SELECT version, checksum FROM schema_migrations"))
    return {row.version: row.checksum for row in rows}


def _current_revision(conn: Connection, ledger: dict[int, str]) -> str | None:
    """Alembic's revision or, in a database only the runner before Alembic migrated, the last
    version that runner recorded (it applied them in order, all in one transaction)."""
    current = _context(conn).get_current_revision()
    if current is None and ledger:
        return f"{max(ledger):04d}"
    return current


def _split(known: list[Migration], current: str | None) -> tuple[list[Migration], list[Migration]]:
    """The applied revisions and the pending ones. A revision this code does not know was applied
    by a newer release (a rollback, or an old process restarting during an upgrade): then all of
    these count as applied and none as pending, so such a process still starts."""
    ids = [m.revision for m in known]
    if current is None:
        return [], known
    if current not in ids:
        return known, []
    done = ids.index(current) + 1
    return known[:done], known[done:]


def _verify(applied: list[Migration], ledger: dict[int, str]) -> None:
    for migration in applied:
        recorded = ledger.get(migration.version)
        if recorded != migration.checksum:
            raise MigrationChanged(
                f"migration {migration.revision} ({migration.name}) is not the SQL this database"
                f" ran: checksum recorded {recorded or 'nowhere'}, now {migration.checksum}."
                " Restore it as released and put the change in a new revision"
                " (docs/decisions/0009-alembic-migrations.md)"
            )


def _adopt(conn: Connection, current: str | None) -> None:
    """Stamp a database the runner before Alembic migrated with the revision it got to, so that
    Alembic continues from there instead of running everything again."""
    context = _context(conn)
    if current is not None and context.get_current_revision() is None:
        context.stamp(_scripts(), current)


def _upgrade(conn: Connection) -> list[int]:
    """Alembic to the last revision on `conn`, recording each revision's checksum as it is
    applied (in the same transaction, so the record cannot disagree with the schema)."""
    from alembic import command

    applied: list[int] = []

    def record(
        *, ctx: MigrationContext, step: MigrationInfo, heads: set[str], run_args: dict[str, Any]
    ) -> None:
        (revision,) = step.up_revision_ids
        migration = Migration.of(revision)
        log.info("applied migration %s_%s", migration.revision, migration.name)
        conn.execute(
            text("INSERT INTO schema_migrations (version, name, checksum) VALUES (:v, :n, :c)"),
            {"v": migration.version, "n": migration.name, "c": migration.checksum},
        )
        applied.append(migration.version)

    command.upgrade(_config(connection=conn, on_version_apply=record), "head")
    return applied


def _grant(conn: Connection) -> None:
    """Grant the API's role its rights on every migrate, so that tables added later are covered
    without a migration having to remember it (nothing to do before the role exists)."""
    if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}).first():
        driver_conn = conn.connection.driver_connection
        assert driver_conn is not None
        driver_conn.execute(_GRANTS.encode())


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
