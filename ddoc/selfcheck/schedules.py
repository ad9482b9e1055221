"""A tenant's self-check schedule on Temporal: one Schedule per tenant (`ddoc-self-check-<tenant>`),
brought in line with its `self_check` setting whenever the setting changes (and by every
control-plane worker at start, for a change whose sync did not reach Temporal).

The schedule starts the SelfCheck workflow on the control task queue once a day at the set time
in the tenant's time zone. An overlapping start is skipped (a run still going keeps going), and
a start missed while Temporal was down is made up within an hour, not later.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine, text
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from ddoc.contracts import names
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.selfcheck import (
    SelfCheckInput,
    Trigger,
    manual_workflow_id,
    schedule_id,
    workflow_id,
)
from ddoc.selfcheck.config import SETTINGS_KEY, SelfCheckConfig, config_of

log = logging.getLogger(__name__)

# A run that has not finished by then is ended by Temporal (the next night's run can start).
RUN_TIMEOUT = timedelta(hours=6)
CATCHUP_WINDOW = timedelta(hours=1)

Synced = Literal["created", "updated", "deleted", "absent"]


def schedule_for(
    tenant_id: str,
    config: SelfCheckConfig,
    *,
    task_queue: str,
    agent_offline_timeout_seconds: int,
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.SELF_CHECK_WORKFLOW,
            _input(tenant_id, Trigger.SCHEDULE, agent_offline_timeout_seconds),
            id=workflow_id(tenant_id),
            task_queue=task_queue,
            execution_timeout=RUN_TIMEOUT,
            typed_search_attributes=_attributes(tenant_id),
            static_summary=f"nightly self-check of {tenant_id}'s runbooks on {config.environment}",
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(config.hour)],
                    minute=[ScheduleRange(config.minute)],
                    second=[ScheduleRange(config.second)],
                    comment=f"every day at {config.time} {config.time_zone}",
                )
            ],
            time_zone_name=config.time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
    )


async def sync(
    client: Client,
    *,
    tenant_id: str,
    config: SelfCheckConfig | None,
    task_queue: str,
    agent_offline_timeout_seconds: int,
) -> Synced:
    """Create, update or delete the tenant's schedule to match `config` (None: unset)."""
    handle = client.get_schedule_handle(schedule_id(tenant_id))
    if config is None or not config.enabled:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return "absent"
        return "deleted"
    schedule = schedule_for(
        tenant_id,
        config,
        task_queue=task_queue,
        agent_offline_timeout_seconds=agent_offline_timeout_seconds,
    )
    try:
        await client.create_schedule(schedule_id(tenant_id), schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await handle.update(replace)
    return "updated"


async def run_now(
    client: Client, *, tenant_id: str, task_queue: str, agent_offline_timeout_seconds: int
) -> str:
    """Start a self-check at once (an SRE trying the setting out); its workflow id."""
    wid = manual_workflow_id(tenant_id, uuid.uuid4().hex[:12])
    await client.start_workflow(
        names.SELF_CHECK_WORKFLOW,
        _input(tenant_id, Trigger.MANUAL, agent_offline_timeout_seconds),
        id=wid,
        task_queue=task_queue,
        execution_timeout=RUN_TIMEOUT,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=_attributes(tenant_id),
        static_summary=f"self-check of {tenant_id}'s runbooks, started by hand",
    )
    return wid


async def reconcile(
    client: Client, engine: Engine, *, task_queue: str, agent_offline_timeout_seconds: int
) -> dict[str, Synced]:
    """Every tenant with a `self_check` setting: its schedule as the setting says."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, settings FROM tenants WHERE settings ? :key ORDER BY id"),
            {"key": SETTINGS_KEY},
        ).all()
    done: dict[str, Synced] = {}
    for tenant_id, settings in rows:
        try:
            done[str(tenant_id)] = await sync(
                client,
                tenant_id=str(tenant_id),
                config=config_of(dict(settings)),
                task_queue=task_queue,
                agent_offline_timeout_seconds=agent_offline_timeout_seconds,
            )
        except RPCError as err:  # one tenant's failure must not stop the others' (or the worker)
            log.warning("self-check schedule of %s not synced: %s", tenant_id, err)
    return done


def _input(tenant_id: str, trigger: Trigger, offline_seconds: int) -> SelfCheckInput:
    return SelfCheckInput(
        tenant_id=tenant_id, trigger=trigger.value, agent_offline_timeout_seconds=offline_seconds
    )


def _attributes(tenant_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(temporal_conn.TENANT_ID, tenant_id)])
