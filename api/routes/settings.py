"""Tenant settings (admin role): webhook signing secrets, risk rules, the execution policy,
runbook URL rewrite rules, blast-radius limits, the nightly self-check.

`PATCH /settings` and `POST /settings` are the same operation (the self-check's contract names
POST). A change of `self_check` is brought to Temporal at once: the tenant's schedule is
created, updated or deleted (ddoc/selfcheck/schedules.py) after the settings are stored; if
Temporal refuses, the answer is 503 and every control-plane worker brings it in line at start.

Secrets (signing secrets, PagerDuty routing keys, Slack tokens given as values) are write-only:
`tenancy.update_settings` stores them encrypted (ddoc/platform/secrets.py, 422 naming
DDOC_SECRETS_KEY when the server has no master key) and the settings keep a reference, shown here
as `true`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.service import RPCError

from api.deps import AdminDep, AppState, SessionDep, StateDep, ViewerDep
from ddoc.alerts import runbook_urls
from ddoc.execution import limits, policy
from ddoc.platform import ratelimit, tenancy
from ddoc.platform.errors import Unavailable
from ddoc.platform.tenancy import Principal
from ddoc.runbooks.risk import RiskRulesError, load_tenant_rules
from ddoc.runbooks.risk import tenant as tenant_rules
from ddoc.selfcheck import config as self_check
from ddoc.selfcheck import schedules
from ddoc.slack import tenants
from ddoc.trust import levels as trust

log = logging.getLogger(__name__)

router = APIRouter(prefix="/settings", tags=["settings"])

_SECRET_KEYS = ("pagerduty_signing_secrets", "grafana_signing_secret")


class SettingsIn(BaseModel):
    pagerduty_signing_secrets: list[str] | None = Field(
        default=None, description="PagerDuty v3 webhook secrets; several during rotation"
    )
    grafana_signing_secret: str | None = Field(
        default=None, description="The HMAC secret of the Grafana webhook contact point"
    )
    slack: dict[str, str] | None = Field(
        default=None,
        description='This tenant\'s Slack workspace: {"team_id", "channel", "bot_token_env", '
        '"signing_secret_env"} (secrets named by environment variables), or "bot_token" / '
        '"signing_secret" instead (the secrets themselves, stored encrypted, shown as set/unset)',
    )
    slack_channels: dict[str, dict[str, str]] | None = Field(
        default=None,
        description='Where execution messages go: {"by_service": {"checkout": "C0…"}, '
        '"by_severity": {"critical": "C0…"}}; otherwise DDOC_SLACK_CHANNEL',
    )
    execution_policy: dict[str, Any] | None = Field(
        default=None,
        description="Approvals and escalation: red_approvals (1|2), wait_minutes by severity, "
        "escalation_levels [{name, pagerduty_routing_key}], incident_timeout_minutes, "
        "heartbeat_timeout_seconds. Applies to executions started from now on.",
    )
    webhook_rate_limit: dict[str, float] | None = Field(
        default=None,
        description="Webhook deliveries a second and burst, shared by all API processes: "
        '{"per_second": 200, "burst": 5000} (defaults: DDOC_WEBHOOK_RATE, DDOC_WEBHOOK_BURST)',
    )
    trust_policy: dict[str, Any] | None = Field(
        default=None,
        description="Promotion guards: copilot_min_rehearsals, autopilot_min_successes, "
        "autopilot_clean_window, autopilot_requires_red_rollbacks, demote_on_failure, "
        "autopilot_min_resolved_ratio (0..1) (ddoc/trust/levels.py has the defaults)",
    )
    blast_radius: dict[str, Any] | None = Field(
        default=None,
        description="What intake may start by itself (docs/LIMITS.md): "
        "max_concurrent_per_runbook (5), max_concurrent_per_service (10), max_runs_per_hour "
        '{"autopilot": 6, "copilot": 20}, production_environments (never autopilot), breaker '
        '{"failures": 3, "window_minutes": 60}, owner_level (1), runbooks {id: overrides}',
    )
    runbook_url_rules: list[dict[str, str]] | None = Field(
        default=None,
        max_length=runbook_urls.MAX_RULES,
        description="How an alert's runbook_url names a runbook's source path: "
        '[{"pattern": "https://runbooks.example.dev/runbooks/{group}/{name}", '
        '"path": "content/runbooks/{group}/{Name}.md"}] ({Name}: first letter upper-cased; '
        "compared case-insensitively with source paths)",
    )
    self_check: dict[str, Any] | None = Field(
        default=None,
        description="The nightly self-check (docs/decisions/0018-self-checks.md): "
        '{"enabled": true, "time": "03:00", "time_zone": "UTC", "environment": "<agent '
        'environment>", "run_read_only": false, "values": {"namespace": "checkout"}}; '
        "environment is required; the tenant's Temporal Schedule follows at once",
    )


def _shown(settings: dict[str, Any]) -> dict[str, Any]:
    # Secrets are write-only: say whether they are set, never what they are.
    shown: dict[str, Any] = {
        k: (bool(v) if k in _SECRET_KEYS else v)
        for k, v in settings.items()
        if k != tenant_rules.RISK_RULES_KEY
    }
    raw_policy = settings.get(policy.SETTINGS_KEY)
    if isinstance(raw_policy, dict):
        shown[policy.SETTINGS_KEY] = policy.shown(raw_policy)
    slack = settings.get(tenants.SETTINGS_KEY)
    if isinstance(slack, dict):
        shown[tenants.SETTINGS_KEY] = {
            k: (bool(v) if k in ("bot_token", "signing_secret") else v) for k, v in slack.items()
        }
    return shown


@router.get("/risk-rules", summary="The tenant's own risk rules (YAML)")
def get_risk_rules(principal: ViewerDep, session: SessionDep) -> Response:
    text = tenancy.settings(session, principal.tenant_id).get(tenant_rules.RISK_RULES_KEY, "")
    return Response(text, media_type="application/yaml")


@router.put(
    "/risk-rules",
    summary="Replace the tenant's risk rules (YAML body; see docs/RISK_RULES.md)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        }
    },
)
async def put_risk_rules(
    request: Request, principal: AdminDep, session: SessionDep
) -> dict[str, Any]:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        rules = load_tenant_rules(text) if text.strip() else None
    except UnicodeDecodeError:
        raise HTTPException(422, "risk rules must be UTF-8 YAML") from None
    except RiskRulesError as err:
        raise HTTPException(422, f"invalid risk rules: {err}") from None
    tenancy.update_settings(
        session,
        tenant_id=principal.tenant_id,
        changes={tenant_rules.RISK_RULES_KEY: text if rules else None},
        actor=principal.actor,
    )
    session.commit()
    # Runbooks parsed from now on use them; stored versions keep the classes they were given.
    shown: dict[str, Any] = {"rules": [r.id for r in rules.tenant] if rules else []}
    if rules is not None and rules.programs:
        shown["programs"] = sorted(rules.programs)
    return shown


@router.get("", summary="The tenant's settings (secrets shown as set/unset)")
def get_settings(principal: ViewerDep, session: SessionDep) -> dict[str, Any]:
    return _shown(tenancy.settings(session, principal.tenant_id))


@router.patch("", summary="Change settings (admin); an empty value removes a setting")
async def patch_settings(body: SettingsIn, principal: AdminDep, state: StateDep) -> dict[str, Any]:
    return await _change(body, principal, state)


@router.post("", summary="Change settings (admin): the same as PATCH /settings")
async def post_settings(body: SettingsIn, principal: AdminDep, state: StateDep) -> dict[str, Any]:
    return await _change(body, principal, state)


async def _change(body: SettingsIn, principal: Principal, state: AppState) -> dict[str, Any]:
    changes = {k: (v or None) for k, v in body.model_dump(exclude_unset=True).items()}
    _validate(changes)
    shown = await asyncio.to_thread(_store, state.engine, principal, changes)
    if self_check.SETTINGS_KEY in changes:
        await _sync_schedule(state, principal.tenant_id, shown)
    return _shown(shown)


def _validate(changes: dict[str, Any]) -> None:
    """Each changed setting checked by its owner's rule; a bad one is 422 naming it."""
    slack = changes.get("slack")
    if isinstance(slack, dict):
        try:
            tenants.validate(slack)
        except tenants.SlackSettingsError as err:
            raise HTTPException(422, f"invalid slack: {err}") from None
    routing = changes.get("slack_channels")
    if isinstance(routing, dict) and set(routing) - {"by_service", "by_severity"}:
        raise HTTPException(422, "slack_channels takes by_service and by_severity only")
    new_policy = changes.get(policy.SETTINGS_KEY)
    if isinstance(new_policy, dict):
        try:
            policy.validate(new_policy)
        except policy.PolicyError as err:
            raise HTTPException(422, f"invalid execution_policy: {err}") from None
    new_limit = changes.get(ratelimit.SETTINGS_KEY)
    if isinstance(new_limit, dict):
        try:
            ratelimit.validate(new_limit)
        except ValueError as err:
            raise HTTPException(422, f"invalid webhook_rate_limit: {err}") from None
    new_trust = changes.get(trust.SETTINGS_KEY)
    if isinstance(new_trust, dict):
        try:
            trust.validate(new_trust)
        except trust.TrustError as err:
            raise HTTPException(422, f"invalid trust_policy: {err}") from None
    new_limits = changes.get(limits.SETTINGS_KEY)
    if isinstance(new_limits, dict):
        try:
            limits.validate(new_limits)
        except limits.LimitsError as err:
            raise HTTPException(422, f"invalid blast_radius: {err}") from None
    new_rules = changes.get(runbook_urls.SETTINGS_KEY)
    if isinstance(new_rules, list):
        try:
            changes[runbook_urls.SETTINGS_KEY] = runbook_urls.validate_rules(new_rules)
        except runbook_urls.RulesError as err:
            raise HTTPException(422, f"invalid runbook_url_rules: {err}") from None
    new_check = changes.get(self_check.SETTINGS_KEY)
    if new_check is not None:
        try:
            changes[self_check.SETTINGS_KEY] = self_check.validate(new_check)
        except self_check.SelfCheckSettingsError as err:
            raise HTTPException(422, f"invalid self_check: {err}") from None


def _store(engine: Engine, principal: Principal, changes: dict[str, Any]) -> dict[str, Any]:
    with Session(engine) as session:
        tenancy.update_settings(
            session, tenant_id=principal.tenant_id, changes=changes, actor=principal.actor
        )
        session.commit()
        return tenancy.settings(session, principal.tenant_id)


async def _sync_schedule(state: AppState, tenant_id: str, stored: dict[str, Any]) -> None:
    try:
        done = await schedules.sync(
            state.temporal,
            tenant_id=tenant_id,
            config=self_check.config_of(stored),
            task_queue=state.settings.control_task_queue,
            agent_offline_timeout_seconds=state.settings.agent_offline_timeout_seconds,
        )
    except (RPCError, RuntimeError) as err:
        log.warning("self-check schedule of %s not synced: %s", tenant_id, err)
        raise Unavailable(
            f"the settings are saved, but Temporal did not take the self-check schedule ({err}); "
            "send them again, or restart a control-plane worker, to bring it in line",
            retry_after_seconds=5,
        ) from None
    log.info("self-check schedule of %s: %s", tenant_id, done)
