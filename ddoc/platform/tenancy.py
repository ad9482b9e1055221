"""Tenants, API keys and webhook tokens: creation, bootstrap and authentication."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, text
from sqlmodel import Session, col, select

from ddoc.contracts.roles import Role, holds
from ddoc.platform import audit, secrets
from ddoc.platform.errors import Conflict, NotFound
from ddoc.platform.ids import new_id, new_token, token_hash
from ddoc.platform.tables import ApiKey, Tenant

API_KEY_PREFIX = "ddoc"
WEBHOOK_TOKEN_PREFIX = "ddwh"


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request from the API key, passed on explicitly."""

    tenant_id: str
    key_id: str
    name: str
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"

    def at_least(self, role: Role) -> bool:
        return holds(self.roles, role)


@dataclass(frozen=True)
class BootstrapResult:
    tenant_id: str
    api_key: str | None  # plaintext, only when created by this call
    webhook_token: str | None


# No dots: agent task queues are `ddoc.agent.<tenant>.<environment>`, and a tenant id with a dot
# could name another tenant's queue (tenant "a.b", environment "c" = tenant "a", "b.c").
TENANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def ensure_tenant(session: Session, *, tenant_id: str, name: str | None = None) -> Tenant:
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r}: 1-64 letters, digits, - or _")
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        tenant = Tenant(id=tenant_id, name=name or tenant_id)
        session.add(tenant)
        session.flush()
    return tenant


def create_api_key(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    roles: list[str],
    key: str | None = None,
    actor: str = "system",
) -> tuple[ApiKey, str]:
    """Returns the stored row and the plaintext key (shown once, never stored)."""
    plaintext = key or new_token(API_KEY_PREFIX)
    row = ApiKey(
        id=new_id("key"),
        tenant_id=tenant_id,
        name=name,
        key_hash=token_hash(plaintext),
        key_prefix=plaintext[:9],
        roles=sorted(set(roles)),
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="api_key.created",
        subject=row.id,
        data={"name": name, "roles": row.roles},
    )
    return row, plaintext


def set_webhook_token(session: Session, *, tenant_id: str, token: str | None = None) -> str:
    plaintext = token or new_token(WEBHOOK_TOKEN_PREFIX)
    tenant = ensure_tenant(session, tenant_id=tenant_id)
    tenant.webhook_token_hash = token_hash(plaintext)
    session.add(tenant)
    session.flush()
    return plaintext


def bootstrap(
    engine: Engine,
    *,
    tenant_id: str,
    api_key: str | None = None,
    webhook_token: str | None = None,
) -> BootstrapResult:
    """First start: create the tenant, an admin key and a webhook token. Later starts: no-op
    (given values are honoured on first start only, so a restart never rotates credentials)."""
    with Session(engine) as session:
        ensure_tenant(session, tenant_id=tenant_id)
        has_key = session.exec(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id)).first()
        created_key = None
        if has_key is None:
            _, created_key = create_api_key(
                session,
                tenant_id=tenant_id,
                name="bootstrap admin",
                roles=[Role.ADMIN],
                key=api_key,
            )
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        created_token = None
        if tenant.webhook_token_hash is None:
            created_token = set_webhook_token(session, tenant_id=tenant_id, token=webhook_token)
        session.commit()
    return BootstrapResult(tenant_id=tenant_id, api_key=created_key, webhook_token=created_token)


def settings(session: Session, tenant_id: str) -> dict[str, Any]:
    tenant = session.get(Tenant, tenant_id)
    return dict(tenant.settings) if tenant else {}


