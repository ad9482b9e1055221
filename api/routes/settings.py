"""Tenant settings (admin role): webhook signing secrets, alert correlation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, SessionDep
from ddoc import tenancy
from ddoc.tenancy import Role

router = APIRouter(prefix="/settings", tags=["settings"])

_SECRET_KEYS = ("pagerduty_signing_secrets", "grafana_signing_secret")


class SettingsIn(BaseModel):
    pagerduty_signing_secrets: list[str] | None = Field(
        default=None, description="PagerDuty v3 webhook secrets; several during rotation"
    )
    grafana_signing_secret: str | None = Field(
        default=None, description="The HMAC secret of the Grafana webhook contact point"
    )


def _shown(settings: dict[str, Any]) -> dict[str, Any]:
    # Secrets are write-only: say whether they are set, never what they are.
    return {k: (bool(v) if k in _SECRET_KEYS else v) for k, v in settings.items()}


@router.get("", summary="The tenant's settings (secrets shown as set/unset)")
def get_settings(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return _shown(tenancy.settings(session, principal.tenant_id))


@router.patch("", summary="Change settings (admin); an empty value removes a setting")
def patch_settings(
    body: SettingsIn, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    if Role.ADMIN not in principal.roles:
        raise HTTPException(403, "changing settings needs the admin role")
    changes = {k: (v or None) for k, v in body.model_dump(exclude_unset=True).items()}
    tenancy.update_settings(
        session, tenant_id=principal.tenant_id, changes=changes, actor=principal.actor
    )
    session.commit()
    return _shown(tenancy.settings(session, principal.tenant_id))
