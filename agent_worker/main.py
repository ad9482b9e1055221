"""Build and run an agent worker (`ddoc agent --tenant T --environment E`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.commands import CommandActivities
from ddoc import temporal as temporal_conn
from ddoc.settings import Settings, agent_task_queue

log = logging.getLogger(__name__)

MAX_CONCURRENT_COMMANDS = 10
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def build_agent(
    client: Client, *, tenant_id: str, environment: str, commands: CommandActivities | None = None
) -> Worker:
    commands = commands or CommandActivities()
    return Worker(
        client,
        task_queue=agent_task_queue(tenant_id, environment),
        activities=[commands.run_command],
        max_concurrent_activities=MAX_CONCURRENT_COMMANDS,
        # A command in flight gets this long to finish before it is cancelled (its process
        # group killed) when the agent stops.
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_agent(settings: Settings, stop: asyncio.Event) -> None:
    client = await temporal_conn.connect_with_retry(
        settings.temporal,
        identity=f"ddoc-agent:{settings.tenant}.{settings.environment}@{socket.gethostname()}",
    )
    worker = build_agent(client, tenant_id=settings.tenant, environment=settings.environment)
    async with worker:
        log.info("agent polling %s", agent_task_queue(settings.tenant, settings.environment))
        await stop.wait()
