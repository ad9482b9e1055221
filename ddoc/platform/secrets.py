"""Tenant secrets encrypted at rest: envelope encryption with master keys from the environment.

Each secret (a PagerDuty routing key, a webhook signing secret, a Slack bot token) is a row of
the `secrets` table, tenant-scoped by (tenant_id, name). Its value is encrypted with AES-256-GCM
under its own random data key; the data key is encrypted (wrapped) under the current master key,
whose id is recorded with the row. Both are bound to the tenant and name (associated data), so
a row copied to another tenant or name does not decrypt. Master keys never reach the database.

Master keys come from `DDOC_SECRETS_KEY` (the key itself) or `DDOC_SECRETS_KEY_FILE` (a file),
never both. Either holds one or more keys, one per line (or comma-separated), each
`<id>:<base64 of 32 bytes>` or just the base64 (its id is then a fingerprint of the key); the
first is the current one, with which secrets are stored; the others only decrypt. Rotation
(docs/DEPLOYMENT.md): put a new key first, keep the old one after it, run
`ddoc secrets rotate` (every data key re-wrapped under the current key), then drop the old key.
`ddoc up` writes a key file into its data dir on first start.

Without a master key, `put` fails with `NoMasterKey` (naming the variables), and settings are
kept as older releases kept them (plaintext, with a warning in the log) so that a server that
accepted a routing key before still does; values referenced some other way (Slack's `*_env`
names, plaintext settings) are read as before. `ddoc up` always has a key; docker-compose
requires one.

Tenant settings keep a reference where a secret was (`{"$secret": "<name>"}`, see
`SETTINGS_SECRETS`): `tenancy.update_settings` seals the values at those places as they are set,
readers call `reveal` / `reveal_settings`. A plaintext value found there (settings written by an
older release) is returned as it is, and is sealed by the next change of that setting or by
`ddoc secrets rotate`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlmodel import Session

from ddoc.platform.errors import Invalid

log = logging.getLogger(__name__)

KEY_ENV = "DDOC_SECRETS_KEY"
KEY_FILE_ENV = "DDOC_SECRETS_KEY_FILE"
REF = "$secret"
SETTINGS_PREFIX = "settings/"
_NONCE = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Where tenant settings hold secrets ("*": every item of a list). Kept here (the platform layer)
# so sealing and revealing need nothing from the settings' owners (ddoc/execution/policy.py,
# ddoc/slack/tenants.py, api/routes/settings.py).
SETTINGS_SECRETS: tuple[tuple[str, ...], ...] = (
    ("pagerduty_signing_secrets",),
    ("grafana_signing_secret",),
    ("execution_policy", "escalation_levels", "*", "pagerduty_routing_key"),
    ("slack", "bot_token"),
    ("slack", "signing_secret"),
)


class SecretsError(Exception):
    """A secret cannot be stored or read with the configured master keys; the message says why."""


class NoMasterKey(SecretsError, Invalid):
    """No master key is configured, so nothing can be stored encrypted."""

    def __init__(self) -> None:
        super().__init__(
            f"secrets cannot be stored: no master key is configured on this server; set "
            f"{KEY_ENV} (a base64 AES-256 key: `ddoc secrets new-key`) or {KEY_FILE_ENV} "
            "(docs/DEPLOYMENT.md, Secrets at rest)"
        )


@dataclass(frozen=True)
class Keyring:
    """The master keys, current first."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def current(self) -> tuple[str, AESGCM]:
        if not self.keys:
            raise NoMasterKey()
        key_id, key = self.keys[0]
        return key_id, AESGCM(key)

    def get(self, key_id: str) -> AESGCM:
        for found, key in self.keys:
            if found == key_id:
                return AESGCM(key)
        configured = ", ".join(k for k, _ in self.keys) or "none"
        raise SecretsError(
            f"secret is wrapped with master key {key_id!r}, which is not configured "
            f"({KEY_ENV}/{KEY_FILE_ENV} hold: {configured}); add it back and run "
            "`ddoc secrets rotate`"
        )


def new_key() -> str:
    """A fresh base64 AES-256 master key (`ddoc secrets new-key`)."""
    return base64.b64encode(os.urandom(32)).decode()


def key_id_of_new() -> str:
    """A key file line for a fresh key: `<id>:<base64>` (id: the date and a fingerprint)."""
    key = os.urandom(32)
    return f"{datetime.now(UTC):%Y%m%d}-{key_id_of(key)}:{base64.b64encode(key).decode()}"


def key_id_of(key: bytes) -> str:
    return "k" + hashlib.sha256(key).hexdigest()[:12]


