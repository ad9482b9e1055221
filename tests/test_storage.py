"""Schema migrations, the SQLModel mappings, immutability and the audit chain, on real Postgres."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

from ddoc.platform import audit, db, tenancy
from ddoc.platform.embedded import EmbeddedPostgres


def test_migrations_run_once_even_when_started_together(postgres: EmbeddedPostgres) -> None:
    postgres.ensure_database("migrate_race")
    engines = [db.make_engine(postgres.url("migrate_race"), pool_size=1) for _ in range(4)]
    applied: list[list[int]] = []
    threads = [threading.Thread(target=lambda e=e: applied.append(db.migrate(e))) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(applied) == [[], [], [], [m.version for m in db.migrations()]]
    assert db.migrate(engines[0]) == []
    with engines[0].connect() as conn:
        versions = conn.execute(text("SELECT version FROM schema_migrations")).scalars().all()
        vector = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        assert vector.scalar_one()
    assert versions == [m.version for m in db.migrations()]
    for engine in engines:
        engine.dispose()


# Columns that only SQL writes (see the comments in ddoc/platform/tables.py).
UNMAPPED = {"runbooks": {"search_tsv"}}


def test_sqlmodel_mappings_match_the_migrated_schema(engine: Engine) -> None:
    inspector = inspect(engine)
    tables = set(inspector.get_table_names()) - {"schema_migrations", "alembic_version"}
    assert {t.name for t in SQLModel.metadata.sorted_tables} == tables
    for table in SQLModel.metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        mapped = {c.name for c in table.columns}
        assert mapped == set(columns) - UNMAPPED.get(table.name, set()), table.name
        for column in table.columns:
            if not column.primary_key and not column.nullable:
                assert not columns[column.name]["nullable"] or column.server_default, (
                    f"{table.name}.{column.name} is NOT NULL in the model but nullable in SQL"
                )


def test_runbook_versions_and_audit_rows_cannot_change(engine: Engine) -> None:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id="acme")
        audit.append(session, tenant_id="acme", actor="test", action="x", subject="y")
        session.commit()
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with engine.begin() as conn, pytest.raises(DBAPIError, match="immutable"):
            conn.execute(text(statement))


def test_audit_chain_links_every_event(engine: Engine) -> None:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id="acme")
        for i in range(5):
            audit.append(
                session, tenant_id="acme", actor="u", action=f"a{i}", subject="s", data={"i": i}
            )
        session.commit()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).mappings().all()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    prev = audit.GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == prev
        expected = audit.event_hash(
            prev_hash=prev,
            tenant_id=row["tenant_id"],
            seq=row["seq"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            data=row["data"],
        )
        assert row["hash"] == expected
        prev = row["hash"]


def test_audit_chain_stays_linear_under_concurrent_writers(engine: Engine) -> None:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id="acme")
        session.commit()

    def write(n: int) -> None:
        for i in range(10):
            with Session(engine) as session:
                audit.append(session, tenant_id="acme", actor=f"w{n}", action="a", subject=str(i))
                session.commit()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")
        ).all()
    assert [r.seq for r in rows] == list(range(1, 41))
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, len(rows)))


def test_bootstrap_is_idempotent_and_keys_are_stored_hashed(engine: Engine) -> None:
    first = tenancy.bootstrap(engine, tenant_id="acme", api_key="ddoc_k1", webhook_token="ddwh_t1")
    second = tenancy.bootstrap(engine, tenant_id="acme", api_key="ddoc_k2", webhook_token="ddwh_t2")
    assert (first.api_key, first.webhook_token) == ("ddoc_k1", "ddwh_t1")
    assert (second.api_key, second.webhook_token) == (None, None)
    with Session(engine) as session:
        principal = tenancy.authenticate_api_key(session, "ddoc_k1")
        assert principal is not None and principal.tenant_id == "acme"
        assert principal.roles == frozenset({"admin"})
        assert tenancy.authenticate_api_key(session, "ddoc_k2") is None
        assert tenancy.tenant_for_webhook_token(session, "ddwh_t1") == "acme"
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash FROM api_keys")).scalar_one()
    assert "ddoc_k1" not in stored and len(stored) == 64