def update_settings(
    session: Session,
    *,
    tenant_id: str,
    changes: dict[str, Any],
    actor: str,
    keyring: secrets.Keyring | None = None,
) -> None:
    """Merge `changes` into the tenant's settings (a None value removes a key). Secrets among
    the changes (`secrets.SETTINGS_SECRETS`) are stored encrypted and the settings keep a
    reference; secrets no longer referenced are deleted. `secrets.NoMasterKey` when there is a
    secret to store and no master key."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {tenant_id} not found")
    sealed = secrets.seal_settings(session, tenant_id, changes, only=changes, keyring=keyring)
    merged = {**tenant.settings, **sealed}
    tenant.settings = {k: v for k, v in merged.items() if v is not None}
    secrets.prune_settings_secrets(session, tenant_id, tenant.settings)
    session.add(tenant)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="tenant.settings_changed",
        subject=tenant_id,
        # Secret values never reach the audit log: only which settings changed.
        data={"changed": sorted(changes)},
    )


def authenticate_api_key(session: Session, key: str) -> Principal | None:
    """The key's principal, unless it is unknown or revoked (a rotated key keeps working until
    the end of its grace period)."""
    row = session.exec(
        select(ApiKey).where(
            ApiKey.key_hash == token_hash(key),
            or_(col(ApiKey.revoked_at).is_(None), col(ApiKey.revoked_at) > func.now()),
        )
    ).first()
    if row is None:
        return None
    return Principal(
        tenant_id=row.tenant_id, key_id=row.id, name=row.name, roles=frozenset(row.roles)
    )


class KeyNotFound(NotFound):
    pass


class LastAdminKey(Conflict):
    """Revoking it would leave the tenant with no way to administer itself."""


def list_api_keys(session: Session, *, tenant_id: str) -> list[ApiKey]:
    return list(
        session.exec(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(col(ApiKey.created_at))
        )
    )


def _key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    row = session.exec(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id).with_for_update()
    ).first()
    if row is None:
        raise KeyNotFound(f"API key {key_id} not found")
    return row


def revoke_api_key(session: Session, *, tenant_id: str, key_id: str, actor: str) -> ApiKey:
    """Revoke now (idempotent; an earlier revocation time stands)."""
    row = _key(session, tenant_id, key_id)
    now = datetime.now(UTC)
    if row.revoked_at is None or row.revoked_at > now:
        if Role.ADMIN in row.roles and not _other_admin_key(session, tenant_id, key_id):
            raise LastAdminKey(
                f"{key_id} is the tenant's last admin key: create another admin key first"
            )
        row.revoked_at = now
        session.add(row)
        audit.append(
            session, tenant_id=tenant_id, actor=actor, action="api_key.revoked", subject=key_id
        )
    return row


def _other_admin_key(session: Session, tenant_id: str, key_id: str) -> bool:
    return (
        session.exec(
            select(ApiKey.id).where(
                ApiKey.tenant_id == tenant_id,
                ApiKey.id != key_id,
                col(ApiKey.roles).contains([Role.ADMIN.value]),
                col(ApiKey.revoked_at).is_(None),
            )
        ).first()
        is not None
    )


def rotate_api_key(
    session: Session, *, tenant_id: str, key_id: str, actor: str, grace_seconds: int = 0
) -> tuple[ApiKey, str]:
    """A new key with the old one's name and roles; the old one stops working after
    `grace_seconds` (0: at once), so deployments can switch over without an outage."""
    old = _key(session, tenant_id, key_id)
    now = datetime.now(UTC)
    if old.revoked_at is not None and old.revoked_at <= now:
        raise KeyNotFound(f"API key {key_id} is revoked: create a new one instead")
    row, plaintext = create_api_key(
        session, tenant_id=tenant_id, name=old.name, roles=old.roles, actor=actor
    )
    old.revoked_at = now + timedelta(seconds=grace_seconds)
    session.add(old)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="api_key.rotated",
        subject=key_id,
        data={"new_key_id": row.id, "grace_seconds": grace_seconds},
    )
    return row, plaintext


def tenant_for_webhook_token(session: Session, token: str) -> str | None:
    found = webhook_tenant_and_settings(session, token)
    return found[0] if found else None


def webhook_tenant_and_settings(session: Session, token: str) -> tuple[str, dict[str, Any]] | None:
    """The tenant a webhook token belongs to, with its settings, in one query."""
    row = session.exec(
        select(Tenant.id, Tenant.settings).where(Tenant.webhook_token_hash == token_hash(token))
    ).first()
    return (row[0], dict(row[1])) if row else None


def rotate_secrets(engine: Engine, *, keyring: secrets.Keyring | None = None) -> tuple[int, int]:
    """`ddoc secrets rotate`: encrypt plaintext secrets older releases left in tenant settings,
    then re-wrap every data key with the current master key, in one transaction. Returns (data
    keys re-wrapped, tenants whose settings were sealed)."""
    ring = keyring if keyring is not None else secrets.keyring_from_env()
    ring.current  # noqa: B018 (NoMasterKey before anything is read)
    sealed = 0
    with Session(engine) as session:
        rows = session.execute(text("SELECT id, settings FROM tenants ORDER BY id")).all()
        for tenant_id, raw in rows:
            current = dict(raw or {})
            plain = {
                path[0]
                for path in secrets.SETTINGS_SECRETS
                for _w, container, key in secrets.places(current, path)
                if container[key] not in (None, "", []) and not secrets.is_ref(container[key])
            }
            if plain:
                update_settings(
                    session,
                    tenant_id=str(tenant_id),
                    changes={k: current[k] for k in plain},
                    actor="ddoc secrets rotate",
                    keyring=ring,
                )
                sealed += 1
        rewrapped = secrets.rotate(session, keyring=ring)
        session.commit()
    return rewrapped, sealed