def parse_keys(source: str, *, where: str) -> Keyring:
    keys: list[tuple[str, bytes]] = []
    for n, raw_line in enumerate(re.split(r"[\n,]", source), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, encoded = line.rpartition(":")
        if not sep:
            encoded = line
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            raise SecretsError(f"{where}: entry {n} is not base64 (`<id>:<base64>`)") from None
        if len(key) != 32:
            raise SecretsError(f"{where}: entry {n} must be 32 bytes (AES-256), base64")
        key_id = key_id.strip() if sep else key_id_of(key)
        if not _KEY_ID.match(key_id):
            raise SecretsError(f"{where}: key id {key_id!r}: letters, digits, . _ - (1-64)")
        if any(key_id == k for k, _ in keys):
            raise SecretsError(f"{where}: key id {key_id!r} appears twice")
        keys.append((key_id, key))
    if not keys:
        raise SecretsError(f"{where}: no key in it")
    return Keyring(tuple(keys))


def keyring_from_env(env: Mapping[str, str] | None = None) -> Keyring:
    """The configured master keys (none: an empty keyring, which can still read plaintext)."""
    env = os.environ if env is None else env
    inline = env.get(KEY_ENV, "").strip()
    path = env.get(KEY_FILE_ENV, "").strip()
    if inline and path:
        raise SecretsError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if inline:
        return _parsed(inline, KEY_ENV)
    if path:
        file = Path(path).expanduser()
        try:
            found = file.stat()
        except OSError as err:
            raise SecretsError(f"{KEY_FILE_ENV}: cannot read {file}: {err.strerror}") from None
        return _from_file(str(file), (found.st_mtime_ns, found.st_size, found.st_ino))
    return Keyring(())


@lru_cache(maxsize=8)
def _parsed(source: str, where: str) -> Keyring:
    return parse_keys(source, where=where)


@lru_cache(maxsize=8)
def _from_file(path: str, _stamp: tuple[int, int, int]) -> Keyring:
    """Read again when the file changes (a rotation rolled out without a restart)."""
    return parse_keys(Path(path).read_text(encoding="utf-8"), where=path)


def _aad(tenant_id: str, name: str) -> bytes:
    return f"ddoc-secret\0{tenant_id}\0{name}".encode()


def _seal(aead: AESGCM, plain: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, plain, aad)


def _open(aead: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)


def _keyring(keyring: Keyring | None) -> Keyring:
    return keyring if keyring is not None else keyring_from_env()


def put(
    session: Session, tenant_id: str, name: str, value: str, *, keyring: Keyring | None = None
) -> None:
    """Store (or replace) a secret; the caller commits."""
    key_id, master = _keyring(keyring).current
    data_key = AESGCM.generate_key(bit_length=256)
    aad = _aad(tenant_id, name)
    session.execute(
        text(
            "INSERT INTO secrets (tenant_id, name, ciphertext, wrapped_key, key_id)"
            " VALUES (:t, :n, :c, :w, :k)"
            " ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext,"
            " wrapped_key = excluded.wrapped_key, key_id = excluded.key_id, updated_at = now()"
        ),
        {
            "t": tenant_id,
            "n": name,
            "c": _seal(AESGCM(data_key), value.encode(), aad),
            "w": _seal(master, data_key, aad),
            "k": key_id,
        },
    )


def get(
    session: Session, tenant_id: str, name: str, *, keyring: Keyring | None = None
) -> str | None:
    """The secret's value; None when the tenant has none by that name."""
    row = session.execute(
        text(
            "SELECT ciphertext, wrapped_key, key_id FROM secrets WHERE tenant_id = :t AND name = :n"
        ),
        {"t": tenant_id, "n": name},
    ).first()
    if row is None:
        return None
    aad = _aad(tenant_id, name)
    key_id = str(row[2])
    try:
        data_key = _open(_keyring(keyring).get(key_id), bytes(row[1]), aad)
        return _open(AESGCM(data_key), bytes(row[0]), aad).decode()
    except InvalidTag:
        raise SecretsError(
            f"secret {name!r} does not decrypt: the master key configured as {key_id!r} is not "
            "the one it was stored with"
        ) from None


def delete(session: Session, tenant_id: str, name: str) -> bool:
    result = session.execute(
        text("DELETE FROM secrets WHERE tenant_id = :t AND name = :n"),
        {"t": tenant_id, "n": name},
    )
    return bool(getattr(result, "rowcount", 0))


def names(session: Session, tenant_id: str, prefix: str = "") -> list[str]:
    rows = session.execute(
        text(
            "SELECT name FROM secrets WHERE tenant_id = :t AND starts_with(name, :p) ORDER BY name"
        ),
        {"t": tenant_id, "p": prefix},
    ).all()
    return [str(r[0]) for r in rows]


def rotate(session: Session, *, keyring: Keyring | None = None) -> int:
    """Re-wrap every data key not under the current master key with it (values untouched);
    returns how many. The caller commits; afterwards only the current key is needed."""
    ring = _keyring(keyring)
    key_id, master = ring.current
    rows = session.execute(
        text(
            "SELECT tenant_id, name, wrapped_key, key_id FROM secrets WHERE key_id <> :k FOR UPDATE"
        ),
        {"k": key_id},
    ).all()
    for tenant_id, name, wrapped, old_id in rows:
        aad = _aad(str(tenant_id), str(name))
        try:
            data_key = _open(ring.get(str(old_id)), bytes(wrapped), aad)
        except InvalidTag:
            raise SecretsError(
                f"secret {name!r} of tenant {tenant_id} does not decrypt with the key "
                f"configured as {old_id!r}"
            ) from None
        session.execute(
            text(
                "UPDATE secrets SET wrapped_key = :w, key_id = :k, updated_at = now()"
                " WHERE tenant_id = :t AND name = :n"
            ),
            {"w": _seal(master, data_key, aad), "k": key_id, "t": tenant_id, "n": name},
        )
    return len(rows)


# --- references from tenant settings ---


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {REF}


def reveal(session: Session, tenant_id: str, value: Any, *, keyring: Keyring | None = None) -> Any:
    """A settings value with its secret read: a reference is decrypted (its JSON value), a
    plaintext value (older releases) is returned as it is."""
    if not is_ref(value):
        return value
    stored = get(session, tenant_id, str(value[REF]), keyring=keyring)
    return None if stored is None else json.loads(stored)


def places(
    settings: Any, path: tuple[str, ...], at: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any, str | int]]:
    """(the place's path, its container, its key) for every place `path` names that exists."""
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(settings, list):
            for index, item in enumerate(settings):
                if rest:
                    yield from places(item, rest, (*at, str(index)))
                else:
                    yield (*at, str(index)), settings, index
        return
    if not isinstance(settings, dict) or head not in settings:
        return
    if rest:
        yield from places(settings[head], rest, (*at, head))
    else:
        yield (*at, head), settings, head


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def seal_settings(
    session: Session,
    tenant_id: str,
    settings: dict[str, Any],
    *,
    only: Iterable[str] | None = None,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """`settings` with every plaintext secret (of the top-level keys in `only`, default all)
    stored in the secrets table and replaced by a reference. Without a master key the settings
    are kept as older releases kept them (plaintext), with a warning: a server that could store
    a routing key before still can."""
    if not _keyring(keyring).keys:
        if any(
            not is_ref(container[key]) and container[key] not in (None, "", [])
            for path in SETTINGS_SECRETS
            if only is None or path[0] in set(only)
            for _where, container, key in places(settings, path)
        ):
            log.warning(
                "tenant %s: a secret is stored in its settings unencrypted: no master key is "
                "configured (%s or %s; docs/DEPLOYMENT.md, Secrets at rest)",
                tenant_id,
                KEY_ENV,
                KEY_FILE_ENV,
            )
        kept: dict[str, Any] = _copy(settings)
        return kept
    sealed: dict[str, Any] = _copy(settings)
    keys = set(sealed) if only is None else set(only)
    for path in SETTINGS_SECRETS:
        if path[0] not in keys:
            continue
        for where, container, key in list(places(sealed, path)):
            value = container[key]
            if value is None or value == "" or value == [] or is_ref(value):
                continue
            name = SETTINGS_PREFIX + "/".join(where)
            put(session, tenant_id, name, json.dumps(value), keyring=keyring)
            container[key] = {REF: name}
    return sealed


def reveal_settings(
    session: Session,
    tenant_id: str,
    settings: dict[str, Any],
    *,
    only: Iterable[str] | None = None,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """`settings` with the references (of the top-level keys in `only`, default all) read."""
    keys = set(settings) if only is None else set(only)
    if not any(is_ref(v) for v in _references(settings, keys)):
        return settings
    revealed: dict[str, Any] = _copy(settings)
    for path in SETTINGS_SECRETS:
        if path[0] in keys:
            for _where, container, key in list(places(revealed, path)):
                value = container[key]
                container[key] = reveal(session, tenant_id, value, keyring=keyring)
    return revealed


def _references(settings: dict[str, Any], keys: set[str]) -> Iterator[Any]:
    for path in SETTINGS_SECRETS:
        if path[0] in keys:
            for _where, container, key in places(settings, path):
                yield container[key]


def prune_settings_secrets(session: Session, tenant_id: str, settings: dict[str, Any]) -> int:
    """Delete the tenant's settings secrets no longer referenced from `settings`."""
    used = {
        str(v[REF]) for v in _references(settings, {p[0] for p in SETTINGS_SECRETS}) if is_ref(v)
    }
    gone = [n for n in names(session, tenant_id, SETTINGS_PREFIX) if n not in used]
    for name in gone:
        delete(session, tenant_id, name)
    return len(gone)
