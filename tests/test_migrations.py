"""Alembic migrations on real Postgres: taking over databases the earlier runner migrated,
refusing edited revisions, and the API role's grants (the race is in test_storage.py)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from ddoc.cli.up import API_DB_ROLE
from ddoc.platform import db
from ddoc.platform import migrations as revisions
from ddoc.platform.embedded import EmbeddedPostgres

LAST = db.migrations()[-1]

# What the runner before Alembic did, verbatim: its bookkeeping table and its grants.
OLD_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""
OLD_GRANTS = """
GRANT USAGE ON SCHEMA public TO ddoc_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ddoc_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ddoc_app;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM ddoc_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, runbook_versions FROM ddoc_app;
"""


def as_app(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{API_DB_ROLE}@", 1)


@pytest.fixture
def empty_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(name)
    yield postgres.url(name)
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def app_engine(app_database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(app_database_url, pool_size=1)
    yield engine
    engine.dispose()


def migrate_like_the_old_runner(url: str, *, upto: int) -> None:
    """The SQL files up to `upto` and a row each in `schema_migrations` (SHA-256 of the file),
    in one transaction, then the grants: what `db.migrate` did before Alembic."""
    with psycopg.connect(url) as conn:
        conn.execute(OLD_LEDGER)
        for migration in db.migrations()[:upto]:
            conn.execute(migration.sql.encode())
            checksum = hashlib.sha256(migration.sql.encode()).hexdigest()
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, checksum),
            )
        conn.execute(OLD_GRANTS.encode())


def schema(url: str) -> set[tuple[object, ...]]:
    """Columns and indexes of the product's tables, to compare two databases."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return set(columns) | set(indexes)


def ledger(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version, applied_at FROM schema_migrations ORDER BY 1"))
        return [(row.version, str(row.applied_at)) for row in rows]


def alembic_revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


@pytest.mark.parametrize("upto", [LAST.version, 5])
def test_a_database_the_old_runner_migrated_is_taken_over_where_it_stands(
    empty_url: str, database_url: str, upto: int
) -> None:
    migrate_like_the_old_runner(empty_url, upto=upto)
    with psycopg.connect(empty_url) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
    engine = db.make_engine(empty_url, pool_size=1)
    before = ledger(engine)

    applied = db.migrate(engine)

    # Nothing the old runner applied ran again (0001 would fail on its CREATE TABLEs).
    assert applied == list(range(upto + 1, LAST.version + 1))
    assert ledger(engine)[:upto] == before
    assert [version for version, _ in ledger(engine)] == [m.version for m in db.migrations()]
    assert alembic_revision(engine) == LAST.revision
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM tenants")).scalar_one() == "Acme"
    assert db.migrate(engine) == []
    engine.dispose()
    bookkeeping = {("alembic_version", "version_num")}
    assert {row for row in schema(empty_url) if row[:2] not in bookkeeping} == {
        row for row in schema(database_url) if row[:2] not in bookkeeping
    }


def test_a_role_that_cannot_migrate_starts_only_once_nothing_is_pending(empty_url: str) -> None:
    migrate_like_the_old_runner(empty_url, upto=5)
    owner, app = (db.make_engine(url, pool_size=1) for url in (empty_url, as_app(empty_url)))
    pending = LAST.version - 5
    with pytest.raises(db.MigrationsPending, match=f"{pending} database migration"):
        db.migrate(app)
    assert db.migrate(owner) == list(range(6, LAST.version + 1))
    assert db.migrate(app) == []
    owner.dispose()
    app.dispose()


def test_an_edited_applied_revision_stops_migrate_naming_it(
    engine: Engine,
    app_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edited = tmp_path / "migrations"
    shutil.copytree(revisions.DIRECTORY, edited, ignore=shutil.ignore_patterns("__pycache__"))
    sql = revisions.sql_file("0003")
    (edited / "versions" / sql.name).write_text(sql.read_text() + "-- tidied up\n")
    monkeypatch.setattr(revisions, "DIRECTORY", edited)

    for role in (engine, app_engine):
        with pytest.raises(db.MigrationChanged, match=r"migration 0003 \(copilot_engine\)"):
            db.migrate(role)
    assert alembic_revision(engine) == LAST.revision

    # The way out for an edit that cannot change the schema: the owner records the new checksum.
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE schema_migrations SET checksum = :new WHERE version = 3"),
            {"new": db.Migration.of("0003").checksum},
        )
    assert db.migrate(engine) == []


def test_a_database_a_newer_release_migrated_still_starts(
    engine: Engine, app_engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_migrations VALUES (9999, 'later', 'abc')"))
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert db.migrate(engine) == []
    assert db.migrate(app_engine) == []
    assert alembic_revision(engine) == "9999"


def test_grants_are_applied_again_on_every_migrate(engine: Engine, app_engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"REVOKE ALL ON tenants FROM {db.APP_ROLE}"))
        conn.execute(text("CREATE TABLE added_later (id integer)"))
        conn.execute(text(f"GRANT ALL ON alembic_version, schema_migrations TO {db.APP_ROLE}"))

    assert db.migrate(engine) == []

    with engine.connect() as conn:

        def may(table: str, privilege: str) -> bool:
            return bool(
                conn.execute(
                    text("SELECT has_table_privilege(:role, :table, :privilege)"),
                    {"role": db.APP_ROLE, "table": table, "privilege": privilege},
                ).scalar_one()
            )

        for table in ("tenants", "added_later"):
            assert all(may(table, p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")), table
        for table in ("alembic_version", "schema_migrations"):
            assert may(table, "SELECT"), table
            assert not any(may(table, p) for p in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"))
    with app_engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
    for statement in (
        "UPDATE alembic_version SET version_num = '0001'",
        "DELETE FROM schema_migrations",
    ):
        with app_engine.begin() as conn, pytest.raises(ProgrammingError, match="permission"):
            conn.execute(text(statement))
