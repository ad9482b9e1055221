"""The Slack message of an execution, kept in step with its trail.

One activity, `sync`, renders the execution's current state from the database and brings Slack
up to date: the incident message (posted once, then `chat.update`d in place), each finished
step's output in the thread, escalations in the channel. It is idempotent (what was posted is
recorded as it is posted), so retries and a Slack outage only delay the message, and the next
sync after Slack returns catches up in one go.

Slack errors by kind: 429 waits `Retry-After` (the activity's next retry delay), transient
errors are retried with backoff by the retry policy, and configuration errors
(`channel_not_found`, a revoked token, ...) are recorded for the tenant's admin and end the
sync of this execution.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ddoc.alerts import incidents
from ddoc.contracts import names
from ddoc.contracts.execution import SlackSyncInput, SlackSyncResult
from ddoc.execution import policy
from ddoc.execution import store as executions
from ddoc.platform import audit, tenancy
from ddoc.platform.tables import Execution, Incident, SlackIncidentMessage, SlackMessage
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.model import ParsedRunbook
from ddoc.slack import render, tenants
from ddoc.slack.tenants import SlackConfig

log = logging.getLogger(__name__)

# Errors no retry can fix: the admin must act (recorded in the tenant's settings and audit log).
CONFIG_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
    }
)
SLACK_STATUS_KEY = "slack_status"
_NOTICE_EVENTS = (
    "escalated",
    "stalled",
    "escalation_failed",
    "trust_demoted",
    "breaker_opened",
    "approval_requested",  # an assistant (MCP) asks the humans to decide
)


class SlackActivities:
    """`default` is the default tenant's Slack (from the environment); other tenants' come
    from their settings (ddoc/slack/tenants.py)."""

    def __init__(self, engine: Engine, default: SlackConfig | None) -> None:
        self._engine = engine
        self._default = default

    @activity.defn(name=names.SLACK_SYNC)
    def sync(self, request: SlackSyncInput) -> SlackSyncResult:
        if request.incident_id is not None:
            return self._sync_incident(request.incident_id)
        with Session(self._engine) as session:
            execution = session.get(Execution, request.execution_id)
            config = (
                tenants.for_tenant(session, execution.tenant_id, self._default)
                if execution
                else None
            )
            if execution is None or config is None or not config.can_post:
                return SlackSyncResult(finished=True)  # no Slack for this tenant
            view = executions.view(
                session, tenant_id=execution.tenant_id, execution_id=execution.id
            )
            incident = (
                incidents.view(
                    session, tenant_id=execution.tenant_id, incident_id=execution.incident_id
                )
                if execution.incident_id
                else None
            )
            runbook = _runbook(session, execution)
            message = session.get(SlackMessage, execution.id)
            tenant_settings = tenancy.settings(session, execution.tenant_id)
            events = executions.events(
                session,
                tenant_id=execution.tenant_id,
                execution_id=execution.id,
                after=message.synced_event_id if message else 0,
            )
        web = config.client()
        text, blocks = render.incident_message(view, incident=incident, runbook=runbook)
        try:
            if message is None:
                channel = route(tenant_settings, incident, default=config.channel)
                answer = web.chat_postMessage(channel=channel, text=text, blocks=blocks)
                message = self._remember(config, view, str(answer["channel"]), str(answer["ts"]))
            else:
                web.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)
            for step in view["steps"]:
                if _output_due(step, message.posted_outputs):
                    web.chat_postMessage(
                        channel=message.channel,
                        thread_ts=message.ts,
                        text=render.step_output_message(step),
                    )
                    self._posted_output(message.execution_id, step["id"])
                    message.posted_outputs.append(step["id"])
            for event in events:
                if event["type"] in _NOTICE_EVENTS:
                    notice = render.escalation_message(view, event)
                    web.chat_postMessage(channel=message.channel, text=notice)
                    if event["type"] == "escalated":
                        level = policy.escalation_level(
                            tenant_settings, int(event["data"].get("level") or 0)
                        )
                        for user in (level or {}).get("slack_user_ids", []):
                            dm = web.conversations_open(users=user)
                            web.chat_postMessage(channel=dm["channel"]["id"], text=notice)
                self._synced(message.execution_id, event["id"])
        except SlackApiError as err:
            raise self._classified(config, err) from None
        self._clear_status(config)
        finished = view["status"] in {s.value for s in executions.TERMINAL_STATUSES}
        return SlackSyncResult(finished=finished)

    def _sync_incident(self, incident_id: str) -> SlackSyncResult:
        """An incident with suggestions or no runbook: a message offering the suggestions
        ("pick this runbook"); once one is picked, the message says so and the execution's own
        message takes over."""
        with Session(self._engine) as session:
            incident = session.get(Incident, incident_id)
            config = (
                tenants.for_tenant(session, incident.tenant_id, self._default) if incident else None
            )
            if incident is None or config is None or not config.can_post:
                return SlackSyncResult(finished=True)
            view = incidents.view(session, tenant_id=incident.tenant_id, incident_id=incident_id)
            message = session.get(SlackIncidentMessage, incident_id)
            tenant_settings = tenancy.settings(session, incident.tenant_id)
        stub = {"id": "", "status": "running", "steps": [], "runbook_id": "", "mode": "-"}
        text, blocks = render.incident_message(stub, incident=view)
        picked = view.get("execution_id")
        if picked:
            text = f"Runbook {view.get('runbook_id')} picked: execution {picked}"
            blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        web = config.client()
        try:
            if message is None:
                channel = route(tenant_settings, view, default=config.channel)
                answer = web.chat_postMessage(channel=channel, text=text, blocks=blocks)
                with Session(self._engine) as session:
                    session.add(
                        SlackIncidentMessage(
                            incident_id=incident_id,
                            tenant_id=config.tenant_id,
                            channel=str(answer["channel"]),
                            ts=str(answer["ts"]),
                        )
                    )
                    session.commit()
            else:
                web.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)
        except SlackApiError as err:
            raise self._classified(config, err) from None
        return SlackSyncResult(finished=bool(picked) or view.get("status") != "open")

    def _remember(
        self, config: SlackConfig, view: dict[str, Any], channel: str, ts: str
    ) -> SlackMessage:
        with Session(self._engine) as session:
            message = SlackMessage(
                execution_id=view["id"], tenant_id=config.tenant_id, channel=channel, ts=ts
            )
            session.add(message)
            session.commit()
            session.refresh(message)
            session.expunge(message)
            return message

    def _posted_output(self, execution_id: str, step_id: str) -> None:
        with Session(self._engine) as session:
            message = session.get(SlackMessage, execution_id)
            assert message is not None
            message.posted_outputs = [*message.posted_outputs, step_id]
            message.updated_at = datetime.now(UTC)
            session.add(message)
            session.commit()

    def _synced(self, execution_id: str, event_id: int) -> None:
        with Session(self._engine) as session:
            message = session.get(SlackMessage, execution_id)
            assert message is not None
            message.synced_event_id = max(message.synced_event_id, event_id)
            session.add(message)
            session.commit()

    def _classified(self, config: SlackConfig, err: SlackApiError) -> Exception:
        response = err.response
        code = response.get("error") if isinstance(response.data, dict) else None
        if response.status_code == 429:
            wait = int(response.headers.get("Retry-After", response.headers.get("retry-after", 1)))
            log.info("Slack rate-limits us: retrying in %ss", wait)
            return ApplicationError(
                "Slack rate limit",
                type="SlackRateLimited",
                next_retry_delay=timedelta(seconds=wait),
            )
        if code in CONFIG_ERRORS:
            self._record_status(config, str(code))
            return ApplicationError(
                f"Slack refused: {code} (the tenant's admin must fix the Slack set-up)",
                type="SlackConfig",
                non_retryable=True,
            )
        return ApplicationError(f"Slack error: {code or response.status_code}", type="SlackError")

    def _record_status(self, config: SlackConfig, code: str) -> None:
        log.error("Slack set-up of tenant %s is broken: %s", config.tenant_id, code)
        with Session(self._engine) as session:
            tenancy.update_settings(
                session,
                tenant_id=config.tenant_id,
                changes={SLACK_STATUS_KEY: {"error": code, "at": datetime.now(UTC).isoformat()}},
                actor="slack",
            )
            audit.append(
                session,
                tenant_id=config.tenant_id,
                actor="slack",
                action="slack.misconfigured",
                subject=config.channel,
                data={"error": code},
            )
            session.commit()

    def _clear_status(self, config: SlackConfig) -> None:
        with Session(self._engine) as session:
            if tenancy.settings(session, config.tenant_id).get(SLACK_STATUS_KEY):
                tenancy.update_settings(
                    session,
                    tenant_id=config.tenant_id,
                    changes={SLACK_STATUS_KEY: None},
                    actor="slack",
                )
                session.commit()


ROUTING_KEY = "slack_channels"


def route(settings: dict[str, Any], incident: dict[str, Any] | None, *, default: str) -> str:
    """The channel of an execution's message: by the alert's service, else its severity, else
    the default (tenant setting `slack_channels`: {"by_service": {…}, "by_severity": {…}})."""
    routing = settings.get(ROUTING_KEY) or {}
    if incident:
        service = (incident.get("service") or "").lower()
        severity = (incident.get("severity") or "").lower()
        by_service = {k.lower(): v for k, v in (routing.get("by_service") or {}).items()}
        by_severity = {k.lower(): v for k, v in (routing.get("by_severity") or {}).items()}
        if service in by_service:
            return str(by_service[service])
        if severity in by_severity:
            return str(by_severity[severity])
    return default


def _output_due(step: dict[str, Any], posted: list[str]) -> bool:
    finished = step["status"] in ("succeeded", "failed")
    return finished and step["id"] not in posted and step.get("output") is not None


def _runbook(session: Session, execution: Execution) -> dict[str, Any] | None:
    try:
        version = runbooks.version(
            session,
            tenant_id=execution.tenant_id,
            runbook_id=execution.runbook_id,
            number=execution.runbook_version,
        )
    except LookupError:
        return None
    parsed = ParsedRunbook.from_dict(version.parsed)
    return {
        "title": parsed.title,
        "prerequisites": [{"text": p.text, "kind": p.kind} for p in parsed.prerequisites],
    }


def pending_executions(engine: Engine, tenant_id: str, since: timedelta) -> list[str]:
    """Recent executions with events Slack has not seen (a notifier catching up at start)."""
    with Session(engine) as session:
        rows = session.execute(
            text(
                "SELECT e.id FROM executions e"
                " LEFT JOIN slack_messages m ON m.execution_id = e.id"
                " WHERE e.tenant_id = :tenant AND e.created_at >= :cutoff"
                " AND EXISTS (SELECT 1 FROM execution_events v WHERE v.execution_id = e.id"
                "             AND v.id > coalesce(m.synced_event_id, 0))"
                " ORDER BY e.created_at"
            ),
            {"tenant": tenant_id, "cutoff": datetime.now(UTC) - since},
        ).all()
    return [row[0] for row in rows]
