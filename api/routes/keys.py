"""API keys of the caller's tenant (admin): create, list, rotate, revoke. The plaintext key is
returned once, at creation or rotation; only its SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import AdminDep, SessionDep
from ddoc.contracts.roles import Role
from ddoc.platform import tenancy
from ddoc.platform.tables import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api keys"])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1, max_length=len(Role))


class KeyOut(BaseModel):
    id: str
    name: str
    roles: list[str]
    prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: datetime
    revoked_at: datetime | None = Field(description="In the future: a rotated key's grace end")


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, never stored")
    replaces: str | None = None


class RotateIn(BaseModel):
    grace_seconds: int = Field(
        default=0, ge=0, le=7 * 86400, description="How long the old key keeps working"
    )


def _out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        roles=row.roles,
        prefix=row.key_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API key (admin)")
def create_key(body: KeyIn, principal: AdminDep, session: SessionDep) -> NewKeyOut:
    row, plaintext = tenancy.create_api_key(
        session,
        tenant_id=principal.tenant_id,
        name=body.name,
        roles=[r.value for r in body.roles],
        actor=principal.actor,
    )
    session.commit()
    return NewKeyOut(**_out(row).model_dump(), key=plaintext)


@router.get("", summary="The tenant's API keys (never the keys themselves)")
def list_keys(principal: AdminDep, session: SessionDep) -> list[KeyOut]:
    return [_out(r) for r in tenancy.list_api_keys(session, tenant_id=principal.tenant_id)]


@router.post(
    "/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    summary="Replace a key: a new key with its name and roles; the old one ends after the grace",
)
def rotate_key(
    key_id: str, principal: AdminDep, session: SessionDep, body: RotateIn | None = None
) -> NewKeyOut:
    row, plaintext = tenancy.rotate_api_key(
        session,
        tenant_id=principal.tenant_id,
        key_id=key_id,
        actor=principal.actor,
        grace_seconds=body.grace_seconds if body else 0,
    )
    session.commit()
    return NewKeyOut(**_out(row).model_dump(), key=plaintext, replaces=key_id)


@router.delete("/{key_id}", summary="Revoke a key at once")
def revoke_key(key_id: str, principal: AdminDep, session: SessionDep) -> KeyOut:
    row = tenancy.revoke_api_key(
        session, tenant_id=principal.tenant_id, key_id=key_id, actor=principal.actor
    )
    session.commit()
    return _out(row)
