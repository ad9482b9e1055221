"""Services of incidents: picking the runbook for an incident, and taking back a wrong one.

They act on executions through ddoc/execution/service.py and record what the pick teaches
(learned triggers, ddoc/alerts/learned.py); domain errors as everywhere (ddoc/platform/errors.py).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from ddoc.alerts import intake, learned
from ddoc.contracts.execution import Actor, ExecutionInput
from ddoc.contracts.settings import Settings
from ddoc.execution import live, service
from ddoc.execution.views import DecisionAccepted, ExecutionView
from ddoc.platform.errors import Unavailable

log = logging.getLogger(__name__)


async def pick(
    engine: Engine,
    client: Client,
    settings: Settings,
    *,
    tenant_id: str,
    incident_id: str,
    runbook_id: str,
    actor: str,
    actor_name: str | None = None,
) -> ExecutionView:
    """Run this runbook for an open incident that has none running, and learn the pick for
    alerts like the incident's (ddoc/alerts/intake.py `pick_runbook`)."""

    def create() -> ExecutionInput:
        with Session(engine) as session:
            inp = intake.pick_runbook(
                session,
                settings=settings,
                tenant_id=tenant_id,
                incident_id=incident_id,
                runbook_id=runbook_id,
                actor=actor,
                actor_name=actor_name,
            )
            session.commit()
            return inp

    inp = await asyncio.to_thread(create)
    try:
        await live.start_execution(client, inp, task_queue=settings.control_task_queue)
    except Exception as err:
        # Recorded as failed (it never ran), so the incident is free for the same pick again.
        log.warning("could not start %s: %s", inp.execution_id, err)
        await asyncio.to_thread(service.give_up, engine, inp)
        raise Unavailable(
            f"Temporal did not accept the start ({err}); execution {inp.execution_id} failed, "
            "pick again once Temporal is back"
        ) from None
    return await asyncio.to_thread(service.trail, engine, tenant_id, inp.execution_id)


async def abort_wrong_runbook(
    engine: Engine,
    client: Client,
    *,
    tenant_id: str,
    execution_id: str,
    actor: Actor,
    rollback: bool = False,
    comment: str | None = None,
) -> DecisionAccepted:
    """Abort the execution as the wrong runbook for its incident: it is also detached from the
    incident, and the learned trigger that attached it is removed (the answer names it)."""
    accepted = await service.stop(
        engine,
        client,
        tenant_id=tenant_id,
        execution_id=execution_id,
        actor=actor,
        rollback=rollback,
        comment=comment,
    )
    removed = await asyncio.to_thread(_forget, engine, tenant_id, execution_id, actor.user_id)
    return accepted.model_copy(update={"learned_trigger_removed": removed})


def _forget(engine: Engine, tenant_id: str, execution_id: str, actor: str) -> str | None:
    with Session(engine) as session:
        removed = learned.wrong_runbook(
            session, tenant_id=tenant_id, execution_id=execution_id, actor=actor
        )
        session.commit()
        return removed
