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

from ddoc.alerts import incidents, intake, learned
from ddoc.contracts.execution import Actor, ExecutionInput
from ddoc.contracts.settings import Settings
from ddoc.execution import live, service
from ddoc.execution.views import DecisionAccepted, ExecutionView
from ddoc.platform.errors import Unavailable
from ddoc.runbooks import service as runbook_service
from ddoc.runbooks.embedding import Embedder
from ddoc.runbooks.parsing import RunbookParser
from ddoc.runbooks.store import SavedRunbook

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


def draft_runbook(
    engine: Engine,
    parser: RunbookParser,
    embedder: Embedder | None,
    *,
    tenant_id: str,
    actor: str,
    kind: str,
    content: str,
    fmt: str = "text",
    incident_id: str | None = None,
    title: str | None = None,
    drafted_from: str | None = None,
) -> tuple[SavedRunbook, list[str]]:
    """Draft a runbook from a recording, a history, a postmortem (or a draft made on the
    engineer's machine, `kind` "draft"), for an incident when one is named: its alert is the
    draft's trigger and its labels the variables. The stored draft, and what it left out."""
    labels: dict[str, str] = {}
    if incident_id:
        with Session(engine) as session:
            incident = incidents.incident_view(
                session, tenant_id=tenant_id, incident_id=incident_id
            )
        labels = {str(k): str(v) for k, v in incident.labels.items()}
    document, left_out = runbook_service.draft_document(
        kind,
        content,
        fmt,
        labels=labels,
        alerts=[labels["alertname"]] if labels.get("alertname") else [],
        title=title,
    )
    saved = runbook_service.add_draft(
        engine,
        parser,
        embedder,
        tenant_id=tenant_id,
        actor=actor,
        document=document,
        origin={"from": drafted_from or kind, "incident_id": incident_id, "by": actor},
    )
    return saved, left_out
