"""The outbox of execution starts (ddoc/execution/outbox.py): an execution whose workflow start
was interrupted (the API died between its commit and the start) is started by the relay from the
input stored with it, once; a fresh one is left to its own start.

On the Temporal dev server with a real control-plane worker and agent (tests/engine_harness.py).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from ddoc.contracts.execution import ExecutionMode, ExecutionStatus
from ddoc.execution import outbox
from ddoc.execution import store as executions
from ddoc.execution.live import start_execution
from ddoc.runbooks.model import Check
from tests.conftest import eventually
from tests.engine_harness import alert, cmd, running
from tests.fakes.pagerduty import FakePagerDuty


def _age(engine: Engine, execution_id: str, seconds: int) -> None:
    """As if the execution had been created `seconds` ago (its start interrupted back then)."""
    with Session(engine) as session:
        session.execute(
            text(
                "UPDATE executions SET created_at = created_at - make_interval(secs => :s)"
                " WHERE id = :id"
            ),
            {"s": seconds, "id": execution_id},
        )
        session.commit()


async def test_an_interrupted_start_is_finished_once_from_the_stored_input(
    temporal_env: WorkflowEnvironment, engine: Engine, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    async with running(temporal_env.client, engine, pagerduty_url=pagerduty.url) as h:
        inp = h.create(
            cmd(
                "s1",
                f"echo ran >> {log}",
                "yellow",
                verify=Check(command=f"grep -c ran {log}", expect={"output_pattern": "1"}),
            ),
            mode=ExecutionMode.AUTOPILOT,
            alert_context=alert(instance="web-1"),
        )
        with Session(engine) as session:
            row = executions.get(session, tenant_id=h.tenant_id, execution_id=inp.execution_id)
            assert row.start_input is not None and not row.workflow_started
            assert executions.input_of(row.start_input) == inp  # the exact input, checks too
        # A start a moment old is its creator's to finish: the relay leaves it alone.
        relay = {"engine": engine, "client": h.client, "task_queue": h.control_queue}
        assert inp.execution_id not in await outbox.relay_once(**relay)
        _age(engine, inp.execution_id, 120)
        assert inp.execution_id in await outbox.relay_once(**relay)
        handle = h.client.get_workflow_handle(inp.execution_id)
        first_run = (await handle.describe()).run_id

        async def finished() -> bool:
            with Session(engine) as session:
                row = executions.get(session, tenant_id=h.tenant_id, execution_id=inp.execution_id)
                return row.status == ExecutionStatus.SUCCEEDED.value and row.workflow_started

        assert await eventually(finished)
        # Started, recorded, finished: nothing left to relay, and a second relay round or a
        # retried start never runs it again.
        assert inp.execution_id not in await outbox.relay_once(**relay)
        await start_execution(h.client, inp, task_queue=h.control_queue)
        assert (await handle.describe()).run_id == first_run
    assert log.read_text() == "ran\n"
