"""The execution services (ddoc/execution/service.py): each refusal is a domain error of its
kind, whoever calls; the typed views keep the API's JSON as it was; one role order."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.alerts import incidents
from ddoc.alerts import service as incidents_service
from ddoc.alerts.views import IncidentView
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.approvals import refusal
from ddoc.contracts.execution import (
    Actor,
    Awaiting,
    AwaitKind,
    Decision,
    DecisionKind,
    DecisionRecord,
    ExecutionResult,
    ExecutionStatus,
    StepState,
    StepStatus,
)
from ddoc.contracts.roles import Role, holds
from ddoc.contracts.settings import Settings, TemporalSettings
from ddoc.execution import live, service
from ddoc.execution import store as executions
from ddoc.execution.views import AwaitingView, DecisionView, ExecutionView, StepView
from ddoc.platform.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from tests.conftest import Stack, eventually, free_port

RUNBOOK = "# Say hello\n\n1. Greet: `echo hello`\n2. Restart: `touch /nonexistent/marker`\n"


async def add(stack: Stack) -> str:
    response = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK}, headers=stack.api_headers()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def actor(*roles: str, user: str = "user:usr_ana") -> Actor:
    return Actor(user_id=user, display_name="Ana", source="api", roles=list(roles))


async def start(stack: Stack, engine: Engine, runbook_id: str) -> ExecutionView:
    return await service.start_by_hand(
        engine,
        stack.client,
        stack.settings,
        tenant_id=stack.settings.tenant,
        actor="api_key:key_test",
        runbook_id=runbook_id,
        mode=None,
        variables={},
    )


async def waiting_on(stack: Stack, engine: Engine, execution_id: str, step_id: str) -> None:
    async def awaits() -> bool:
        current = await live.view(engine, stack.client, stack.settings.tenant, execution_id)
        step = current.step(step_id)
        return step is not None and step.awaiting is not None

    await eventually(awaits)


async def finished(engine: Engine, tenant_id: str, execution_id: str) -> None:
    async def ended() -> bool:
        with Session(engine) as session:
            row = executions.summary(session, tenant_id=tenant_id, execution_id=execution_id)
        return row.status in executions.TERMINAL_STATUSES

    await eventually(ended)


# -- start by hand ----------------------------------------------------------------------------


async def test_start_by_hand_answers_the_trail_and_refuses_by_kind(
    stack: Stack, engine: Engine
) -> None:
    runbook_id = await add(stack)
    started = await start(stack, engine, runbook_id)
    assert (started.runbook_id, started.incident_id) == (runbook_id, None)
    assert started.status not in executions.TERMINAL_STATUSES
    assert [s.id for s in started.steps] == ["s1", "s2"]
    assert "live" not in started.model_dump(exclude_unset=True)  # the trail, not the live view

    with pytest.raises(NotFound, match="runbook rb_nope not found"):
        await start(stack, engine, "rb_nope")
    await stack.http.post(f"/runbooks/{runbook_id}/archive", headers=stack.api_headers())
    with pytest.raises(Conflict, match=f"runbook {runbook_id} is archived"):
        await start(stack, engine, runbook_id)


async def test_a_start_temporal_refuses_is_unavailable_and_recorded_failed(
    stack: Stack, engine: Engine
) -> None:
    runbook_id = await add(stack)
    down = TemporalSettings(address=f"127.0.0.1:{free_port()}")
    client = await temporal_conn.connect(down, identity="test", lazy=True)
    with pytest.raises(Unavailable, match="Temporal did not accept the start") as refused:
        await service.start_by_hand(
            engine,
            client,
            stack.settings,
            tenant_id=stack.settings.tenant,
            actor="api_key:key_test",
            runbook_id=runbook_id,
            mode=None,
            variables={},
        )
    assert refused.value.retry_after_seconds is None  # a new start is a new execution
    with Session(engine) as session:
        [failed] = executions.list_executions(session, tenant_id=stack.settings.tenant)
    assert failed.status == ExecutionStatus.FAILED


# -- decide -----------------------------------------------------------------------------------


async def test_decisions_are_refused_by_kind(stack: Stack, engine: Engine) -> None:
    runbook_id = await add(stack)
    started = await start(stack, engine, runbook_id)
    await waiting_on(stack, engine, started.id, "s2")
    tenant = stack.settings.tenant

    async def decide(kind: DecisionKind, who: Actor, step_id: str | None = "s2") -> Any:
        return await service.decide(
            engine,
            stack.client,
            tenant_id=tenant,
            execution_id=started.id,
            step_id=step_id,
            kind=kind,
            actor=who,
        )

    with pytest.raises(Forbidden, match="has no responder, approver or admin role"):
        await decide(DecisionKind.APPROVE, actor(Role.VIEWER))
    with pytest.raises(Conflict, match="step s1 is not awaiting a decision"):
        await decide(DecisionKind.APPROVE, actor(Role.RESPONDER), "s1")
    with pytest.raises(Invalid, match="step_id is needed for approve"):
        await decide(DecisionKind.APPROVE, actor(Role.RESPONDER), None)
    with pytest.raises(Invalid, match="an edit needs the new command"):
        await decide(DecisionKind.EDIT, actor(Role.RESPONDER))
    with pytest.raises(NotFound, match=f"execution {started.id} has no step s9"):
        await decide(DecisionKind.APPROVE, actor(Role.RESPONDER), "s9")
    with pytest.raises(NotFound, match="execution ex_nope not found"):
        await service.decide(
            engine,
            stack.client,
            tenant_id=tenant,
            execution_id="ex_nope",
            step_id="s1",
            kind=DecisionKind.APPROVE,
            actor=actor(Role.RESPONDER),
        )
    with pytest.raises(NotFound):  # another tenant's execution is none of this one's
        await service.decide(
            engine,
            stack.client,
            tenant_id="someone-else",
            execution_id=started.id,
            step_id="s2",
            kind=DecisionKind.APPROVE,
            actor=actor(Role.ADMIN),
        )

    assert await service.editable_command(
        engine,
        stack.client,
        tenant_id=tenant,
        execution_id=started.id,
        step_id="s2",
        actor=actor(Role.RESPONDER),
    ) == ("touch /nonexistent/marker")
    with pytest.raises(NotFound, match=f"execution {started.id} has no step s9 now"):
        await service.editable_command(
            engine,
            stack.client,
            tenant_id=tenant,
            execution_id=started.id,
            step_id="s9",
            actor=actor(Role.RESPONDER),
        )

    accepted = await decide(DecisionKind.SKIP, actor(Role.RESPONDER))
    assert (accepted.step_id, accepted.decision) == ("s2", DecisionKind.SKIP)
    assert "learned_trigger_removed" not in accepted.model_dump(exclude_unset=True)

    await finished(engine, tenant, started.id)
    with pytest.raises(Conflict, match=f"execution {started.id} is finished"):
        await service.stop(
            engine, stack.client, tenant_id=tenant, execution_id=started.id, actor=actor("admin")
        )


async def test_stop_as_the_wrong_runbook_says_which_learned_trigger_went(
    stack: Stack, engine: Engine
) -> None:
    runbook_id = await add(stack)
    started = await start(stack, engine, runbook_id)
    await waiting_on(stack, engine, started.id, "s2")
    stopped = await incidents_service.abort_wrong_runbook(
        engine,
        stack.client,
        tenant_id=stack.settings.tenant,
        execution_id=started.id,
        actor=actor(Role.RESPONDER),
        rollback=True,
    )
    assert stopped.decision == DecisionKind.ROLLBACK
    # Started by hand: nothing was learned, nothing to remove; the answer says so.
    assert stopped.model_dump(exclude_unset=True)["learned_trigger_removed"] is None


# -- pick -------------------------------------------------------------------------------------


async def test_pick_refuses_by_kind(stack: Stack, engine: Engine, settings: Settings) -> None:
    runbook_id = await add(stack)
    delivered = await stack.http.post(
        "/webhooks/generic", json={"title": "Nothing like it"}, headers=stack.webhook_headers()
    )
    [outcome] = delivered.json()["alerts"]
    incident_id = outcome["incident_id"]

    async def pick(incident: str, runbook: str) -> ExecutionView:
        return await incidents_service.pick(
            engine,
            stack.client,
            settings,
            tenant_id=settings.tenant,
            incident_id=incident,
            runbook_id=runbook,
            actor="api_key:key_test",
        )

    with pytest.raises(NotFound, match="incident inc_nope not found"):
        await pick("inc_nope", runbook_id)
    with pytest.raises(NotFound, match="runbook rb_nope not found"):
        await pick(incident_id, "rb_nope")
    picked = await pick(incident_id, runbook_id)
    assert (picked.incident_id, picked.runbook_id) == (incident_id, runbook_id)
    with pytest.raises(Conflict, match=f"already runs execution {picked.id}"):
        await pick(incident_id, runbook_id)


async def test_a_pick_temporal_refuses_is_unavailable_and_can_be_made_again(
    stack: Stack, engine: Engine, settings: Settings
) -> None:
    runbook_id = await add(stack)
    delivered = await stack.http.post(
        "/webhooks/generic",
        json={"title": "Nothing like it either"},
        headers=stack.webhook_headers(),
    )
    [outcome] = delivered.json()["alerts"]
    down = TemporalSettings(address=f"127.0.0.1:{free_port()}")
    unreachable = await temporal_conn.connect(down, identity="test", lazy=True)

    async def pick(client: Any) -> ExecutionView:
        return await incidents_service.pick(
            engine,
            client,
            settings,
            tenant_id=settings.tenant,
            incident_id=outcome["incident_id"],
            runbook_id=runbook_id,
            actor="api_key:key_test",
        )

    with pytest.raises(Unavailable, match="Temporal did not accept the start"):
        await pick(unreachable)
    with Session(engine) as session:
        statuses = {
            e.runbook_id: e.status
            for e in executions.list_executions(session, tenant_id=settings.tenant)
        }
    assert statuses[runbook_id] == ExecutionStatus.FAILED
    picked = await pick(stack.client)  # Temporal is back: the same pick goes through
    assert picked.runbook_id == runbook_id and picked.status != ExecutionStatus.FAILED


# -- the views --------------------------------------------------------------------------------


def test_the_views_carry_every_field_the_workflow_records() -> None:
    """A field added to a decision or a wait reaches the API only if its view has it."""
    assert list(DecisionView.model_fields) == [f.name for f in dataclasses.fields(DecisionRecord)]
    assert list(AwaitingView.model_fields) == [f.name for f in dataclasses.fields(Awaiting)]
    shown = set(StepView.model_fields) | {"step_id"}
    assert {f.name for f in dataclasses.fields(StepState)} <= shown


def _trail(steps: list[dict[str, Any]]) -> ExecutionView:
    return ExecutionView.model_validate(
        {
            "id": "ex_1",
            "workflow_id": "ex_1",
            "status": "running",
            "mode": "copilot",
            "runbook_id": "rb_1",
            "runbook_version": 1,
            "incident_id": None,
            "environment": "test",
            "started_by": None,
            "created_at": "2024-05-01T10:00:00Z",
            "finished_at": None,
            "current_step": None,
            "steps": steps,
        }
    )


def _stored(step_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "kind": "command",
        "text": f"Do {step_id}",
        "status": "pending",
        "command": f"echo {step_id}",
        "risk": "green",
        "exit_code": None,
        "output": None,
        "output_truncated": False,
        "detail": None,
        "started_at": None,
        "finished_at": None,
        "undoes": None,
        "edited_by": None,
        "original_command": None,
        "duration_seconds": None,
        "decisions": [],
        "awaiting": None,
        **fields,
    }


def test_the_live_view_keeps_which_keys_each_step_has() -> None:
    """A step the workflow and the trail both know: the trail's keys, then `dry_run`. One only
    the workflow knows yet (a compensation): no trail keys. One only the trail knows: no
    `dry_run`. The execution gains the workflow's keys; `live` is the caller's."""
    trail = _trail([_stored("s1", output="hi", status="succeeded"), _stored("s3")])
    wait = Awaiting(kind=AwaitKind.APPROVAL, allowed=["approve"], message="approve it")
    current = ExecutionResult(
        execution_id="ex_1",
        status=ExecutionStatus.AWAITING_HUMAN,
        steps=[
            StepState("s1", "command", "Do s1", StepStatus.SUCCEEDED, risk="green", exit_code=0),
            StepState(
                "s1-undo", "compensation", "Undo s1", StepStatus.PENDING, risk="red", awaiting=wait
            ),
        ],
        current_step="s1-undo",
        escalations=[
            {
                "level": 1,
                "name": "L1",
                "step_id": "s1-undo",
                "reason": "waited",
                "at": "2024-05-01T10:05:00+00:00",
                "paged": False,
                "detail": "no routing key",
            }
        ],
    )
    merged = json.loads(live.merge(trail, current).model_dump_json(exclude_unset=True))
    both, compensation, trail_only = merged["steps"]
    assert list(both) == [*_stored("s1"), "dry_run"]
    assert (both["output"], both["exit_code"], both["status"]) == ("hi", 0, "succeeded")
    assert set(compensation) == set(_stored("s1-undo")) - {
        "started_at",
        "finished_at",
        "original_command",
        "duration_seconds",
    } | {"dry_run"}
    assert compensation["awaiting"]["role"] == "responder" and compensation["output"] is None
    assert list(trail_only) == list(_stored("s3"))
    assert list(merged)[-4:] == ["steps", "alert_resolved", "incident_escalated", "escalations"]
    assert merged["status"] == "awaiting_human" and merged["escalations"][0]["level"] == 1
    assert "live" not in merged
    assert list(json.loads(trail.model_dump_json(exclude_unset=True)))[-1] == "steps"


def test_a_decision_recorded_before_addresses_were_kept_has_none() -> None:
    old = {
        "decision": "approve",
        "user_id": "api_key:key_1",
        "display_name": "ci",
        "source": "api",
        "at": "2024-05-01T10:00:00+00:00",
        "accepted": True,
        "reason": None,
        "command": None,
        "branch": None,
        "comment": None,
    }
    assert DecisionView.model_validate(old).model_dump(exclude_unset=True) == old


async def test_the_dict_forms_are_the_typed_views_dumped(stack: Stack, engine: Engine) -> None:
    """activities/slack.py reads `store.view` and `incidents.view` as dicts."""
    runbook_id = await add(stack)
    started = await start(stack, engine, runbook_id)
    await waiting_on(stack, engine, started.id, "s2")
    await service.decide(
        engine,
        stack.client,
        tenant_id=stack.settings.tenant,
        execution_id=started.id,
        step_id="s2",
        kind=DecisionKind.SKIP,
        actor=actor(Role.RESPONDER),
    )
    await finished(engine, stack.settings.tenant, started.id)  # the trail moves no more
    delivered = await stack.http.post(
        "/webhooks/generic", json={"title": "Nothing like it"}, headers=stack.webhook_headers()
    )
    [outcome] = delivered.json()["alerts"]
    tenant = stack.settings.tenant
    with Session(engine) as session:
        trail = executions.trail(session, tenant_id=tenant, execution_id=started.id)
        as_dict = executions.view(session, tenant_id=tenant, execution_id=started.id)
        incident = incidents.incident_view(
            session, tenant_id=tenant, incident_id=outcome["incident_id"]
        )
        incident_dict = incidents.view(
            session, tenant_id=tenant, incident_id=outcome["incident_id"]
        )
    assert ExecutionView.model_validate(as_dict) == trail
    assert IncidentView.model_validate(incident_dict) == incident
    assert "resolution" not in incident_dict


# -- roles ------------------------------------------------------------------------------------


def test_one_role_order() -> None:
    assert [r.value for r in Role] == ["viewer", "assistant", "responder", "approver", "admin"]
    assert [r.rank for r in Role] == [0, 1, 2, 3, 4]
    # An assistant (MCP) reads and starts but never decides: every decision needs a responder.
    assert Role.ASSISTANT.at_least(Role.VIEWER) and not Role.ASSISTANT.at_least(Role.RESPONDER)
    assert Role.RESPONDER.at_least(Role.ASSISTANT)
    assert Role.ADMIN.at_least(Role.APPROVER) and not Role.RESPONDER.at_least(Role.APPROVER)
    assert holds(["viewer", "approver"], Role.RESPONDER)
    assert not holds(["viewer", "superuser"], Role.RESPONDER)  # unknown roles count for nothing
    assert not holds([], Role.VIEWER)


@pytest.mark.parametrize(
    ("roles", "needs", "kind", "refused"),
    [
        (["viewer"], Role.RESPONDER, DecisionKind.SKIP, True),
        (["assistant"], Role.RESPONDER, DecisionKind.APPROVE, True),
        (["assistant"], Role.RESPONDER, DecisionKind.SKIP, True),
        (["responder"], Role.RESPONDER, DecisionKind.APPROVE, False),
        (["responder"], Role.APPROVER, DecisionKind.APPROVE, True),
        (["responder"], Role.APPROVER, DecisionKind.SKIP, False),
        (["approver"], Role.APPROVER, DecisionKind.APPROVE, False),
        (["admin"], Role.APPROVER, DecisionKind.RETRY, False),
        (["viewer", "admin"], Role.APPROVER, DecisionKind.APPROVE, False),
    ],
)
def test_the_approval_policy_ranks_roles_the_same_way(
    roles: list[str], needs: Role, kind: DecisionKind, refused: bool
) -> None:
    awaiting = Awaiting(
        kind=AwaitKind.APPROVAL,
        allowed=["approve", "skip", "retry"],
        message="m",
        role=needs,
        approvals_needed=1,
    )
    decision = Decision("s1", kind, actor(*roles))
    assert (refusal(decision, awaiting) is not None) == refused
