"""Alert intake: normalised alerts → incidents → matched runbook → execution workflow.

Idempotency is settled by Postgres: one open incident per (tenant, dedup key), enforced by a
unique index and claimed with one INSERT … ON CONFLICT, so racing deliveries of the same alert
count as repeats of one incident. The execution's workflow id is derived from tenant, dedup key
and incident, and started with Temporal's USE_EXISTING conflict policy, so a retried delivery
can finish a start that a crash interrupted without ever starting a second execution.

Before an automatic start, the tenant's blast-radius limits are applied (ddoc/execution/limits.py,
docs/LIMITS.md): a production environment or an open circuit breaker runs an autopilot runbook
in copilot, and a count limit reached stores the incident without an execution
(`limit_reached`), tells a human (the incident notification), and leaves the pick to them.

Why this file is long: one delivery's path (repeat, join, open, resolve, pick) runs in one
transaction under the same advisory locks; the steps are kept together so the locking reads
in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError

from ddoc.alerts import fingerprints, learned
from ddoc.alerts.incidents import IncidentNotFound
from ddoc.alerts.matching import Matcher
from ddoc.alerts.sources import NormalizedAlert
from ddoc.contracts import names
from ddoc.contracts.execution import AlertContext, AlertResolved, ExecutionInput, ExecutionMode
from ddoc.contracts.settings import Settings
from ddoc.execution import limits
from ddoc.execution import store as executions
from ddoc.execution.live import start_execution
from ddoc.platform import audit, ids, metrics, tenancy
from ddoc.platform.errors import Conflict, Unavailable
from ddoc.platform.ids import new_id
from ddoc.platform.tables import Alert, Execution, Incident
from ddoc.runbooks import store as runbooks
from ddoc.trust import breaker

log = logging.getLogger(__name__)


_TEMPORAL_CALLS_PER_DELIVERY = 16


class StartFailed(Unavailable):
    """Temporal did not accept the start; the incident is stored and a retry will finish it."""

    def __init__(self, message: str) -> None:
        # Alert sources retry an unavailable answer; the retried delivery is idempotent.
        super().__init__(message, retry_after_seconds=5)


@dataclass
class AlertOutcome:
    dedup_key: str
    incident_id: str | None
    execution_id: str | None
    # started | duplicate | joined | suggested | unmatched | resolved | limit_reached (a runbook
    # matched, a blast-radius limit held its start: a human is told and may pick it)
    status: str


@dataclass
class _Decision:
    outcome: AlertOutcome
    start: ExecutionInput | None = None
    resolved_execution: str | None = None  # tell this execution its incident resolved
    # (action, subject, data): appended last, before the execution's own audit event
    audits: list[tuple[str, str, dict[str, Any]]] | None = None


def execution_id_for(tenant_id: str, dedup_key: str, incident_id: str) -> str:
    return ids.execution_id(tenant_id, dedup_key, incident_id)


class Intake:
    def __init__(
        self, *, engine: Engine, client: Client, settings: Settings, matcher: Matcher
    ) -> None:
        self._engine = engine
        self._client = client
        self._settings = settings
        self._matcher = matcher

    async def handle(self, tenant_id: str, alerts: list[NormalizedAlert]) -> list[AlertOutcome]:
        # Decisions in delivery order (one transaction each), then the Temporal calls of the
        # whole delivery concurrently: a large Alertmanager group must not start its
        # executions one after another.
        decisions = [await asyncio.to_thread(self._record, tenant_id, a) for a in alerts]
        gate = asyncio.Semaphore(_TEMPORAL_CALLS_PER_DELIVERY)

        async def follow_up(alert: NormalizedAlert, decision: _Decision) -> str | None:
            async with gate:
                if decision.resolved_execution is not None:
                    await self._signal_resolved(decision.resolved_execution, alert)
                if decision.start is None:
                    return None
                log.info(
                    "incident %s: starting execution %s",
                    decision.outcome.incident_id,
                    decision.start.execution_id,
                    extra={
                        "tenant_id": tenant_id,
                        "incident_id": decision.outcome.incident_id,
                        "execution_id": decision.start.execution_id,
                        "source": alert.source,
                    },
                )
                try:
                    await start_execution(
                        self._client, decision.start, task_queue=self._settings.control_task_queue
                    )
                except Exception as err:  # Temporal unreachable: keep going, report at the end
                    log.warning(
                        "could not start %s: %s",
                        decision.start.execution_id,
                        err,
                        extra={"tenant_id": tenant_id, "execution_id": decision.start.execution_id},
                    )
                    return decision.outcome.dedup_key
                return None

        results = await asyncio.gather(
            *(follow_up(a, d) for a, d in zip(alerts, decisions, strict=True))
        )
        failures = [key for key in results if key is not None]
        outcomes = [d.outcome for d in decisions]
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
            for action, subject, data in decision.audits or []:
                session.flush()
                audit.append(
                    session,
                    tenant_id=tenant_id,
                    actor=f"alert:{alert.source}",
                    action=action,
                    subject=subject,
                    data=data,
                )
            if decision.start is not None and decision.outcome.status == "started":
                # Last, just before commit: the audit chain's per-tenant lock is then held for
                # the commit alone, not for the whole intake transaction.
                session.flush()
                executions.append_creation_audit(
                    session, inp=decision.start, started_by=f"alert:{alert.source}"
                )
            session.commit()
            return decision

    def _fire(self, session: Session, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        repeat = self._count_repeat(session, tenant_id, alert)
        if repeat is not None:
            return repeat
        # Serialise decisions about this key, then about its service (always in that order, so
        # two keys of one service cannot deadlock), and look again: a racing delivery of the
        # same alert may have opened the incident meanwhile.
        _lock(session, tenant_id, "key", alert.dedup_key)
        if alert.service:
            _lock(session, tenant_id, "service", alert.service)
        repeat = self._count_repeat(session, tenant_id, alert)
        if repeat is not None:
            return repeat

        joined = self._join_open_incident(session, tenant_id, alert)
        if joined is not None:
            return joined
        return self._open_incident(session, tenant_id, alert)

    def _count_repeat(
        self, session: Session, tenant_id: str, alert: NormalizedAlert
    ) -> _Decision | None:
        row = session.execute(
            text(
                "UPDATE incident_keys SET alert_count = alert_count + 1, last_seen = now()"
                " WHERE tenant_id = :tenant AND dedup_key = :key AND open"
                " RETURNING incident_id"
            ),
            {"tenant": tenant_id, "key": alert.dedup_key},
        ).first()
        if row is None:
            return None
        incident = session.execute(
            text(
                "UPDATE incidents SET alert_count = alert_count + 1, last_seen_at = now()"
                " WHERE id = :id RETURNING execution_id"
            ),
            {"id": row.incident_id},
        ).one()
        return self._repeat(session, tenant_id, alert, row.incident_id, incident.execution_id)

    def _join_open_incident(
        self, session: Session, tenant_id: str, alert: NormalizedAlert
    ) -> _Decision | None:
        """Another alert of the same service within the window joins its open incident."""
        window = self._settings.correlation_window_seconds
        if not alert.service or window <= 0:
            return None
        row = session.execute(
            text(
                "SELECT id, execution_id FROM incidents"
                " WHERE tenant_id = :tenant AND service = :service AND status = 'open'"
                " AND opened_at >= now() - make_interval(secs => :window)"
                " ORDER BY opened_at DESC LIMIT 1"
            ),
            {"tenant": tenant_id, "service": alert.service, "window": window},
        ).first()
        if row is None:
            return None
        session.execute(
            text(
                "INSERT INTO incident_keys (tenant_id, dedup_key, incident_id)"
                " VALUES (:tenant, :key, :incident)"
            ),
            {"tenant": tenant_id, "key": alert.dedup_key, "incident": row.id},
        )
        session.execute(
            text(
                "UPDATE incidents SET alert_count = alert_count + 1, last_seen_at = now()"
                " WHERE id = :id"
            ),
            {"id": row.id},
        )
        return _Decision(AlertOutcome(alert.dedup_key, row.id, row.execution_id, "joined"))

    def _open_incident(self, session: Session, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        incident_id = new_id("inc")
        result = self._matcher.match(session, tenant_id=tenant_id, alert=alert)
        metrics.MATCH_CONFIDENCE.observe(result.candidates[0].score if result.candidates else 0.0)
        execution_input = None
        match_status, match = result.status, result.to_dict()
        audits: list[tuple[str, str, dict[str, Any]]] = []
        if result.attached is not None:
            runbook = runbooks.get(
                session, tenant_id=tenant_id, runbook_id=result.attached.runbook_id
            )
            environment = alert.environment or self._settings.environment
            # Serialise starts of this runbook (after the key and service locks), so racing
            # alerts cannot both take its last slot.
            _lock(session, tenant_id, "runbook", runbook.id)
            gate = start_gate(
                session,
                tenant_id=tenant_id,
                runbook_id=runbook.id,
                mode=ExecutionMode(runbook.trust_level),
                environment=environment,
                service=alert.service,
                automatic=True,
            )
            if gate.refused is not None:
                match_status, match = _held(result.to_dict(), gate)
                audits.append(
                    (
                        "incident.limit_reached",
                        incident_id,
                        {
                            "runbook_id": runbook.id,
                            "limit": gate.limit,
                            "value": gate.limit_value,
                            "reason": gate.refused,
                            "mode": gate.mode.value,
                        },
                    )
                )
            else:
                version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
                execution_input = executions.build_input(
                    execution_id=execution_id_for(tenant_id, alert.dedup_key, incident_id),
                    tenant_id=tenant_id,
                    environment=environment,
                    runbook=runbook,
                    version=version,
                    mode=gate.mode,
                    alert=_alert_context(alert),
                    incident_id=incident_id,
                    command_timeout_seconds=self._settings.command_timeout_seconds,
                    agent_offline_timeout_seconds=self._settings.agent_offline_timeout_seconds,
                    **executions.execution_rules(session, tenant_id),
                )
                if gate.downgraded:
                    attached = match.get("attached") or {}
                    attached["reasons"] = [*attached.get("reasons", []), *gate.reasons]
                    audits.append(
                        (
                            "execution.mode_downgraded",
                            execution_input.execution_id,
                            {
                                "runbook_id": runbook.id,
                                "incident_id": incident_id,
                                "from": runbook.trust_level,
                                "to": gate.mode.value,
                                "reasons": gate.reasons,
                            },
                        )
                    )
        session.execute(
            text(
                "INSERT INTO incidents (id, tenant_id, dedup_key, source, status, title, service,"
                " severity, environment, labels, annotations, match_status, match, runbook_id,"
                " runbook_version, execution_id, fingerprint)"
                " VALUES (:id, :tenant, :key, :source, 'open', :title, :service, :severity,"
                " :environment, CAST(:labels AS jsonb), CAST(:annotations AS jsonb), :status,"
                " CAST(:match AS jsonb), :runbook, :version, :execution,"
                " CAST(:fingerprint AS jsonb))"
            ),
            {
                "id": incident_id,
                "tenant": tenant_id,
                "key": alert.dedup_key,
                "source": alert.source,
                "title": alert.title,
                "service": alert.service,
                "severity": alert.severity,
                "environment": alert.environment,
                "labels": json.dumps(alert.labels),
                "annotations": json.dumps(alert.annotations),
                "status": match_status,
                "match": json.dumps(match),
                "runbook": execution_input.runbook_id if execution_input else None,
                "version": execution_input.runbook_version if execution_input else None,
                "execution": execution_input.execution_id if execution_input else None,
                "fingerprint": json.dumps(fingerprints.of_alert(alert).to_dict()),
            },
        )
        session.execute(
            text(
                "INSERT INTO incident_keys (tenant_id, dedup_key, incident_id)"
                " VALUES (:tenant, :key, :incident)"
            ),
            {"tenant": tenant_id, "key": alert.dedup_key, "incident": incident_id},
        )
        if execution_input is not None:
            executions.create(
                session,
                inp=execution_input,
                started_by=f"alert:{alert.source}",
                record_audit=False,
            )
        else:
            # No runbook attached, or one a limit held back: a human is told (Slack).
            notify_incident(session, incident_id)
        status = "started" if execution_input else match_status
        return _Decision(
            AlertOutcome(
                dedup_key=alert.dedup_key,
                incident_id=incident_id,
                execution_id=execution_input.execution_id if execution_input else None,
                status=status,
            ),
            start=execution_input,
            audits=audits,
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
        # The workflow has not recorded that it runs: either its start is a moment old, or the
        # first delivery stored the execution and its start never got through. Starting again
        # is safe either way (same workflow id, USE_EXISTING).
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
            **executions.execution_rules(session, tenant_id),
        )
        return _Decision(outcome, start=start)

    def _resolve(self, session: Session, tenant_id: str, alert: NormalizedAlert) -> _Decision:
        key = session.execute(
            text(
                "UPDATE incident_keys SET open = false, last_seen = now()"
                " WHERE tenant_id = :tenant AND dedup_key = :key AND open RETURNING incident_id"
            ),
            {"tenant": tenant_id, "key": alert.dedup_key},
        ).first()
        if key is None:
            return _Decision(AlertOutcome(alert.dedup_key, None, None, "resolved"))
        # The incident resolves when the last of its alerts does.
        row = session.execute(
            text(
                "UPDATE incidents SET status = 'resolved', resolved_at = now(),"
                " last_seen_at = now() WHERE id = :id AND NOT EXISTS ("
                "   SELECT 1 FROM incident_keys WHERE incident_id = :id AND open)"
                " RETURNING execution_id"
            ),
            {"id": key.incident_id},
        ).first()
        execution_id = row.execution_id if row else None
        if row is None:
            execution_id = session.execute(
                text("SELECT execution_id FROM incidents WHERE id = :id"), {"id": key.incident_id}
            ).scalar_one()
        return _Decision(
            AlertOutcome(alert.dedup_key, key.incident_id, execution_id, "resolved"),
            resolved_execution=execution_id if row is not None else None,
        )

    async def _signal_resolved(self, execution_id: str, alert: NormalizedAlert) -> None:
        handle = self._client.get_workflow_handle(execution_id)
        try:
            await handle.signal(
                names.ALERT_RESOLVED_SIGNAL,
                AlertResolved(dedup_key=alert.dedup_key, source=alert.source),
            )
        except RPCError as err:
            # A finished execution has nothing left to stop; the incident is resolved anyway.
            log.info("resolved signal to %s not delivered: %s", execution_id, err)


def start_gate(
    session: Session,
    *,
    tenant_id: str,
    runbook_id: str,
    mode: ExecutionMode,
    environment: str | None,
    service: str | None,
    automatic: bool,
) -> limits.StartDecision:
    """The tenant's blast-radius limits for a start of this runbook: the production gate and
    the circuit breaker always; the count limits only for `automatic` starts. A human who
    picks the runbook is the one the limits hand the decision to, so their pick is not counted
    out (an alert storm is then one person's deliberate choice, not a fan-out)."""
    settings = tenancy.settings(session, tenant_id)
    found = limits.effective(settings, runbook_id)
    return limits.decide(
        found,
        mode=mode,
        environment=environment,
        usage=limits.usage(session, tenant_id=tenant_id, runbook_id=runbook_id, service=service)
        if automatic
        else None,
        breaker_open=breaker.is_open(session, tenant_id=tenant_id, runbook_id=runbook_id),
        service=service,
    )


def _held(match: dict[str, Any], gate: limits.StartDecision) -> tuple[str, dict[str, Any]]:
    """The match of an incident whose runbook a limit held back: the runbook is its first
    candidate (a human may pick it), with the reason."""
    attached: dict[str, Any] = dict(match.get("attached") or {})
    attached["reasons"] = [gate.refused, *gate.reasons, *attached.get("reasons", [])]
    others = [
        c
        for c in match.get("candidates") or []
        if c.get("runbook_id") != attached.get("runbook_id")
    ]
    held = {
        **match,
        "status": LIMIT_REACHED,
        "attached": None,
        "candidates": [attached, *others],
        "limit": {"name": gate.limit, "value": gate.limit_value, "reason": gate.refused},
    }
    return LIMIT_REACHED, held


LIMIT_REACHED = "limit_reached"


# Incidents that got no runbook attached (suggestions, or none): the Slack notifier posts them.
INCIDENTS_CHANNEL = "ddoc_incident_events"


class IncidentConflict(Conflict):
    pass


def notify_incident(session: Session, incident_id: str) -> None:
    session.execute(
        text("SELECT pg_notify(:channel, :incident)"),
        {"channel": INCIDENTS_CHANNEL, "incident": incident_id},
    )


def pick_runbook(
    session: Session,
    *,
    settings: Settings,
    tenant_id: str,
    incident_id: str,
    runbook_id: str,
    actor: str,
    actor_name: str | None = None,
) -> ExecutionInput:
    """A human picks the runbook for an open incident that has none running (a suggestion, any
    runbook, or another one after the attached one was aborted): its execution is created for
    the incident's alert, and the pick is learned for alerts with the same fingerprint
    (ddoc/alerts/learned.py). The caller starts the execution."""
    _lock(session, tenant_id, "incident", incident_id)
    incident = session.get(Incident, incident_id)
    if incident is None or incident.tenant_id != tenant_id:
        raise IncidentNotFound(f"incident {incident_id} not found")
    if incident.status != "open":
        raise IncidentConflict(f"incident {incident_id} is {incident.status}")
    if incident.execution_id is not None:
        previous = session.get(Execution, incident.execution_id)
        if previous is None or previous.status not in executions.TERMINAL_STATUSES:
            raise IncidentConflict(
                f"incident {incident_id} already runs execution {incident.execution_id}"
            )
    execution_id = execution_id_for(tenant_id, incident.dedup_key, incident_id)
    if session.get(Execution, execution_id) is not None:
        # An execution ran for the incident before (or was aborted as the wrong runbook): a
        # new id, since a workflow id is never reused.
        execution_id = new_id("ex")
    runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=runbook_id)
    if runbook.archived_at is not None:
        raise IncidentConflict(f"runbook {runbook.id} is archived")
    if runbook.draft:
        raise IncidentConflict(f"runbook {runbook.id} is a draft: publish it first")
    version = runbooks.version(session, tenant_id=tenant_id, runbook_id=runbook.id)
    environment = incident.environment or settings.environment
    gate = start_gate(
        session,
        tenant_id=tenant_id,
        runbook_id=runbook.id,
        mode=ExecutionMode(runbook.trust_level),
        environment=environment,
        service=incident.service,
        automatic=False,
    )
    inp = executions.build_input(
        execution_id=execution_id,
        tenant_id=tenant_id,
        environment=environment,
        runbook=runbook,
        version=version,
        mode=gate.mode,
        alert=AlertContext(
            title=incident.title,
            source=incident.source,
            dedup_key=incident.dedup_key,
            service=incident.service,
            severity=incident.severity,
            environment=incident.environment,
            labels={k: str(v) for k, v in incident.labels.items()},
            annotations={k: str(v) for k, v in incident.annotations.items()},
        ),
        incident_id=incident_id,
        command_timeout_seconds=settings.command_timeout_seconds,
        agent_offline_timeout_seconds=settings.agent_offline_timeout_seconds,
        started_by=actor,
        **executions.execution_rules(session, tenant_id),
    )
    executions.create(session, inp=inp, started_by=actor)
    incident.runbook_id = runbook.id
    incident.runbook_version = version.version
    incident.execution_id = inp.execution_id
    session.add(incident)
    audit.append(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="incident.runbook_picked",
        subject=incident_id,
        data={
            "runbook_id": runbook.id,
            "execution_id": inp.execution_id,
            "mode": gate.mode.value,
            **({"downgraded": gate.reasons} if gate.downgraded else {}),
        },
    )
    fingerprint = _incident_fingerprint(incident)
    if fingerprint.specific:
        learned.record(
            session,
            tenant_id=tenant_id,
            fingerprint=fingerprint,
            runbook_id=runbook.id,
            incident_id=incident_id,
            actor=actor,
            actor_name=actor_name or actor,
        )
    notify_incident(session, incident_id)
    return inp


def _incident_fingerprint(incident: Incident) -> fingerprints.Fingerprint:
    """The opening alert's fingerprint, as intake stored it (rebuilt from the incident for
    incidents opened before fingerprints were kept)."""
    stored = fingerprints.from_dict(incident.fingerprint) if incident.fingerprint else None
    if stored is not None:
        return stored
    name = incident.labels.get("alertname")
    return fingerprints.build(
        source=incident.source,
        alert_name=name if isinstance(name, str) and incident.source != "pagerduty" else None,
        service=incident.service,
        title=incident.title,
    )


def _lock(session: Session, tenant_id: str, kind: str, value: str) -> None:
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:tenant), hashtext(:what))"),
        {"tenant": tenant_id, "what": f"{kind}:{value}"},
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
