"""The audit trail proves itself: `verify` names the first event that was edited, deleted or
reordered (tampering done here as the database superuser, with the append-only trigger off);
the export gives auditors JSON Lines or CSV for a time range."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import Session

from ddoc.platform import audit, db, tenancy
from tests.conftest import Stack


@pytest.fixture
def chain(engine: Engine) -> Iterator[str]:
    tenant = "taudit"
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant)
        for n in range(1, 21):
            audit.append(
                session,
                tenant_id=tenant,
                actor=f"user:{n % 3}",
                action="step.succeeded",
                subject=f"ex-1/s{n}",
                data={"exit_code": 0, "command": f"echo {n}", "n": n},
            )
        session.commit()
    yield tenant


def tamper(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def verify(engine: Engine, tenant: str) -> audit.Verification:
    with Session(engine) as session:
        return audit.verify(session, tenant_id=tenant)


def test_an_intact_chain_verifies(engine: Engine, chain: str) -> None:
    result = verify(engine, chain)
    assert (result.ok, result.checked) == (True, 20)


def test_an_edited_event_is_named(engine: Engine, chain: str) -> None:
    tamper(
        engine,
        "UPDATE audit_events SET data = jsonb_set(data, '{command}', '\"rm -rf /\"')"
        f" WHERE tenant_id = '{chain}' AND seq = 7",
    )
    result = verify(engine, chain)
    assert (result.broken_seq, result.checked) == (7, 6)
    assert result.reason == "event 7 was changed after it was written"


def test_a_deleted_event_is_named(engine: Engine, chain: str) -> None:
    tamper(engine, f"DELETE FROM audit_events WHERE tenant_id = '{chain}' AND seq = 12")
    result = verify(engine, chain)
    assert result.broken_seq == 12 and "missing" in (result.reason or "")


def test_a_reordering_is_named(engine: Engine, chain: str) -> None:
    # Reordering: events 4 and 5 swapped (their content moved, seq kept).
    tamper(
        engine,
        f"UPDATE audit_events SET seq = CASE seq WHEN 4 THEN 1004 WHEN 5 THEN 4 END"
        f" WHERE tenant_id = '{chain}' AND seq IN (4, 5);"
        f" UPDATE audit_events SET seq = 5 WHERE tenant_id = '{chain}' AND seq = 1004",
    )
    result = verify(engine, chain)
    assert result.broken_seq == 4 and "does not follow" in (result.reason or "")


def test_the_api_role_cannot_change_audit_rows(
    engine: Engine, chain: str, app_database_url: str
) -> None:
    """The role the API and workers connect as has no UPDATE or DELETE on the table (a grant
    Postgres enforces), and even the owner is stopped by the append-only trigger."""
    app = db.make_engine(app_database_url, pool_size=1)
    try:
        with app.begin() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == "ddoc_api"
            audit.append(
                Session(bind=conn), tenant_id=chain, actor="api", action="probe", subject="s"
            )  # it may append
        for sql in (
            f"UPDATE audit_events SET actor = 'x' WHERE tenant_id = '{chain}'",
            f"DELETE FROM audit_events WHERE tenant_id = '{chain}'",
            "TRUNCATE audit_events",
            f"UPDATE runbook_versions SET content = 'x' WHERE tenant_id = '{chain}'",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"), app.begin() as conn:
                conn.execute(text(sql))
    finally:
        app.dispose()
    for sql in (
        f"UPDATE audit_events SET actor = 'x' WHERE tenant_id = '{chain}'",
        f"DELETE FROM audit_events WHERE tenant_id = '{chain}'",
    ):
        with pytest.raises(Exception, match="immutable"), engine.begin() as conn:
            conn.execute(text(sql))
    assert verify(engine, chain).checked == 21


async def test_verify_on_the_command_line(engine: Engine, chain: str, database_url: str) -> None:
    async def run() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ddoc.cli.main", "audit", "verify", "--tenant", chain,
            env={**os.environ, "DDOC_DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, (out + err).decode()

    code, said = await run()
    assert code == 0 and "20 events, chain intact" in said
    tamper(engine, f"DELETE FROM audit_events WHERE tenant_id = '{chain}' AND seq = 3")
    code, said = await run()
    assert code == 1 and "BROKEN at event 3" in said and "Traceback" not in said


async def test_export_for_auditors(stack: Stack) -> None:
    headers = stack.api_headers()
    for window in (300, 600):
        changed = await stack.http.patch(
            "/settings",
            json={"execution_policy": {"wait_minutes": {"high": window / 60}}},
            headers=headers,
        )
        assert changed.status_code == 200
    response = await stack.http.get("/audit/export", headers=headers)
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert len(events) == 3 and [e["seq"] for e in events] == [1, 2, 3]
    assert events[0]["action"] == "api_key.created"
    assert events[1]["prev_hash"] == events[0]["hash"]
    as_csv = await stack.http.get("/audit/export?format=csv", headers=headers)
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["hash"] for r in rows] == [e["hash"] for e in events]
    later = events[-1]["at"]
    none = await stack.http.get(
        "/audit/export", params={"since": "2999-01-01T00:00:00Z"}, headers=headers
    )
    assert none.text == ""
    window = await stack.http.get(
        "/audit/export", params={"until": later, "since": events[0]["at"]}, headers=headers
    )
    assert [json.loads(line)["seq"] for line in window.text.splitlines()] == [1, 2]
    bad = await stack.http.get(
        "/audit/export", params={"since": later, "until": events[0]["at"]}, headers=headers
    )
    assert bad.status_code == 422
