"""Control-plane activities the workflow asks for decisions it must not make itself: the risk of
an edited command (the tenant's rules live in the database) and pages to escalation levels.

Synchronous, like the store's: they run in the worker's thread pool.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ddoc.alerts.paging import Page, PagerDutyEvents, PagingError, pd_severity
from ddoc.contracts import names
from ddoc.contracts.execution import (
    Classification,
    ClassifyRequest,
    EscalationRequest,
    EscalationResult,
)
from ddoc.execution import policy
from ddoc.execution import store as executions
from ddoc.platform import metrics, tenancy
from ddoc.runbooks.risk import classify_command
from ddoc.runbooks.risk import tenant as tenant_rules

log = logging.getLogger(__name__)


class ControlActivities:
    def __init__(self, engine: Engine, pager: PagerDutyEvents) -> None:
        self._engine = engine
        self._pager = pager

    @activity.defn(name=names.CLASSIFY_COMMAND)
    def classify(self, request: ClassifyRequest) -> Classification:
        with Session(self._engine) as session:
            rules = tenant_rules.risk_rules(session, request.tenant_id)
        assessment = classify_command(request.command, rules)
        return Classification(risk=assessment.level, reason=assessment.reason)

    @activity.defn(name=names.ESCALATE)
    def escalate(self, request: EscalationRequest) -> EscalationResult:
        """Page the level's PagerDuty service (when it has a routing key) and record the
        escalation as an event either way. Routing keys stay in the secrets table (encrypted,
        ddoc/platform/secrets.py): they never enter a workflow's history."""
        metrics.ESCALATIONS.inc()
        with Session(self._engine) as session:
            level = policy.escalation_level(
                tenancy.settings(session, request.tenant_id), request.level
            )
            routing_key = policy.routing_key(session, request.tenant_id, level)
        if not routing_key:
            result = EscalationResult(
                paged=False, detail=f"{request.level_name}: no pager configured"
            )
        else:
            try:
                answer = self._pager.trigger(_page(request, routing_key))
            except PagingError as err:
                if err.retryable:
                    raise
                raise ApplicationError(
                    str(err), type="PagingRejected", non_retryable=True
                ) from None
            result = EscalationResult(
                paged=True, detail=f"paged {request.level_name} (dedup key {answer.dedup_key})"
            )
        with Session(self._engine) as session:
            executions.record_event(
                session,
                tenant_id=request.tenant_id,
                execution_id=request.execution_id,
                kind="escalated",
                step_id=request.step_id,
                data={
                    "level": request.level,
                    "name": request.level_name,
                    "reason": request.reason,
                    "paged": result.paged,
                    "detail": result.detail,
                },
            )
            session.commit()
        log.info("execution %s escalated: %s", request.execution_id, result.detail)
        return result


def _page(request: EscalationRequest, routing_key: str) -> Page:
    context: dict[str, Any] = dict(request.context)
    runbook = context.get("runbook") or "runbook"
    alert = context.get("alert")
    summary = f"dd0c/run: {request.reason} — {runbook}" + (f" for {alert}" if alert else "")
    return Page(
        routing_key=routing_key,
        dedup_key=request.dedup_key,
        summary=summary,
        source="dd0c/run",
        severity=pd_severity(request.severity),
        component=context.get("service"),
        group=request.level_name,
        custom_details={
            "execution_id": request.execution_id,
            "escalation_level": request.level,
            "step": request.step_id,
            **context,
        },
    )
