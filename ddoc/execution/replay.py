"""Replay: a past execution's decisions, as its Temporal history recorded them, re-run against a
runbook version in a sandbox, to check the version would have worked.

The replay is a drill (mode `drill`, nobody paged, ddoc/execution/drills.py, team `replay`) with
the past execution's alert and hand-given values, on the sandbox's agent queue. Each human wait
takes the next recorded decision naming its step, as its decider's "(replayed)"; a wait no
recorded decision names ends the replay there ("the version diverged here", event
`replay.diverged`); decisions no wait took are listed at the end (event `replay.finished`).
Only the `decide` signals are replayed, in the order Temporal recorded them, refused ones
included (they are refused again under the same policy).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from ddoc.contracts import names
from ddoc.contracts.execution import Decision, ExecutionInput, ExecutionMode
from ddoc.contracts.settings import Settings
from ddoc.execution import drills, live
from ddoc.execution import store as executions
from ddoc.execution.service import give_up
from ddoc.execution.views import ExecutionView
from ddoc.platform.errors import Conflict, Unavailable
from ddoc.platform.ids import new_id
from ddoc.runbooks import store as runbooks

TEAM = "replay"


async def recorded_decisions(client: Client, execution_id: str) -> list[Decision]:
    """The `decide` signals of the execution's workflow, in history order (one per request)."""
    handle = client.get_workflow_handle(execution_id)
    try:
        history = await handle.fetch_history()
    except RPCError as err:
        raise Unavailable(f"Temporal has no history of {execution_id} now ({err})") from None
    found: list[Decision] = []
    seen: set[str] = set()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        signaled = event.workflow_execution_signaled_event_attributes
        if signaled.signal_name != names.DECIDE_SIGNAL:
            continue
        [decision] = await client.data_converter.decode(signaled.input.payloads, [Decision])
        assert isinstance(decision, Decision)
        if decision.request_id is not None:
            if decision.request_id in seen:
                continue  # the workflow counted it once
            seen.add(decision.request_id)
        found.append(decision)
    return found


async def replay(
    engine: Engine,
    client: Client,
    settings: Settings,
    *,
    tenant_id: str,
    actor: str,
    execution_id: str,
    version: int | None = None,
    environment: str | None = None,
) -> ExecutionView:
    """Start the replay of execution `execution_id` against the runbook's version `version`
    (default: its current one) in `environment` (default: the drills' sandbox)."""
    past = await asyncio.to_thread(_past, engine, tenant_id, execution_id)
    decisions = await recorded_decisions(client, execution_id)
    inp = await asyncio.to_thread(
        _create, engine, settings, past, actor, decisions, version, environment
    )
    try:
        await live.start_execution(client, inp, task_queue=settings.control_task_queue)
    except Exception as err:
        await asyncio.to_thread(give_up, engine, inp)
        raise Unavailable(
            f"Temporal did not accept the start ({err}); replay {inp.execution_id} failed"
        ) from None
    with Session(engine) as session:
        return executions.trail(session, tenant_id=tenant_id, execution_id=inp.execution_id)


def _past(engine: Engine, tenant_id: str, execution_id: str) -> ExecutionInput:
    with Session(engine) as session:
        row = executions.get(session, tenant_id=tenant_id, execution_id=execution_id)
        if row.start_input is None:
            raise Conflict(f"execution {execution_id} predates replays: its input was not kept")
        return executions.input_of(row.start_input)


def _create(
    engine: Engine,
    settings: Settings,
    past: ExecutionInput,
    actor: str,
    decisions: list[Decision],
    number: int | None,
    environment: str | None,
) -> ExecutionInput:
    tenant_id = past.tenant_id
    with Session(engine) as session:
        runbook = runbooks.get(session, tenant_id=tenant_id, runbook_id=past.runbook_id)
        version = runbooks.version(
            session, tenant_id=tenant_id, runbook_id=runbook.id, number=number
        )
        execution_id = new_id("ex")
        sandbox = environment or drills.SANDBOX
        title = f"REPLAY of {past.execution_id}: " + (past.alert.title if past.alert else "by hand")
        alert = drills.simulated_alert(
            execution_id, title, past.alert.service if past.alert else None
        )
        if past.alert is not None:
            alert.labels = {**past.alert.labels, **alert.labels}
            alert.annotations = dict(past.alert.annotations)
        inp = executions.build_input(
            execution_id=execution_id,
            tenant_id=tenant_id,
            environment=sandbox,
            runbook=runbook,
            version=version,
            mode=ExecutionMode.DRILL,
            alert=alert,
            incident_id=None,
            values=dict(past.values),
            command_timeout_seconds=settings.command_timeout_seconds,
            agent_offline_timeout_seconds=settings.agent_offline_timeout_seconds,
            started_by=actor,
            runbook_breakpoints=False,
            **executions.execution_rules(session, tenant_id),
        )
        inp.replay_of, inp.replay = past.execution_id, decisions
        executions.create(session, inp=inp, started_by=actor)
        session.flush()
        drills.record(
            session,
            tenant_id=tenant_id,
            execution_id=execution_id,
            runbook_id=runbook.id,
            team=TEAM,
            environment=sandbox,
            alert_title=title,
            started_by=actor,
        )
        session.commit()
        return inp
