"""Alert webhooks, one route per source, and `POST /match/{source}` (the same bodies, no side
effects: for debugging routing).

Bodies are read tolerantly (ddoc/alerts/sources/): every shape the sources send is accepted, and
each field that had to be coerced is counted in `ddoc_webhook_coerced_total{source,field}` (and
listed by `/match` as `coerced`). Only a body that cannot be an alert at all is refused (422).

Every delivery is authenticated with the tenant's webhook token (`Authorization: Bearer …`, or
`?token=` for tools that cannot set headers). Sources that sign (PagerDuty, Grafana) are
verified in addition when the tenant configured a signing secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlmodel import Session

from api.deps import AppState, StateDep, ViewerDep
from ddoc.alerts import sources
from ddoc.alerts.sources import NormalizedAlert
from ddoc.alerts.webhook_auth import SignatureError, verify_grafana, verify_pagerduty
from ddoc.platform import metrics, ratelimit, secrets, tenancy

router = APIRouter(tags=["webhooks"])

# Alertmanager can cap a group with `max_alerts` in its webhook_config; larger deliveries are
# refused whole (413) rather than half-processed.
MAX_ALERTS_PER_DELIVERY = 1000


class Source:
    def __init__(
        self,
        name: str,
        model: type[BaseModel],
        normalize: Callable[[Any], list[NormalizedAlert]],
        summary: str,
    ) -> None:
        self.name = name
        self.model = model
        self.normalize = normalize
        self.summary = summary


SOURCES = {
    s.name: s
    for s in (
        Source(
            "alertmanager",
            sources.AlertmanagerWebhook,
            sources.normalize_alertmanager,
            "Prometheus Alertmanager webhook (version 4, or legacy 3)",
        ),
        Source(
            "pagerduty",
            sources.PagerDutyWebhook,
            sources.normalize_pagerduty,
            "PagerDuty v3 webhook, or v2/v1 `messages` (X-PagerDuty-Signature verified when "
            "configured)",
        ),
        Source(
            "opsgenie",
            sources.OpsgenieWebhook,
            sources.normalize_opsgenie,
            "OpsGenie webhook integration",
        ),
        Source(
            "grafana",
            sources.GrafanaWebhook,
            sources.normalize_grafana,
            "Grafana alerting webhook contact point (HMAC verified when configured)",
        ),
        Source(
            "generic",
            sources.GenericAlert,
            sources.normalize_generic,
            "dd0c/run's generic alert format",
        ),
    )
}


class AlertOutcomeOut(BaseModel):
    dedup_key: str
    incident_id: str | None
    execution_id: str | None
    status: str


class WebhookResponse(BaseModel):
    alerts: list[AlertOutcomeOut]


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token") or None


@dataclass(frozen=True)
class WebhookCaller:
    tenant_id: str
    settings: dict[str, Any]


def webhook_tenant(request: Request, state: StateDep) -> WebhookCaller:
    source = request.url.path.rsplit("/", 1)[-1]
    token = _token(request)
    if token is None:
        metrics.WEBHOOKS_REJECTED.labels(source, "auth").inc()
        raise HTTPException(
            401,
            "missing webhook token: send `Authorization: Bearer <webhook token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with Session(state.engine) as session:
        found = tenancy.webhook_tenant_and_settings(session, token)
        if found is None:
            metrics.WEBHOOKS_REJECTED.labels(source, "auth").inc()
            raise HTTPException(
                401, "invalid webhook token", headers={"WWW-Authenticate": "Bearer"}
            )
        tenant_id, tenant_settings = found
        # The signing secrets are stored encrypted (ddoc/platform/secrets.py): read them here,
        # in the same session, only when the tenant has some.
        try:
            tenant_settings = secrets.reveal_settings(
                session, tenant_id, tenant_settings, only=_SIGNING_SECRET_KEYS
            )
        except secrets.SecretsError as err:
            raise HTTPException(503, f"cannot check the delivery's signature: {err}") from None
    return WebhookCaller(tenant_id, tenant_settings)


_SIGNING_SECRET_KEYS = ("pagerduty_signing_secrets", "grafana_signing_secret")


_REJECTION_REASONS = {401: "signature", 409: "duplicate", 413: "too_large", 429: "rate_limited"}


@dataclass(frozen=True)
class ParsedBody:
    alerts: list[NormalizedAlert]
    coerced: list[str]  # the source's fields that came in another shape and were coerced


def parse_body(source: Source, raw: bytes) -> ParsedBody:
    try:
        with sources.recording_coercions() as coerced:
            body = source.model.model_validate_json(raw)
            alerts = source.normalize(body)
    except ValidationError as err:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in err.errors(include_url=False, include_input=False, include_context=False)
            ]
        ) from None
    if len(alerts) > MAX_ALERTS_PER_DELIVERY:
        raise HTTPException(
            413,
            f"{len(alerts)} alerts in one delivery; the limit is {MAX_ALERTS_PER_DELIVERY} "
            "(Alertmanager: set max_alerts in the webhook_config)",
        )
    return ParsedBody(alerts, sorted(coerced))


def _verify(source: str, raw: bytes, request: Request, settings: dict[str, Any]) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        if source == "pagerduty" and settings.get("pagerduty_signing_secrets"):
            verify_pagerduty(raw, headers, settings["pagerduty_signing_secrets"])
        if source == "grafana" and settings.get("grafana_signing_secret"):
            verify_grafana(raw, headers, settings["grafana_signing_secret"])
    except SignatureError as err:
        raise HTTPException(401, str(err)) from None


def _seen_delivery(state: AppState, tenant_id: str, source: str, delivery_id: str) -> bool:
    with Session(state.engine) as session:
        return (
            session.execute(
                text(
                    "SELECT 1 FROM webhook_deliveries"
                    " WHERE tenant_id = :t AND source = :s AND delivery_id = :d"
                ),
                {"t": tenant_id, "s": source, "d": delivery_id},
            ).first()
            is not None
        )


def _remember_delivery(state: AppState, tenant_id: str, source: str, delivery_id: str) -> None:
    with Session(state.engine) as session:
        session.execute(
            text(
                "INSERT INTO webhook_deliveries (tenant_id, source, delivery_id)"
                " VALUES (:t, :s, :d) ON CONFLICT DO NOTHING"
            ),
            {"t": tenant_id, "s": source, "d": delivery_id},
        )
        session.commit()


def _body_doc(source: Source, path: str) -> dict[str, Any]:
    """The source's model as the request body schema; its `$defs` stay inside it and are
    referenced by their absolute place in the OpenAPI document (so every `$ref` resolves)."""
    here = (
        "#/paths/"
        + path.replace("~", "~0").replace("/", "~1")
        + "/post/requestBody/content/application~1json/schema/$defs/{model}"
    )
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": source.model.model_json_schema(ref_template=here)}
            },
        }
    }


def _webhook_route(source: Source) -> None:
    async def receive(
        request: Request, caller: Annotated[WebhookCaller, Depends(webhook_tenant)], state: StateDep
    ) -> WebhookResponse:
        try:
            response = await deliver(request, caller, state)
        except HTTPException as err:
            reason = _REJECTION_REASONS.get(err.status_code, "invalid")
            metrics.WEBHOOKS_REJECTED.labels(source.name, reason).inc()
            raise
        except RequestValidationError:
            metrics.WEBHOOKS_REJECTED.labels(source.name, "invalid").inc()
            raise
        metrics.WEBHOOKS_RECEIVED.labels(source.name).inc()
        return response

    async def deliver(request: Request, caller: WebhookCaller, state: AppState) -> WebhookResponse:
        tenant_id = caller.tenant_id
        wait = await asyncio.to_thread(
            state.rate_limiter.take,
            tenant_id,
            ratelimit.limit_for(caller.settings, state.webhook_limit),
        )
        if wait:
            raise HTTPException(
                429,
                f"this tenant's webhook rate limit is exceeded; retry in {wait:.1f} s "
                "(the limit is set per tenant: webhook_rate_limit in PATCH /settings)",
                headers={"Retry-After": ratelimit.retry_after(wait)},
            )
        raw = await request.body()
        _verify(source.name, raw, request, caller.settings)
        delivery_id = request.headers.get("x-webhook-id")
        if delivery_id:
            seen = await asyncio.to_thread(
                _seen_delivery, state, tenant_id, source.name, delivery_id
            )
            if seen:
                raise HTTPException(409, f"delivery {delivery_id} was already received")
        parsed = parse_body(source, raw)
        outcomes = await state.intake.handle(tenant_id, parsed.alerts)
        for name in parsed.coerced:
            metrics.WEBHOOK_COERCED.labels(source.name, name).inc()
        if delivery_id:
            await asyncio.to_thread(_remember_delivery, state, tenant_id, source.name, delivery_id)
        return WebhookResponse(alerts=[AlertOutcomeOut(**o.__dict__) for o in outcomes])

    router.add_api_route(
        f"/webhooks/{source.name}",
        receive,
        methods=["POST"],
        status_code=status.HTTP_202_ACCEPTED,
        summary=source.summary,
        openapi_extra=_body_doc(source, f"/webhooks/{source.name}"),
        name=f"webhook_{source.name}",
    )


def _match_route(source: Source) -> None:
    def match(
        raw: Annotated[bytes, Depends(_raw_body)], principal: ViewerDep, state: StateDep
    ) -> dict[str, Any]:
        parsed = parse_body(source, raw)
        results = []
        with Session(state.engine) as session:
            for alert in parsed.alerts:
                result = state.matcher.match(session, tenant_id=principal.tenant_id, alert=alert)
                results.append(
                    {
                        "dedup_key": alert.dedup_key,
                        "status": result.status,
                        "candidates": [
                            {
                                "runbook_id": c.runbook_id,
                                "title": c.title,
                                "source_path": c.source_path,
                                "score": c.score,
                                "reasons": c.reasons,
                                "method": c.method,
                            }
                            for c in result.candidates
                        ],
                        "attached": {
                            "runbook_id": result.attached.runbook_id,
                            "source_path": result.attached.source_path,
                            "score": result.attached.score,
                        }
                        if result.attached
                        else None,
                    }
                )
        return {"alerts": results, "coerced": parsed.coerced}

    router.add_api_route(
        f"/match/{source.name}",
        match,
        methods=["POST"],
        summary=f"Rank runbooks for a {source.name} body; starts nothing",
        openapi_extra=_body_doc(source, f"/match/{source.name}"),
        name=f"match_{source.name}",
        tags=["matching"],
    )


async def _raw_body(request: Request) -> bytes:
    return await request.body()


for _source in SOURCES.values():
    _webhook_route(_source)
    _match_route(_source)
