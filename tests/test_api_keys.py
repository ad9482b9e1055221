"""API keys per tenant: created, listed, rotated (with a grace period) and revoked through the
API and the CLI; stored only as hashes; a tenant keeps at least one admin key."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, text

from tests.conftest import Stack
from tests.test_cli import ddoc


async def test_create_rotate_revoke_through_the_api(stack: Stack, engine: Engine) -> None:
    admin = stack.api_headers()
    made = await stack.http.post(
        "/api-keys", json={"name": "grafana reader", "roles": ["viewer"]}, headers=admin
    )
    assert made.status_code == 201, made.text
    first = made.json()
    viewer = {"Authorization": f"Bearer {first['key']}"}
    assert (await stack.http.get("/runbooks", headers=viewer)).status_code == 200
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key_hash, key_prefix FROM api_keys WHERE id = :id"), {"id": first["id"]}
        ).one()
    assert first["key"] not in stored.key_hash and first["key"].startswith(stored.key_prefix)
    listed = (await stack.http.get("/api-keys", headers=admin)).json()
    assert first["id"] in {k["id"] for k in listed}
    assert all("key" not in k for k in listed)
    assert (await stack.http.get("/api-keys", headers=viewer)).status_code == 403

    rotated = await stack.http.post(
        f"/api-keys/{first['id']}/rotate", json={"grace_seconds": 2}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    second = rotated.json()
    assert (second["name"], second["roles"], second["replaces"]) == (
        "grafana reader",
        ["viewer"],
        first["id"],
    )
    # The old key works during the grace period, not after; the new one works.
    assert (await stack.http.get("/runbooks", headers=viewer)).status_code == 200
    await asyncio.sleep(2.2)
    assert (await stack.http.get("/runbooks", headers=viewer)).status_code == 401
    new = {"Authorization": f"Bearer {second['key']}"}
    assert (await stack.http.get("/runbooks", headers=new)).status_code == 200
    again = await stack.http.post(f"/api-keys/{first['id']}/rotate", headers=admin)
    assert again.status_code == 404 and "revoked" in again.json()["detail"]

    revoked = await stack.http.delete(f"/api-keys/{second['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await stack.http.get("/runbooks", headers=new)).status_code == 401
    assert (await stack.http.delete("/api-keys/key_nope", headers=admin)).status_code == 404
    bad = await stack.http.post("/api-keys", json={"name": "x", "roles": ["root"]}, headers=admin)
    assert bad.status_code == 422


async def test_the_last_admin_key_cannot_be_revoked(stack: Stack) -> None:
    admin = stack.api_headers()
    keys = (await stack.http.get("/api-keys", headers=admin)).json()
    (bootstrap,) = [k for k in keys if "admin" in k["roles"]]
    refused = await stack.http.delete(f"/api-keys/{bootstrap['id']}", headers=admin)
    assert refused.status_code == 409 and "last admin key" in refused.json()["detail"]
    other = await stack.http.post(
        "/api-keys", json={"name": "second admin", "roles": ["admin"]}, headers=admin
    )
    assert other.status_code == 201
    assert (
        await stack.http.delete(f"/api-keys/{bootstrap['id']}", headers=admin)
    ).status_code == 200
    assert (await stack.http.get("/api-keys", headers=admin)).status_code == 401


async def test_keys_on_the_command_line(stack: Stack) -> None:
    code, out, err = await ddoc(stack, "key", "create", "ci bot", "--role", "responder")
    assert code == 0, err
    key_id, key = out.split()[0], out.strip().splitlines()[-1].split(": ")[1]
    assert key.startswith("ddoc_")
    code, out, err = await ddoc(stack, "key", "list")
    assert code == 0 and key_id in out and "responder" in out and key not in out
    code, out, err = await ddoc(stack, "key", "rotate", key_id, "--grace", "60")
    assert code == 0 and f"replaces {key_id}" in out
    code, out, err = await ddoc(stack, "key", "revoke", key_id)
    assert code == 0 and "revoked" in out
    code, out, err = await ddoc(stack, "key", "revoke", "key_nope")
    assert code == 1 and "404" in err and "Traceback" not in err


async def test_operators_create_tenants(stack: Stack, database_url: str) -> None:
    env = {"DDOC_DATABASE_URL": database_url}
    code, out, err = await ddoc(stack, "tenant", "create", "acme-eu", "--name", "Acme EU", env=env)
    assert code == 0, err
    creds = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    acme = {"Authorization": f"Bearer {creds['DDOC_API_KEY']}"}
    assert (await stack.http.get("/runbooks", headers=acme)).json() == []
    keys = (await stack.http.get("/api-keys", headers=acme)).json()
    assert [k["roles"] for k in keys] == [["admin"]]
    code, out, err = await ddoc(stack, "tenant", "create", "acme-eu", env=env)
    assert code == 0 and "exists already" in out
    code, out, err = await ddoc(stack, "tenant", "create", "bad id!", env=env)
    assert code == 2 and "tenant id" in err


def test_a_tenant_id_cannot_spell_another_tenants_agent_queue(engine: Engine) -> None:
    from sqlmodel import Session

    from ddoc.contracts.settings import agent_task_queue
    from ddoc.platform import tenancy

    with Session(engine) as session, pytest.raises(ValueError, match="letters, digits"):
        tenancy.ensure_tenant(session, tenant_id="acme.prod")  # would be acme's "prod.x" queue
    assert agent_task_queue("acme", "prod.x") != agent_task_queue("acme-prod", "x")
