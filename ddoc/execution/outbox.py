"""The outbox of execution starts: no execution is left created but never started.

Intake and `POST /executions` create an execution in a database transaction, then start its
workflow. A crash (of the API, or of Temporal's reachability) between the two leaves an
execution row whose workflow never ran. The row holds the exact workflow input (`start_input`,
written in the transaction that creates the execution), so the relay, run by every control-plane
worker, starts such executions again from it. Starting twice is harmless: the workflow id is the
execution id, started with USE_EXISTING (a running one is joined) and REJECT_DUPLICATE (a
finished one is never run again); the workflow's first trail write marks the row started.
docs/decisions/0017-exactly-once-intake.md has the guarantees per failure.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio.client import Client

from ddoc.contracts.execution import ExecutionInput, ExecutionStatus
from ddoc.execution.live import start_execution
from ddoc.execution.store import input_of

log = logging.getLogger(__name__)

# A start normally lands within a second; older unstarted executions were interrupted.
GRACE_SECONDS = 30
INTERVAL_SECONDS = 15
BATCH = 100


def unstarted(engine: Engine, *, grace_seconds: int, limit: int) -> list[ExecutionInput]:
    """Executions created more than `grace_seconds` ago whose workflow never recorded that it
    runs, oldest first (across tenants: the relay is the control plane's)."""
    with Session(engine) as session:
        rows = session.execute(
            text(
                "SELECT start_input FROM executions"
                " WHERE NOT workflow_started AND status = :running AND start_input IS NOT NULL"
                " AND created_at < now() - make_interval(secs => :grace)"
                " ORDER BY created_at LIMIT :limit"
            ),
            {"running": ExecutionStatus.RUNNING.value, "grace": grace_seconds, "limit": limit},
        ).all()
    return [input_of(row.start_input) for row in rows]


async def relay_once(
    engine: Engine, client: Client, *, task_queue: str, grace_seconds: int = GRACE_SECONDS
) -> list[str]:
    """Start every interrupted execution once more; the ids it started (or joined)."""
    pending = await asyncio.to_thread(unstarted, engine, grace_seconds=grace_seconds, limit=BATCH)
    started = []
    for inp in pending:
        try:
            await start_execution(client, inp, task_queue=task_queue)
        except Exception as err:  # Temporal unreachable: the next round tries again
            log.warning("outbox: could not start %s: %s", inp.execution_id, err)
            continue
        log.info(
            "outbox: started %s, whose start was interrupted",
            inp.execution_id,
            extra={"tenant_id": inp.tenant_id, "execution_id": inp.execution_id},
        )
        started.append(inp.execution_id)
    return started


async def relay(engine: Engine, client: Client, *, task_queue: str, stop: asyncio.Event) -> None:
    """Relay every `INTERVAL_SECONDS` until `stop` is set (the control-plane worker runs it)."""
    while not stop.is_set():
        try:
            await relay_once(engine, client, task_queue=task_queue)
        except Exception:  # the database is down: the next round tries again
            log.exception("outbox relay round failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
        except TimeoutError:
            continue
