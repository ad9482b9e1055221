"""Alert intake: normalised alerts → incidents → matched runbook → execution workflow.

Idempotency is settled by Postgres: one open incident per (tenant, dedup key), enforced by a
unique index and claimed with one INSERT … ON CONFLICT, so racing deliveries of the same alert
count as repeats of one incident. The execution's workflow id is derived from tenant, dedup key
and incident, and started with Temporal's USE_EXISTING conflict policy, so a retried delivery
can finish a start that a crash interrupted without ever starting a second execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from ddoc import executions, matching, runbooks
from ddoc import temporal as attrs
from ddoc.alerts import NormalizedAlert
from ddoc.contracts import AlertContext, ExecutionInput, ExecutionMode
from ddoc.ids import new_id, short_hash
from ddoc.settings import Settings
from ddoc.tables import Alert, Execution
from workflows.execution import RunbookExecutionWorkflow

log = logging.getLogger(__name__)


class StartFailed(RuntimeError):
    """Temporal did not accept the start; the incident is stored and a retry will finish it."""


@dataclass
class AlertOutcome:
    dedup_key: str
    incident_id: str | None
    execution_id: str | None
    status: str  # started | duplicate | joined | suggested | unmatched | resolved


@dataclass
class _Decision:
    outcome: AlertOutcome
    start: ExecutionInput | None = None


def execution_id_for(tenant_id: str, dedup_key: str, incident_id: str) -> str:
    return f"ex-{short_hash(tenant_id, dedup_key)}-{incident_id.removeprefix('inc_')[:8]}"


class Intake:
    def __init__(self, *, engine: Engine, client: Client, settings: Settings) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings

    async def handle(self, tenant_id: str, alerts: list[NormalizedAlert]) -> list[AlertOutcome]:
        outcomes: list[AlertOutcome] = []
        failures: list[str] = []
        for alert in alerts:
            decision = await asyncio.to_thread(self._record, tenant_id, alert)
            if decision.start is not None:
                try:
                    await start_execution(
                        self._client, decision.start, task_queue=self._settings.control_task_queue
                    )
                except Exception as err:  # Temporal unreachable: keep going, report at the end
                    log.warning("could not start %s: %s", decision.start.execution_id, err)
                    failures.append(decision.outcome.dedup_key)
                else:
                    await asyncio.to_thread(self._mark_started, decision.start.execution_id)
            outcomes.append(decision.outcome)
        if failures:
            raise StartFailed(
                f"stored {len(alerts)} alert(s), but Temporal did not accept the execution start "
                f"for {', '.join(failures)}; a retried delivery finishes it"
            )
        return outcomes

    def _record(self, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        with Session(self._engine) as session:
            if alert.status == "resolved":
                decision = self._resolve(session, tenant_id, alert)
            else:
                decision = self._fire(session, tenant_id, alert)
            session.add(
                Alert(
                    id=new_id("al"),
                    tenant_id=tenant_id,
                    incident_id=decision.outcome.incident_id,
                    source=alert.source,
                    dedup_key=alert.dedup_key,
                    status=alert.status,
                    title=alert.title,
                    description=alert.description,
                    service=alert.service,
                    severity=alert.severity,
                    environment=alert.environment,
                    labels=alert.labels,
                    annotations=alert.annotations,
                    links=alert.links,
                    raw=alert.raw,
                    starts_at=alert.starts_at,
                )
            )
            session.commit()
            return decision

    def _fire(self, session: Session, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        row = session.execute(
            text(
                "INSERT INTO incidents (id, tenant_id, dedup_key, source, status, title, service,"
                " severity, environment, labels, annotations, match_status)"
                " VALUES (:id, :tenant, :key, :source, 'open', :title, :service, :severity,"
                " :environment, CAST(:labels AS jsonb), CAST(:annotations AS jsonb), 'pending')"
                " ON CONFLICT (tenant_id, dedup_key) WHERE status = 'open'"
                " DO UPDATE SET alert_count = incidents.alert_count + 1, last_seen_at = now()"
                " RETURNING id, execution_id, (xmax = 0) AS inserted"
            ),
            {
                "id": new_id("inc"),
                "tenant": tenant_id,
                "key": alert.dedup_key,
                "source": alert.source,
                "title": alert.title,
                "service": alert.service,
                "severity": alert.severity,
                "environment": alert.environment,
                "labels": json.dumps(alert.labels),
                "annotations": json.dumps(alert.annotations),
            },
        ).one()
        incident_id: str = row.id
        if not row.inserted:
            return self._repeat(session, tenant_id, alert, incident_id, row.execution_id)

        result = matching.match_alert(session, tenant_id=tenant_id, alert=alert)
        execution_input = None
        if result.attached is not None:
            runbook = runbooks.get(
                session, tenant_id=tenant_id, runbook_id=result.attached.runbook_id
            )
            version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
            execution_input = executions.build_input(
                execution_id=execution_id_for(tenant_id, alert.dedup_key, incident_id),
                tenant_id=tenant_id,
                environment=alert.environment or self._settings.environment,
                runbook=runbook,
                version=version,
                mode=ExecutionMode(runbook.trust_level),
                alert=_alert_context(alert),
                incident_id=incident_id,
                command_timeout_seconds=self._settings.command_timeout_seconds,
                agent_offline_timeout_seconds=self._settings.agent_offline_timeout_seconds,
            )
            executions.create(session, inp=execution_input, started_by=f"alert:{alert.source}")
        session.execute(
            text(
                "UPDATE incidents SET match_status = :status, match = CAST(:match AS jsonb),"
                " runbook_id = :runbook, runbook_version = :version, execution_id = :execution"
                " WHERE id = :id"
            ),
            {
                "status": result.status,
                "match": json.dumps(
                    {"candidates": [c.__dict__ for c in result.candidates]}, default=str
                ),
                "runbook": execution_input.runbook_id if execution_input else None,
                "version": execution_input.runbook_version if execution_input else None,
                "execution": execution_input.execution_id if execution_input else None,
                "id": incident_id,
            },
        )
        status = "started" if execution_input else result.status
        return _Decision(
            AlertOutcome(
                dedup_key=alert.dedup_key,
                incident_id=incident_id,
                execution_id=execution_input.execution_id if execution_input else None,
                status=status,
            ),
            start=execution_input,
        )

    def _repeat(
        self,
        session: Session,
        tenant_id: str,
        alert: NormalizedAlert,
        incident_id: str,
        execution_id: str | None,
    ) -> _Decision:
        outcome = AlertOutcome(alert.dedup_key, incident_id, execution_id, "duplicate")
        if execution_id is None:
            return _Decision(outcome)
        execution = session.exec(
            select(Execution).where(Execution.id == execution_id, Execution.tenant_id == tenant_id)
        ).one()
        if execution.workflow_started:
            return _Decision(outcome)
        # The first delivery stored the execution but its start never got through: finish it.
        version = runbooks.version(
            session,
            tenant_id=tenant_id,
            runbook_id=execution.runbook_id,
            number=execution.runbook_version,
        )
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=execution.runbook_id)
        start = executions.build_input(
            execution_id=execution.id,
            tenant_id=tenant_id,
            environment=execution.environment,
            runbook=runbook,
            version=version,
            mode=ExecutionMode(execution.mode),
            alert=_alert_context(alert),
            incident_id=incident_id,
            command_timeout_seconds=self._settings.command_timeout_seconds,
            agent_offline_timeout_seconds=self._settings.agent_offline_timeout_seconds,
        )
        return _Decision(outcome, start=start)

    def _resolve(self, session: Session, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        row = session.execute(
            text(
                "UPDATE incidents SET status = 'resolved', resolved_at = now(),"
                " last_seen_at = now()"
                " WHERE tenant_id = :tenant AND dedup_key = :key AND status = 'open'"
                " RETURNING id, execution_id"
            ),
            {"tenant": tenant_id, "key": alert.dedup_key},
        ).first()
        return _Decision(
            AlertOutcome(
                dedup_key=alert.dedup_key,
                incident_id=row.id if row else None,
                execution_id=row.execution_id if row else None,
                status="resolved",
            )
        )

    def _mark_started(self, execution_id: str) -> None:
        with Session(self._engine) as session:
            session.execute(
                text("UPDATE executions SET workflow_started = true WHERE id = :id"),
                {"id": execution_id},
            )
            session.commit()


async def start_execution(client: Client, inp: ExecutionInput, *, task_queue: str) -> None:
    alert = inp.alert
    pairs = [
        SearchAttributePair(attrs.TENANT_ID, inp.tenant_id),
        SearchAttributePair(attrs.RUNBOOK_ID, inp.runbook_id),
        SearchAttributePair(attrs.MODE, inp.mode.value),
        SearchAttributePair(attrs.EXECUTION_STATUS, "running"),
    ]
    if alert and alert.service:
        pairs.append(SearchAttributePair(attrs.SERVICE, alert.service))
    if alert and alert.severity:
        pairs.append(SearchAttributePair(attrs.SEVERITY, alert.severity))
    summary = inp.runbook_title + (f" for {alert.title}" if alert else "")
    # A closed run with this id raises: that execution already happened, nothing to start.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            RunbookExecutionWorkflow.run,
            inp,
            id=inp.execution_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A finished execution is never re-run under the same id.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(pairs),
            static_summary=summary[:200],
        )


def _alert_context(alert: NormalizedAlert) -> AlertContext:
    return AlertContext(
        title=alert.title,
        source=alert.source,
        dedup_key=alert.dedup_key,
        service=alert.service,
        severity=alert.severity,
        environment=alert.environment,
        labels=alert.labels,
        annotations=alert.annotations,
    )
