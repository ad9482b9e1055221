"""Build and run the control-plane worker (`ddoc worker`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import prometheus_client
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.control import ControlActivities
from activities.self_check import SelfCheckActivities
from activities.slack import SlackActivities
from activities.store import ExecutionStore
from ddoc.alerts.paging import PagerDutyEvents
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings
from ddoc.execution import outbox
from ddoc.execution import store as executions
from ddoc.platform import db, metrics
from ddoc.selfcheck import schedules as self_check_schedules
from ddoc.slack.tenants import SlackConfig, default_config
from worker.notifier import SlackNotifier
from workflows.diagnostic import DiagnosticWorkflow
from workflows.execution import RunbookExecutionWorkflow
from workflows.self_check import SelfCheckWorkflow
from workflows.slack_sync import SlackSyncWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [RunbookExecutionWorkflow, SlackSyncWorkflow, SelfCheckWorkflow, DiagnosticWorkflow]
# Synchronous database activities run in this many threads; the engine's pool matches it. Half
# serve activities, half the trail's local activities, each kind capped at its share: a local
# activity never waits in the pool behind others (its start-to-close timeout would run while it
# waits, and under a storm the timeouts and their retries would feed each other).
ACTIVITY_THREADS = 40
_REGULAR_ACTIVITIES = ACTIVITY_THREADS // 2
_LOCAL_ACTIVITIES = ACTIVITY_THREADS - _REGULAR_ACTIVITIES
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def build_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str,
    executor: ThreadPoolExecutor,
    pager: PagerDutyEvents | None = None,
    slack: SlackConfig | None = None,
) -> Worker:
    pager = pager or PagerDutyEvents()
    store = ExecutionStore(engine, pager)
    control = ControlActivities(engine, pager)
    activities: list[Callable[..., Any]] = [
        store.record_transition,
        store.after_execution,
        store.record_step,
        store.record_execution_status,
        store.record_event,
        control.classify,
        control.escalate,
    ]
    # Every tenant may have its own Slack (settings); `slack` is the default tenant's.
    activities.append(SlackActivities(engine, slack).sync)
    checks = SelfCheckActivities(engine, slack)
    activities += [checks.plan, checks.prepare, checks.record, checks.finish, checks.digest]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=_REGULAR_ACTIVITIES,
        max_concurrent_local_activities=_LOCAL_ACTIVITIES,
        # A workflow task waits in the worker while its trail writes (local activities) run; no
        # more of them at once than local activities can run, so none queues for a slot. Queued
        # ones would need workflow-task heartbeats every few seconds, which under a storm load
        # the server more than the writes themselves. The others wait on the server's queue.
        max_concurrent_workflow_tasks=_LOCAL_ACTIVITIES,
        # Database writes finish in milliseconds: let in-flight ones complete on shutdown
        # rather than interrupting a transaction.
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    engine = db.make_engine(settings.require_database_url(), pool_size=ACTIVITY_THREADS)
    db.migrate(engine)
    if settings.worker_metrics_port:
        metrics.register_database(engine)
        prometheus_client.start_http_server(settings.worker_metrics_port)
        log.info("metrics on :%d/metrics", settings.worker_metrics_port)
    client = await temporal_conn.connect_with_retry(
        settings.temporal,
        identity=f"ddoc-worker@{socket.gethostname()}",
        codec=executions.server_codec(settings.codec_keys_file, engine),
    )
    added = await temporal_conn.ensure_search_attributes(client)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    try:
        with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
            slack = default_config(settings)
            worker = build_worker(
                client,
                engine,
                task_queue=settings.control_task_queue,
                executor=executor,
                pager=PagerDutyEvents(url=settings.pagerduty_events_url),
                slack=slack,
            )
            async with worker:
                log.info("control-plane worker polling %s", settings.control_task_queue)
                # A settings change whose schedule sync did not reach Temporal is caught up here.
                synced = await self_check_schedules.reconcile(
                    client,
                    engine,
                    task_queue=settings.control_task_queue,
                    agent_offline_timeout_seconds=settings.agent_offline_timeout_seconds,
                )
                if synced:
                    log.info("self-check schedules: %s", synced)
                notifier = SlackNotifier(
                    client,
                    engine,
                    slack,
                    database_url=settings.require_database_url(),
                    task_queue=settings.control_task_queue,
                )
                # Starts that a crash interrupted are finished from the outbox meanwhile.
                relay = asyncio.create_task(
                    outbox.relay(engine, client, task_queue=settings.control_task_queue, stop=stop)
                )
                await notifier.run(stop)
                stop.set()
                await relay
    finally:
        engine.dispose()
