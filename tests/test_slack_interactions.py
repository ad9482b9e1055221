"""Slack buttons: signed like Slack signs them, sent to the real API, checked, signalled.

The real `slack_sdk` WebClient talks to a fake Slack Web API over HTTP (users.info,
chat.postEphemeral); executions are real workflows on the dev server with a real agent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.contracts.settings import Settings
from ddoc.platform import tenancy, users
from ddoc.slack.inbound import button_value
from ddoc.slack.tenants import SlackConfig, configured
from tests.conftest import Stack, eventually
from tests.fakes.slack import (
    FakeSlack,
    block_actions_payload,
    interaction_body,
    signed_headers,
    slash_command_body,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0DDOC"
ANA = "U0ANA00001"  # registered by e-mail only: found through users.info
VIC = "U0VIC00001"  # registered as a viewer
EVE = "U0EVE00001"  # not registered


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(
        bot_token="xoxb-test",
        users={
            ANA: {"email": "ana@example.com", "real_name": "Ana"},
            VIC: {"email": "vic@example.com", "real_name": "Vic"},
            EVE: {"email": "eve@example.com", "real_name": "Eve"},
        },
    ) as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, slack: FakeSlack) -> Settings:
    return settings.replace(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_channel="C0INCIDENT",
        slack_api_url=slack.base_url,
    )


def register(engine: Engine, tenant_id: str) -> None:
    with Session(engine) as session:
        for email, name, role in (
            ("ana@example.com", "Ana", "approver"),
            ("vic@example.com", "Vic", "viewer"),
        ):
            users.add(
                session,
                tenant_id=tenant_id,
                email=email,
                display_name=name,
                roles=[role],
                slack_user_id=VIC if name == "Vic" else None,
                actor="test",
            )
        session.commit()


async def waiting_execution(stack: Stack, marker: Path) -> str:
    content = f"# Restart\n\n1. Restart it: `touch {marker}`\n"
    runbook = await stack.http.post(
        "/runbooks", json={"content": content}, headers=stack.api_headers()
    )
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook.json()["id"]}, headers=stack.api_headers()
    )
    execution_id: str = started.json()["id"]

    async def awaiting() -> bool:
        body = (
            await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        ).json()
        return bool(body["status"] == "awaiting_human")

    await eventually(awaiting)
    return execution_id


async def click(
    stack: Stack, user: str, value: str, *, timestamp: int | None = None, secret: str = SECRET
) -> Any:
    body = interaction_body(
        block_actions_payload(user_id=user, team_id=TEAM, action_id="ddoc_approve", value=value)
    )
    headers = signed_headers(secret, body, timestamp=timestamp)
    return await stack.http.post("/slack/interactions", content=body, headers=headers)


async def signals(stack: Stack, execution_id: str) -> int:
    history = await stack.client.get_workflow_handle(execution_id).fetch_history()
    return sum(
        1 for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    )


async def test_a_registered_approver_approves_with_one_click(
    stack: Stack, engine: Engine, slack: FakeSlack, tmp_path: Path
) -> None:
    register(engine, stack.settings.tenant)
    marker = tmp_path / "restarted"
    execution_id = await waiting_execution(stack, marker)
    response = await click(stack, ANA, button_value(execution_id, "s1", "approve"))
    assert response.status_code == 200, response.text

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        ).json()
        return body if body["status"] == "succeeded" else None

    execution = await eventually(done)
    assert marker.exists()
    decision = execution["steps"][0]["decisions"][0]
    assert (decision["display_name"], decision["source"], decision["accepted"]) == (
        "Ana",
        "slack",
        True,
    )
    # Ana was found by her e-mail through users.info, and is remembered by her Slack id.
    assert [c["user"] for c in slack.calls_to("users.info")] == [ANA]
    with Session(engine) as session:
        ana = users.by_slack_id(session, tenant_id=stack.settings.tenant, slack_user_id=ANA)
        assert ana is not None and ana.email == "ana@example.com"


async def test_forged_stale_and_replayed_clicks_are_refused(
    stack: Stack, engine: Engine, tmp_path: Path
) -> None:
    register(engine, stack.settings.tenant)
    execution_id = await waiting_execution(stack, tmp_path / "never")
    value = button_value(execution_id, "s1", "approve")
    forged = await click(stack, ANA, value, secret="not-the-secret")
    stale = await click(stack, ANA, value, timestamp=int(time.time()) - 301)
    assert (forged.status_code, stale.status_code) == (401, 401)
    body = interaction_body(
        block_actions_payload(user_id=VIC, team_id=TEAM, action_id="ddoc_approve", value=value)
    )
    headers = signed_headers(SECRET, body)
    first = await stack.http.post("/slack/interactions", content=body, headers=headers)
    replayed = await stack.http.post("/slack/interactions", content=body, headers=headers)
    assert (first.status_code, replayed.status_code) == (200, 401)
    assert "replayed" in replayed.json()["detail"]
    assert await signals(stack, execution_id) == 0  # Vic is a viewer: refused before the signal
    assert not (tmp_path / "never").exists()


async def test_unregistered_and_unauthorised_users_are_told_why(
    stack: Stack, engine: Engine, slack: FakeSlack, tmp_path: Path
) -> None:
    register(engine, stack.settings.tenant)
    execution_id = await waiting_execution(stack, tmp_path / "never")
    value = button_value(execution_id, "s1", "approve")
    assert (await click(stack, EVE, value)).status_code == 200
    assert (await click(stack, VIC, value)).status_code == 200
    told = {c["user"]: c["text"] for c in slack.calls_to("chat.postEphemeral")}
    assert "not registered" in told[EVE]
    assert "Not allowed" in told[VIC] and "no responder" in told[VIC]
    assert await signals(stack, execution_id) == 0
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM users WHERE slack_user_id = :u"), {"u": EVE}
            ).scalar_one()
            == 0
        )


async def test_users_are_registered_by_an_admin(stack: Stack, engine: Engine) -> None:
    headers = stack.api_headers()
    body = {"email": "Rita@Example.com", "display_name": "Rita", "roles": ["responder"]}
    created = await stack.http.post("/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "rita@example.com"
    again = await stack.http.post("/users", json=body, headers=headers)
    assert again.status_code == 409
    bad_role = await stack.http.post(
        "/users", json={**body, "email": "x@example.com", "roles": ["root"]}, headers=headers
    )
    bad_slack = await stack.http.post(
        "/users",
        json={**body, "email": "y@example.com", "slack_user_id": "not an id"},
        headers=headers,
    )
    assert (bad_role.status_code, bad_slack.status_code) == (422, 422)
    with Session(engine) as session:
        _, viewer_key = tenancy.create_api_key(
            session, tenant_id=stack.settings.tenant, name="viewer", roles=["viewer"]
        )
        session.commit()
    forbidden = await stack.http.post(
        "/users",
        json={**body, "email": "z@example.com"},
        headers={"Authorization": f"Bearer {viewer_key}"},
    )
    assert forbidden.status_code == 403
    listed = (await stack.http.get("/users", headers=headers)).json()
    assert [u["email"] for u in listed] == ["rita@example.com"]


async def command(stack: Stack, user: str, text_: str, secret: str = SECRET) -> Any:
    body = slash_command_body(command="/ddoc", text=text_, user_id=user, team_id=TEAM)
    return await stack.http.post(
        "/slack/commands", content=body, headers=signed_headers(secret, body)
    )


async def test_slash_commands(stack: Stack, engine: Engine, tmp_path: Path) -> None:
    register(engine, stack.settings.tenant)
    content = (
        "---\ntitle: Disk almost full\n---\n# Disk almost full\n\n"
        f"1. Clean the cache: `touch {tmp_path}/cleaned`\n"
    )
    runbook = await stack.http.post(
        "/runbooks", json={"content": content}, headers=stack.api_headers()
    )
    runbook_id = runbook.json()["id"]

    helped = (await command(stack, EVE, "help")).json()
    assert helped["response_type"] == "ephemeral" and "/ddoc run" in helped["text"]
    stranger = (await command(stack, EVE, f"run {runbook_id}")).json()
    assert "not registered" in stranger["text"]
    viewer = (await command(stack, VIC, f"run {runbook_id}")).json()
    assert "needs the responder" in viewer["text"]
    bad = (await command(stack, ANA, f"run {runbook_id} warp-speed")).json()
    assert "neither a mode" in bad["text"]
    missing = (await command(stack, ANA, "run rb_nope")).json()
    assert missing["text"].startswith("Not started")

    started = (await command(stack, ANA, f"run {runbook_id} copilot")).json()
    assert started["response_type"] == "in_channel" and "Ana started runbook" in started["text"]
    execution_id = started["text"].rsplit("`", 2)[-2]

    async def listed() -> str | None:
        text_ = (await command(stack, ANA, "status")).json()["text"]
        return text_ if execution_id in text_ and "awaiting_human" in text_ else None

    status = await eventually(listed)
    assert "s1: yellow step: needs 1 approval" in status
    found = (await command(stack, ANA, "find disk almost full on web-1")).json()["text"]
    assert runbook_id in found
    handoff = (await command(stack, ANA, "handoff")).json()
    assert handoff["response_type"] == "in_channel" and execution_id in handoff["text"]
    forged = await command(stack, ANA, "status", secret="wrong")
    assert forged.status_code == 401


async def test_edit_opens_a_modal_and_the_edit_is_reclassified(
    stack: Stack, engine: Engine, slack: FakeSlack, tmp_path: Path
) -> None:
    register(engine, stack.settings.tenant)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    execution_id = await waiting_execution(stack, tmp_path / "never")
    value = button_value(execution_id, "s1", "edit")
    body = interaction_body(
        block_actions_payload(user_id=ANA, team_id=TEAM, action_id="ddoc_edit_s1", value=value)
    )
    opened = await stack.http.post(
        "/slack/interactions", content=body, headers=signed_headers(SECRET, body)
    )
    assert opened.status_code == 200
    [modal] = slack.views
    field = modal["blocks"][0]["element"]
    assert field["initial_value"] == f"touch {tmp_path / 'never'}"

    submission = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": ANA, "team_id": TEAM},
        "view": {
            "callback_id": modal["callback_id"],
            "private_metadata": modal["private_metadata"],
            "state": {"values": {"command": {"command": {"value": f"rm -f {victim}"}}}},
        },
    }
    body = interaction_body(submission)
    submitted = await stack.http.post(
        "/slack/interactions", content=body, headers=signed_headers(SECRET, body)
    )
    assert submitted.status_code == 200 and submitted.content == b""  # the modal closes

    async def edited() -> dict[str, Any] | None:
        step: dict[str, Any] = (
            await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        ).json()["steps"][0]
        awaiting = step.get("awaiting") or {}
        return step if awaiting.get("role") == "approver" else None

    step = await eventually(edited)
    assert step["risk"] == "red" and step["command"] == f"rm -f {victim}"
    assert step["decisions"][0]["source"] == "slack"
    # Ana may not approve her own edit: told so, and nothing is signalled.
    signalled = await signals(stack, execution_id)
    assert (await click(stack, ANA, button_value(execution_id, "s1", "approve"))).status_code == 200
    told = [c["text"] for c in slack.calls_to("chat.postEphemeral") if c["user"] == ANA]
    assert told and "own edit" in told[-1]
    assert await signals(stack, execution_id) == signalled
    assert victim.exists()


async def test_each_tenant_answers_for_its_own_workspace(
    stack: Stack, engine: Engine, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDOC_TEST_SLACK_TOKEN_B", "xoxb-test")
    monkeypatch.setenv("DDOC_TEST_SLACK_SECRET_B", "tenant-b-signing-secret")
    other, key = f"{stack.settings.tenant}b", f"ddoc_test_b_{uuid.uuid4().hex}"
    tenancy.bootstrap(engine, tenant_id=other, api_key=key)
    headers = {"Authorization": f"Bearer {key}"}
    slack_settings = {
        "team_id": "T0BBB",
        "channel": "C0BBB",
        "bot_token_env": "DDOC_TEST_SLACK_TOKEN_B",
        "signing_secret_env": "DDOC_TEST_SLACK_SECRET_B",
    }
    stored = await stack.http.patch("/settings", json={"slack": slack_settings}, headers=headers)
    assert stored.status_code == 200, stored.text
    leaked = await stack.http.patch(
        "/settings",
        json={"slack": {**slack_settings, "bot_token_env": "xoxb-raw-token"}},
        headers=headers,
    )
    assert leaked.status_code == 422  # a secret itself is refused: only a variable's name
    with Session(engine) as session:
        users.add(
            session,
            tenant_id=other,
            email="bo@example.com",
            display_name="Bo",
            roles=["approver"],
            slack_user_id="U0BO000001",
            actor="test",
        )
        session.commit()
    content = f"# Restart B\n\n1. Restart it: `touch {tmp_path / 'b-restarted'}`\n"
    runbook = await stack.http.post("/runbooks", json={"content": content}, headers=headers)
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook.json()["id"]}, headers=headers
    )
    execution_id = started.json()["id"]

    async def status(wanted: str) -> bool:
        body = (await stack.http.get(f"/executions/{execution_id}", headers=headers)).json()
        return bool(body["status"] == wanted)

    await eventually(lambda: status("awaiting_human"))
    value = button_value(execution_id, "s1", "approve")
    payload = block_actions_payload(
        user_id="U0BO000001", team_id="T0BBB", action_id="ddoc_approve_s1", value=value
    )
    body = interaction_body(payload)
    wrong = await stack.http.post(
        "/slack/interactions", content=body, headers=signed_headers(SECRET, body)
    )
    assert wrong.status_code == 401  # the default tenant's secret does not sign for team B
    right = await stack.http.post(
        "/slack/interactions",
        content=body,
        headers=signed_headers("tenant-b-signing-secret", body),
    )
    assert right.status_code == 200

    async def approved() -> list[dict[str, Any]] | None:
        body = (await stack.http.get(f"/executions/{execution_id}", headers=headers)).json()
        decisions: list[dict[str, Any]] = body["steps"][0]["decisions"]
        return decisions or None

    # (No agent serves tenant B here: the approval is what this test is about.)
    [decision] = await eventually(approved)
    assert (decision["display_name"], decision["source"], decision["accepted"]) == (
        "Bo",
        "slack",
        True,
    )


def test_which_slack_a_tenant_uses() -> None:
    default = SlackConfig(tenant_id="acme", bot_token="xoxb-d", channel="C0D", signing_secret="s")
    own = {
        "slack": {
            "team_id": "T0B",
            "channel": "C0B",
            "bot_token_env": "TOKEN_B",
            "signing_secret_env": "SECRET_B",
        }
    }
    env = {"TOKEN_B": "xoxb-b", "SECRET_B": "secret-b"}
    b = configured("beta", own, default, env)
    assert b is not None and (b.bot_token, b.channel, b.signing_secret, b.team_id) == (
        "xoxb-b",
        "C0B",
        "secret-b",
        "T0B",
    )
    assert configured("beta", own, default, {}) is None  # its variable is not set: no Slack
    assert configured("acme", {}, default, env) is default
    assert configured("gamma", {}, default, env) is None  # never another tenant's workspace
