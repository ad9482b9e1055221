"""Tenant secrets at rest (ddoc/platform/secrets.py) and webhook rate limits shared through the
database (ddoc/platform/ratelimit.py), on the real embedded PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.cli.up import SECRETS_KEY_FILE, secrets_key_env
from ddoc.execution import policy
from ddoc.platform import db, secrets, tenancy
from ddoc.platform.ratelimit import Limit, SharedRateLimiter
from ddoc.slack import tenants
from tests.conftest import Stack

ROUTING_KEY = "R" * 16 + "0123456789abcdef"  # 32 characters, as PagerDuty's are


def _key() -> bytes:
    return os.urandom(32)


def _ring(*keys: tuple[str, bytes]) -> secrets.Keyring:
    return secrets.Keyring(tuple(keys))


@pytest.fixture
def tenant(engine: Engine, tenant_id: str) -> str:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=tenant_id)
        session.commit()
    return tenant_id


def _raw_rows(engine: Engine, tenant_id: str) -> list[tuple[str, bytes, bytes, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, ciphertext, wrapped_key, key_id FROM secrets WHERE tenant_id = :t"),
            {"t": tenant_id},
        ).all()
    return [(str(r[0]), bytes(r[1]), bytes(r[2]), str(r[3])) for r in rows]


def test_a_secret_round_trips_and_the_database_holds_only_ciphertext(
    engine: Engine, tenant: str
) -> None:
    ring = _ring(("k1", _key()))
    value = "xoxb-very-secret-token-" + uuid.uuid4().hex
    with Session(engine) as session:
        secrets.put(session, tenant, "slack/bot_token", value, keyring=ring)
        secrets.put(session, tenant, "other", "two", keyring=ring)
        session.commit()
    with Session(engine) as session:
        assert secrets.get(session, tenant, "slack/bot_token", keyring=ring) == value
        assert secrets.get(session, tenant, "missing", keyring=ring) is None
        assert secrets.names(session, tenant) == ["other", "slack/bot_token"]
        assert secrets.names(session, tenant, "slack/") == ["slack/bot_token"]
    [row] = [r for r in _raw_rows(engine, tenant) if r[0] == "slack/bot_token"]
    assert row[3] == "k1"
    assert value.encode() not in row[1] and value.encode() not in row[2]
    with engine.connect() as conn:  # nowhere in the row, in any encoding Postgres shows it
        dump = conn.execute(text("SELECT secrets::text FROM secrets")).scalars().all()
    assert all(value not in d and base64.b64encode(value.encode()).decode() not in d for d in dump)
    with Session(engine) as session:
        secrets.put(session, tenant, "other", "three", keyring=ring)  # replaced
        assert secrets.get(session, tenant, "other", keyring=ring) == "three"
        assert secrets.delete(session, tenant, "other") is True
        assert secrets.get(session, tenant, "other", keyring=ring) is None
        session.commit()


def test_without_a_master_key_nothing_is_stored_and_the_error_names_the_variable(
    engine: Engine, tenant: str
) -> None:
    with Session(engine) as session, pytest.raises(secrets.NoMasterKey) as caught:
        secrets.put(session, tenant, "x", "value", keyring=_ring())
    assert "DDOC_SECRETS_KEY" in str(caught.value)
    assert _raw_rows(engine, tenant) == []
    assert secrets.keyring_from_env({}).keys == ()
    # Plaintext (an older release's settings) and env-named Slack secrets read without a key.
    with Session(engine) as session:
        assert secrets.reveal(session, tenant, "plain", keyring=_ring()) == "plain"


def test_a_wrong_or_missing_master_key_is_an_error_that_says_so(
    engine: Engine, tenant: str
) -> None:
    with Session(engine) as session:
        secrets.put(session, tenant, "x", "value", keyring=_ring(("k1", _key())))
        session.commit()
    with Session(engine) as session:
        with pytest.raises(secrets.SecretsError, match="does not decrypt"):
            secrets.get(session, tenant, "x", keyring=_ring(("k1", _key())))
        with pytest.raises(secrets.SecretsError, match="'k1', which is not configured"):
            secrets.get(session, tenant, "x", keyring=_ring(("k2", _key())))


def test_rotation_old_key_reads_until_rotated_then_only_the_new_one_is_needed(
    engine: Engine, tenant: str, tenant_id: str
) -> None:
    old, new = ("2026-01", _key()), ("2026-06", _key())
    with Session(engine) as session:
        secrets.put(session, tenant, "a", "alpha", keyring=_ring(old))
        secrets.put(session, tenant, "b", "beta", keyring=_ring(old))
        session.commit()
    both = _ring(new, old)
    with Session(engine) as session:
        assert secrets.get(session, tenant, "a", keyring=both) == "alpha"
        secrets.put(session, tenant, "c", "gamma", keyring=both)  # new ones: the current key
        session.commit()
    assert {r[0]: r[3] for r in _raw_rows(engine, tenant)} == {
        "a": "2026-01",
        "b": "2026-01",
        "c": "2026-06",
    }
    before = {r[0]: r[1] for r in _raw_rows(engine, tenant)}
    with Session(engine) as session:
        assert secrets.rotate(session, keyring=both) == 2
        session.commit()
    after = _raw_rows(engine, tenant)
    assert {r[3] for r in after} == {"2026-06"}
    assert {r[0]: r[1] for r in after} == before  # values untouched: only data keys re-wrapped
    with Session(engine) as session:
        only_new = _ring(new)
        assert [secrets.get(session, tenant, n, keyring=only_new) for n in "abc"] == [
            "alpha",
            "beta",
            "gamma",
        ]
        assert secrets.rotate(session, keyring=only_new) == 0
        with pytest.raises(secrets.SecretsError):
            secrets.get(session, tenant, "a", keyring=_ring(old))


def test_secrets_are_tenant_scoped_and_a_row_copied_to_another_tenant_does_not_decrypt(
    engine: Engine, database_url: str, tenant: str
) -> None:
    ring = _ring(("k1", _key()))
    other = f"{tenant}x"
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id=other)
        secrets.put(session, tenant, "pd", "tenant-a-value", keyring=ring)
        session.commit()
    with Session(engine) as session:
        assert secrets.get(session, other, "pd", keyring=ring) is None
        assert secrets.names(session, other) == []
        session.execute(
            text(
                "INSERT INTO secrets (tenant_id, name, ciphertext, wrapped_key, key_id)"
                " SELECT :o, name, ciphertext, wrapped_key, key_id FROM secrets"
                " WHERE tenant_id = :t"
            ),
            {"o": other, "t": tenant},
        )
        session.commit()
        with pytest.raises(secrets.SecretsError, match="does not decrypt"):
            secrets.get(session, other, "pd", keyring=ring)


def test_master_keys_from_the_environment_or_a_file(tmp_path: Path) -> None:
    one, two = _key(), _key()
    b64 = base64.b64encode
    inline = secrets.keyring_from_env({"DDOC_SECRETS_KEY": b64(one).decode()})
    assert inline.keys == ((secrets.key_id_of(one), one),)
    path = tmp_path / "keys"
    path.write_text(f"# current first\nnew:{b64(two).decode()}\n\nold:{b64(one).decode()}\n")
    from_file = secrets.keyring_from_env({"DDOC_SECRETS_KEY_FILE": str(path)})
    assert [k for k, _ in from_file.keys] == ["new", "old"]
    assert from_file.current[0] == "new"
    env_list = secrets.keyring_from_env(
        {"DDOC_SECRETS_KEY": f"new:{b64(two).decode()},old:{b64(one).decode()}"}
    )
    assert env_list.keys == from_file.keys
    with pytest.raises(secrets.SecretsError, match="not both"):
        secrets.keyring_from_env(
            {"DDOC_SECRETS_KEY": b64(one).decode(), "DDOC_SECRETS_KEY_FILE": str(path)}
        )
    with pytest.raises(secrets.SecretsError, match="32 bytes"):
        secrets.keyring_from_env({"DDOC_SECRETS_KEY": b64(b"short").decode()})
    with pytest.raises(secrets.SecretsError, match="cannot read"):
        secrets.keyring_from_env({"DDOC_SECRETS_KEY_FILE": str(tmp_path / "nope")})


def test_ddoc_up_writes_a_master_key_file_once_unless_one_is_given(tmp_path: Path) -> None:
    env = secrets_key_env(tmp_path, {})
    path = tmp_path / SECRETS_KEY_FILE
    assert env == {"DDOC_SECRETS_KEY_FILE": str(path)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    ring = secrets.keyring_from_env(env)
    assert len(ring.keys) == 1
    assert secrets_key_env(tmp_path, {}) == env and path.read_text() == first  # kept
    assert secrets_key_env(tmp_path / "x", {"DDOC_SECRETS_KEY": "given"}) == {}
    assert not (tmp_path / "x").exists()


def _stored_settings(engine: Engine, tenant_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT settings::text FROM tenants WHERE id = :t"), {"t": tenant_id}
            ).scalar_one()
        )


def test_settings_secrets_are_sealed_paging_reads_them_and_old_plaintext_still_works(
    engine: Engine, tenant: str
) -> None:
    grafana = "grafana-" + uuid.uuid4().hex
    with Session(engine) as session:
        tenancy.update_settings(
            session,
            tenant_id=tenant,
            changes={
                "execution_policy": {
                    "escalation_levels": [
                        {"name": "L2", "pagerduty_routing_key": ROUTING_KEY},
                        {"name": "L3"},
                    ]
                },
                "grafana_signing_secret": grafana,
                "slack": {
                    "team_id": "T0S",
                    "channel": "C0S",
                    "bot_token": "xoxb-stored",
                    "signing_secret_env": "SOME_VAR",
                },
            },
            actor="test",
        )
        session.commit()
    stored = _stored_settings(engine, tenant)
    for plain in (ROUTING_KEY, grafana, "xoxb-stored"):
        assert plain not in stored
    with Session(engine) as session:
        assert secrets.names(session, tenant) == [
            "settings/execution_policy/escalation_levels/0/pagerduty_routing_key",
            "settings/grafana_signing_secret",
            "settings/slack/bot_token",
        ]
        current = tenancy.settings(session, tenant)
        level = policy.escalation_level(current, 1)
        assert policy.routing_key(session, tenant, level) == ROUTING_KEY
        assert policy.routing_key(session, tenant, policy.escalation_level(current, 2)) is None
        revealed = secrets.reveal_settings(session, tenant, current)
        assert revealed["grafana_signing_secret"] == grafana
        slack = tenants.for_tenant(session, tenant, None)
        assert slack is not None and slack.bot_token == "xoxb-stored"
    # Settings an older release wrote (plaintext) are read as they are...
    with Session(engine) as session:
        session.execute(
            text("UPDATE tenants SET settings = settings || CAST(:s AS jsonb) WHERE id = :t"),
            {
                "t": tenant,
                "s": json.dumps(
                    {
                        "pagerduty_signing_secrets": ["legacy-pd"],
                        "execution_policy": {
                            "escalation_levels": [{"name": "L2", "pagerduty_routing_key": "L" * 32}]
                        },
                    }
                ),
            },
        )
        session.commit()
        current = tenancy.settings(session, tenant)
        assert policy.routing_key(session, tenant, policy.escalation_level(current, 1)) == "L" * 32
        # ... and an unrelated change leaves them, while the policy's old secret is pruned.
        tenancy.update_settings(
            session, tenant_id=tenant, changes={"webhook_rate_limit": {"burst": 9}}, actor="t"
        )
        session.commit()
        assert "L" * 32 in _stored_settings(engine, tenant)
        assert "settings/execution_policy/escalation_levels/0/pagerduty_routing_key" not in (
            secrets.names(session, tenant)
        )
    # `ddoc secrets rotate` encrypts them.
    rewrapped, sealed = tenancy.rotate_secrets(engine)
    assert sealed >= 1 and rewrapped == 0
    stored = _stored_settings(engine, tenant)
    assert "L" * 32 not in stored and "legacy-pd" not in stored
    with Session(engine) as session:
        current = secrets.reveal_settings(session, tenant, tenancy.settings(session, tenant))
        assert current["pagerduty_signing_secrets"] == ["legacy-pd"]
        assert current["execution_policy"]["escalation_levels"][0]["pagerduty_routing_key"] == (
            "L" * 32
        )
        # Removing a setting deletes its secret.
        tenancy.update_settings(
            session, tenant_id=tenant, changes={"grafana_signing_secret": None}, actor="t"
        )
        session.commit()
        assert "settings/grafana_signing_secret" not in secrets.names(session, tenant)


def test_slack_settings_take_a_secret_or_a_variable_name_not_both() -> None:
    base = {"team_id": "T0", "channel": "C0"}
    tenants.validate({**base, "bot_token": "xoxb-1", "signing_secret_env": "SECRET_B"})
    tenants.validate({**base, "bot_token_env": "TOKEN_B", "signing_secret": "s"})
    for bad in (
        {**base, "bot_token": "xoxb-1", "bot_token_env": "T", "signing_secret": "s"},
        {**base, "signing_secret": "s"},
        {**base, "bot_token": "", "signing_secret": "s"},
    ):
        with pytest.raises(tenants.SlackSettingsError):
            tenants.validate(bad)


def test_two_limiters_over_one_database_share_one_limit(
    engine: Engine, database_url: str, tenant: str
) -> None:
    # Two engines: as two API processes would have.
    other_engine = db.make_engine(database_url, pool_size=1)
    try:
        a, b = SharedRateLimiter(engine), SharedRateLimiter(other_engine)
        limit = Limit(per_second=0.01, burst=4)
        waits = [lim.take(tenant, limit) for lim in (a, b, a, b, a, b)]
        assert waits[:4] == [0.0, 0.0, 0.0, 0.0]
        assert all(w > 90 for w in waits[4:])  # ~100 s until the next token at 0.01/s
        fast = Limit(per_second=50, burst=1)  # refills on the database's clock
        other = f"{tenant}r"
        with Session(engine) as session:
            tenancy.ensure_tenant(session, tenant_id=other)
            session.commit()
        assert a.take(other, fast) == 0.0
        assert 0 < b.take(other, fast) <= 0.02
        time.sleep(0.05)
        assert b.take(other, fast) == 0.0
    finally:
        other_engine.dispose()


def test_a_limiter_whose_database_does_not_answer_limits_in_its_process() -> None:
    gone = db.make_engine("postgresql://nobody@127.0.0.1:1/none", pool_size=1)
    try:
        limiter = SharedRateLimiter(gone)
        limit = Limit(per_second=0.01, burst=1)
        assert limiter.take("t", limit) == 0.0
        assert limiter.take("t", limit) > 0
    finally:
        gone.dispose()


async def test_the_settings_api_stores_secrets_encrypted_and_shows_them_write_only(
    stack: Stack, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id, headers = stack.settings.tenant, stack.api_headers()
    secret = "grafana-" + uuid.uuid4().hex
    patched = await stack.http.patch(
        "/settings",
        json={
            "grafana_signing_secret": secret,
            "execution_policy": {
                "escalation_levels": [{"name": "L2", "pagerduty_routing_key": ROUTING_KEY}]
            },
            "slack": {
                "team_id": "T0API",
                "channel": "C0API",
                "bot_token": "xoxb-api",
                "signing_secret": "slack-signing",
            },
        },
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    shown = (await stack.http.get("/settings", headers=headers)).json()
    assert shown["grafana_signing_secret"] is True
    assert shown["execution_policy"]["escalation_levels"] == [
        {"name": "L2", "pagerduty_routing_key": True}
    ]
    assert shown["slack"] == {
        "team_id": "T0API",
        "channel": "C0API",
        "bot_token": True,
        "signing_secret": True,
    }
    stored = _stored_settings(engine, tenant_id)
    for plain in (secret, ROUTING_KEY, "xoxb-api", "slack-signing"):
        assert plain not in stored and plain not in patched.text
    # The webhook checks the signature with the decrypted secret.
    body = json.dumps({"title": "disk full", "status": "firing", "alerts": []}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    bad = await stack.http.post(
        "/webhooks/grafana",
        content=body,
        headers={**stack.webhook_headers(), "X-Grafana-Alerting-Signature": "0" * 64},
    )
    assert bad.status_code == 401
    good = await stack.http.post(
        "/webhooks/grafana",
        content=body,
        headers={**stack.webhook_headers(), "X-Grafana-Alerting-Signature": signature},
    )
    assert good.status_code != 401, good.text
    # A server without a master key keeps accepting a secret as older releases did (in the
    # settings, unencrypted, with a warning in the log): the settings API never refuses what it
    # accepted before. `ddoc up` always has a key, docker-compose requires one.
    monkeypatch.delenv("DDOC_SECRETS_KEY", raising=False)
    monkeypatch.delenv("DDOC_SECRETS_KEY_FILE", raising=False)
    kept = await stack.http.patch(
        "/settings", json={"grafana_signing_secret": "another"}, headers=headers
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["grafana_signing_secret"] is True
    with Session(engine) as session:
        stored = tenancy.settings(session, stack.settings.tenant)
    assert stored["grafana_signing_secret"] == "another"
    unrelated = await stack.http.patch(
        "/settings", json={"webhook_rate_limit": {"burst": 100}}, headers=headers
    )
    assert unrelated.status_code == 200


def test_ddoc_secrets_new_key_and_rotate(
    engine: Engine,
    database_url: str,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ddoc.cli.main import main

    monkeypatch.delenv("DDOC_SECRETS_KEY", raising=False)
    monkeypatch.delenv("DDOC_SECRETS_KEY_FILE", raising=False)
    monkeypatch.setenv("DDOC_DATABASE_URL", database_url)
    assert main(["secrets", "rotate"]) == 2
    assert "DDOC_SECRETS_KEY" in capsys.readouterr().err
    assert main(["secrets", "new-key"]) == 0
    new = capsys.readouterr().out.strip()
    old = base64.b64encode(_key()).decode()
    with Session(engine) as session:
        secrets.put(
            session, tenant, "a", "alpha", keyring=secrets.parse_keys(f"old:{old}", where="t")
        )
        session.commit()
    keys = tmp_path / "secrets.key"
    keys.write_text(f"new:{new}\nold:{old}\n")
    monkeypatch.setenv("DDOC_SECRETS_KEY_FILE", str(keys))
    assert main(["secrets", "rotate"]) == 0
    assert "re-wrapped 1 secret(s) with master key new" in capsys.readouterr().out
    keys.write_text(f"new:{new}\n")
    with Session(engine) as session:
        assert secrets.get(session, tenant, "a") == "alpha"
