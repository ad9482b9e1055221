"""The Slack notifier: wakes on every execution transition and pokes its `SlackSync` workflow.

It LISTENs on `ddoc_execution_events` (the trail's NOTIFY) and signal-with-starts
`slack-<execution id>`, and on `ddoc_incident_events` (incidents with no runbook attached, and
runbooks picked for them) for `slack-incident-<incident id>`. At start it catches up on
executions whose events Slack has not seen, so a notifier that was down loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import psycopg
from sqlalchemy import Engine
from temporalio.client import Client

from activities.slack import SlackConfig, pending_executions
from ddoc.contracts import SlackSyncInput
from ddoc.executions import EVENTS_CHANNEL
from ddoc.intake import INCIDENTS_CHANNEL
from workflows.slack_sync import SlackSyncWorkflow

log = logging.getLogger(__name__)

CATCH_UP = timedelta(days=1)


class SlackNotifier:
    def __init__(
        self,
        client: Client,
        engine: Engine,
        config: SlackConfig,
        *,
        database_url: str,
        task_queue: str,
    ) -> None:
        self._client = client
        self._engine = engine
        self._config = config
        self._database_url = database_url
        self._task_queue = task_queue

    async def run(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            _libpq_url(self._database_url), autocommit=True
        ) as conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            await conn.execute(f"LISTEN {INCIDENTS_CHANNEL}")
            for execution_id in await asyncio.to_thread(
                pending_executions, self._engine, self._config.tenant_id, CATCH_UP
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
            if notice.channel == INCIDENTS_CHANNEL:
                await self.poke_incident(notice.payload)
            else:
                await self.poke(notice.payload)

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
