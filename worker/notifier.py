"""The Slack notifier: wakes on every execution transition and pokes its `SlackSync` workflow.

It LISTENs on `ddoc_execution_events` (the trail's NOTIFY) and signal-with-starts
`slack-<execution id>`, and on `ddoc_incident_events` (incidents with no runbook attached, and
runbooks picked for them) for `slack-incident-<incident id>`. At start it catches up on
executions whose events Slack has not seen, so a notifier that was down loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from temporalio.client import Client

from activities.slack import pending_executions
from ddoc.alerts.intake import INCIDENTS_CHANNEL
from ddoc.contracts.execution import SlackSyncInput
from ddoc.execution.store import EVENTS_CHANNEL
from ddoc.slack import tenants
from ddoc.slack.tenants import SlackConfig
from workflows.slack_sync import SlackSyncWorkflow

log = logging.getLogger(__name__)

CATCH_UP = timedelta(days=1)
TENANTS_TTL_SECONDS = 30  # a tenant's new Slack settings are picked up this soon
RECONNECT_MAX_SECONDS = 30


class SlackNotifier:
    def __init__(
        self,
        client: Client,
        engine: Engine,
        default: SlackConfig | None,
        *,
        database_url: str,
        task_queue: str,
    ) -> None:
        self._client = client
        self._engine = engine
        self._default = default
        self._slack_tenants: set[str] = set()
        self._checked_at = -1e9
        self._database_url = database_url
        self._task_queue = task_queue

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop`. A lost database (restarted, failed over, not up yet) is waited
        for and listened to again, with backoff; reconnecting catches up on what was missed."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._listen_until(stop)
                return
            except (psycopg.Error, DBAPIError, OSError) as err:
                log.warning("notifier: database lost (%s); listening again in %.0f s", err, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def _listen_until(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            _libpq_url(self._database_url), autocommit=True
        ) as conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            await conn.execute(f"LISTEN {INCIDENTS_CHANNEL}")
            await self._refresh_tenants()
            for tenant_id in sorted(self._slack_tenants):
                for execution_id in await asyncio.to_thread(
                    pending_executions, self._engine, tenant_id, CATCH_UP
                ):
                    await self.poke(execution_id)
            listening = asyncio.create_task(self._listen(conn))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            stopping.cancel()
            if listening.done() and not listening.cancelled() and listening.exception():
                raise listening.exception()  # type: ignore[misc]

    async def _listen(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        async for notice in conn.notifies():
            table = "incidents" if notice.channel == INCIDENTS_CHANNEL else "executions"
            if not await self._uses_slack(table, notice.payload):
                continue  # most tenants may have no Slack: no work for them
            if table == "incidents":
                await self.poke_incident(notice.payload)
            else:
                await self.poke(notice.payload)

    async def _refresh_tenants(self) -> None:
        def query() -> set[str]:
            with Session(self._engine) as session:
                return set(tenants.tenants_with_slack(session, self._default))

        self._slack_tenants = await asyncio.to_thread(query)
        self._checked_at = asyncio.get_running_loop().time()

    async def _uses_slack(self, table: str, row_id: str) -> bool:
        if asyncio.get_running_loop().time() - self._checked_at > TENANTS_TTL_SECONDS:
            await self._refresh_tenants()
        if not self._slack_tenants:
            return False

        def tenant() -> str | None:
            with Session(self._engine) as session:
                found = session.execute(
                    text(f"SELECT tenant_id FROM {table} WHERE id = :id"), {"id": row_id}
                ).first()
                return str(found[0]) if found else None

        return await asyncio.to_thread(tenant) in self._slack_tenants

    async def poke(self, execution_id: str) -> None:
        try:
            await self._client.start_workflow(
                SlackSyncWorkflow.run,
                SlackSyncInput(execution_id=execution_id),
                id=f"slack-{execution_id}",
                task_queue=self._task_queue,
                start_signal="changed",
            )
        except Exception:  # Temporal unreachable: the next transition or restart catches up
            log.exception("could not poke the Slack sync of %s", execution_id)

    async def poke_incident(self, incident_id: str) -> None:
        try:
            await self._client.start_workflow(
                SlackSyncWorkflow.run,
                SlackSyncInput(execution_id="", incident_id=incident_id),
                id=f"slack-incident-{incident_id}",
                task_queue=self._task_queue,
                start_signal="changed",
            )
        except Exception:
            log.exception("could not poke the Slack sync of incident %s", incident_id)


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
