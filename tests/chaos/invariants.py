"""What must hold after every chaos scenario, read from the database and the sentinel files.

1. every alert accepted (a 2xx answer, or handed to Alertmanager) is stored, in an incident;
2. no dedup key has two executions;
3. no yellow or red command ran twice: each such command appends one line to its own file under
   the scenario's sentinel directory (`once.*`), so a file with two lines is a command run twice;
4. every execution is terminal, or waits for a human with a reason (a step's awaiting message);
5. the tenant's audit chain verifies.

`settled` waits (with a deadline) for 4, since the trail is written by the worker a moment
after the workflow moved; then every violation found is reported at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.execution.store import TERMINAL_STATUSES
from ddoc.platform import audit

WAITING_STATUSES = ("awaiting_human", "stalled")


def sentinel_runs(sentinels: Path) -> dict[str, int]:
    """How many times each once-only command ran (lines in its `once.*` file)."""
    return {
        path.name: len(path.read_text().splitlines()) for path in sorted(sentinels.glob("once.*"))
    }


def violations(
    engine: Engine, tenant_id: str, sentinels: Path, accepted: Iterable[str] = ()
) -> list[str]:
    found: list[str] = []
    with Session(engine) as session:
        params = {"tenant": tenant_id}
        # 1. Every accepted alert is stored, with its incident.
        stored = {
            row.dedup_key: row.incidents
            for row in session.execute(
                text(
                    "SELECT dedup_key, count(DISTINCT incident_id) AS incidents FROM alerts"
                    " WHERE tenant_id = :tenant AND status = 'firing' GROUP BY dedup_key"
                ),
                params,
            )
        }
        for key in sorted(set(accepted)):
            if key not in stored:
                found.append(f"1. alert {key} was accepted but is not in the database")
            elif stored[key] != 1:
                found.append(f"1. alert {key} is in {stored[key]} incidents, not exactly one")
        open_keys = session.execute(
            text(
                "SELECT dedup_key, count(*) AS n FROM incident_keys"
                " WHERE tenant_id = :tenant AND open GROUP BY dedup_key HAVING count(*) > 1"
            ),
            params,
        ).all()
        found += [f"1. dedup key {r.dedup_key} is open in {r.n} incidents" for r in open_keys]
        # 2. No dedup key has two executions.
        doubled = session.execute(
            text(
                "SELECT k.dedup_key, array_agg(DISTINCT e.id) AS ids FROM incident_keys k"
                " JOIN executions e ON e.incident_id = k.incident_id AND e.tenant_id = k.tenant_id"
                " WHERE k.tenant_id = :tenant GROUP BY k.dedup_key"
                " HAVING count(DISTINCT e.id) > 1"
            ),
            params,
        ).all()
        found += [f"2. dedup key {r.dedup_key} has executions {r.ids}" for r in doubled]
        # 4. Every execution is terminal, or waits for a human with a reason.
        rows = session.execute(
            text(
                "SELECT e.id, e.status, e.workflow_started,"
                " array_remove(array_agg(s.awaiting->>'message'), NULL) AS reasons"
                " FROM executions e LEFT JOIN execution_steps s ON s.execution_id = e.id"
                " WHERE e.tenant_id = :tenant GROUP BY e.id"
            ),
            params,
        ).all()
        for row in rows:
            if row.status in TERMINAL_STATUSES:
                continue
            if row.status in WAITING_STATUSES and any(r.strip() for r in row.reasons):
                continue
            what = "" if row.workflow_started else " (its workflow never recorded a start)"
            found.append(
                f"4. execution {row.id} is {row.status}{what}: neither terminal nor waiting "
                "for a human with a reason"
            )
        # 5. The audit chain verifies.
        chain = audit.verify(session, tenant_id=tenant_id)
        if not chain.ok:
            found.append(f"5. audit chain broken at event {chain.broken_seq}: {chain.reason}")
    # 3. No yellow/red command ran twice.
    found += [f"3. {name} ran {n} times" for name, n in sentinel_runs(sentinels).items() if n > 1]
    return found


async def settled(
    engine: Engine,
    tenant_id: str,
    sentinels: Path,
    accepted: Iterable[str] = (),
    *,
    within: float = 60,
    context: str = "",
) -> None:
    """Poll until no invariant is violated; fail with every violation left at the deadline."""
    keys = list(accepted)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await asyncio.to_thread(violations, engine, tenant_id, sentinels, keys)
        if not found or loop.time() > deadline:
            break
        await asyncio.sleep(0.25)
    assert not found, (
        "invariants broken after the scenario"
        + (f" ({context})" if context else "")
        + ":\n  "
        + "\n  ".join(found)
    )
