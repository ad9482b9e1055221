from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel

from api.deps import StateDep, WebhookTenantDep
from ddoc.alerts import AlertmanagerWebhook, normalize_alertmanager

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class AlertOutcomeOut(BaseModel):
    dedup_key: str
    incident_id: str | None
    execution_id: str | None
    status: str


class WebhookResponse(BaseModel):
    alerts: list[AlertOutcomeOut]


@router.post(
    "/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Prometheus Alertmanager webhook (v4)",
)
async def alertmanager(
    body: AlertmanagerWebhook, tenant_id: WebhookTenantDep, state: StateDep
) -> WebhookResponse:
    outcomes = await state.intake.handle(tenant_id, normalize_alertmanager(body))
    return WebhookResponse(alerts=[AlertOutcomeOut(**o.__dict__) for o in outcomes])
