"""Responders: who may decide on steps (admin key to register)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import AdminDep, SessionDep, ViewerDep
from ddoc.contracts.roles import Role
from ddoc.platform import users

router = APIRouter(prefix="/users", tags=["users"])


class UserIn(BaseModel):
    email: str = Field(max_length=320)
    display_name: str = Field(max_length=200)
    roles: list[Role] = Field(min_length=1)
    slack_user_id: str | None = Field(default=None, max_length=32)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a responder (admin)")
def add_user(body: UserIn, principal: AdminDep, session: SessionDep) -> dict[str, Any]:
    user = users.add(
        session,
        tenant_id=principal.tenant_id,
        email=body.email,
        display_name=body.display_name,
        roles=[r.value for r in body.roles],
        slack_user_id=body.slack_user_id,
        actor=principal.actor,
    )
    session.commit()
    return users.public(user)


@router.get("", summary="Registered responders")
def list_users(principal: ViewerDep, session: SessionDep) -> list[dict[str, Any]]:
    return [users.public(u) for u in users.list_users(session, tenant_id=principal.tenant_id)]
