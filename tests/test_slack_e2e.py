"""Slack end to end: an alert opens an incident message with buttons, a signed click approves
the waiting step, the agent runs it, and the message and its thread catch up. Slack failing
(429, an outage) only delays the message; executions never wait for Slack.

Real components: the API, the control-plane worker with its Slack sync, the notifier, an agent,
the dev server, and the real `slack_sdk` client talking to a fake Slack Web API over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from agent_worker.main import build_agent
from ddoc.contracts.settings import Settings
from ddoc.platform import users
from ddoc.slack.tenants import SlackConfig
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Credentials, eventually, serve_api
from tests.fakes.slack import FakeSlack, block_actions_payload, interaction_body, signed_headers
from worker.main import ACTIVITY_THREADS, build_worker
from worker.notifier import SlackNotifier

SECRET = "slack-signing-secret-for-tests-0001"
CHANNEL = "C0INCIDENT"
ANA = "U0ANA00001"

RUNBOOK = """---
title: Disk almost full on a web node
alerts: [DiskAlmostFull]
---
# Disk almost full on a web node

1. Show the usage: `echo usage-is-92`
2. Clean the cache: `echo cleaned > {marker}; echo cache-cleaned`
"""


@dataclass
class SlackStack:
    http: httpx.AsyncClient
    slack: FakeSlack
    credentials: Credentials

    def api(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.api_key}"}

    def hook(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.webhook_token}"}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(
        bot_token="xoxb-test", users={ANA: {"email": "ana@example.com", "real_name": "Ana"}}
    ) as fake:
        yield fake


@pytest.fixture
async def slack_stack(
    settings: Settings,
    engine: Engine,
    credentials: Credentials,
    temporal_env: WorkflowEnvironment,
    app_database_url: str,
    slack: FakeSlack,
) -> AsyncIterator[SlackStack]:
    settings = settings.replace(
        # Only explicit triggers attach here; anything else found is a suggestion.
        match_attach=0.99,
        match_suggest=0.05,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_channel=CHANNEL,
        slack_api_url=slack.base_url,
    )
    with Session(engine) as session:
        users.add(
            session,
            tenant_id=settings.tenant,
            email="ana@example.com",
            display_name="Ana",
            roles=["approver"],
            slack_user_id=None,
            actor="test",
        )
        session.commit()
    config = SlackConfig(
        tenant_id=settings.tenant, bot_token="xoxb-test", channel=CHANNEL, api_url=slack.base_url
    )
    client = temporal_env.client
    stop = asyncio.Event()
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        control = build_worker(
            client, engine, task_queue=settings.control_task_queue, executor=executor, slack=config
        )
        agent = build_agent(client, tenant_id=settings.tenant, environment=settings.environment)
        notifier = SlackNotifier(
            client,
            engine,
            config,
            database_url=app_database_url,
            task_queue=settings.control_task_queue,
        )
        async with (
            control,
            agent,
            serve_api(settings) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            notifying = asyncio.create_task(notifier.run(stop))
            try:
                yield SlackStack(http, slack, credentials)
            finally:
                stop.set()
                await notifying


async def fire(stack: SlackStack, marker: Path) -> str:
    added = await stack.http.post(
        "/runbooks", json={"content": RUNBOOK.format(marker=marker)}, headers=stack.api()
    )
    assert added.status_code == 201, added.text
    fired = await stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(am_alert("DiskAlmostFull", fingerprint="d15c0000f0000001")),
        headers=stack.hook(),
    )
    [outcome] = fired.json()["alerts"]
    assert outcome["status"] == "started", outcome
    return str(outcome["execution_id"])


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {
        element["action_id"]: element["value"]
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    }


async def message_where(stack: SlackStack, predicate: Any, within: float = 30) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for message in stack.slack.messages.values():
            if (
                message["channel"] == CHANNEL
                and not message.get("thread_ts")
                and predicate(message)
            ):
                return message
        return None

    result = await eventually(found, within=within)
    assert result is not None
    return result


async def click(stack: SlackStack, user: str, action_id: str, value: str) -> int:
    body = interaction_body(
        block_actions_payload(user_id=user, team_id="T0DDOC", action_id=action_id, value=value)
    )
    response = await stack.http.post(
        "/slack/interactions", content=body, headers=signed_headers(SECRET, body)
    )
    return response.status_code


async def test_alert_to_slack_click_to_agent_and_back(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    marker = tmp_path / "cleaned"
    execution_id = await fire(slack_stack, marker)
    message = await message_where(slack_stack, lambda m: "ddoc_approve_s2" in buttons(m))
    text = json.dumps(message["blocks"])
    assert "Disk almost full on a web node" in text and "DiskAlmostFull" in text
    approve = json.loads(buttons(message)["ddoc_approve_s2"])
    assert (approve["e"], approve["s"], approve["d"]) == (execution_id, "s2", "approve")
    assert not marker.exists()

    assert (
        await click(slack_stack, ANA, "ddoc_approve_s2", buttons(message)["ddoc_approve_s2"]) == 200
    )
    # The message changes as the execution moves on (approved, then succeeded): wait for the end.
    updated = await message_where(
        slack_stack,
        lambda m: (
            m["ts"] == message["ts"]
            and "ddoc_approve_s2" not in buttons(m)
            and "succeeded" in m["blocks"][0]["text"]["text"]  # the header: the execution's
        ),
    )
    assert marker.read_text() == "cleaned\n"
    assert "succeeded" in json.dumps(updated["blocks"])

    async def outputs() -> list[str] | None:
        replies = [
            m["text"]
            for m in slack_stack.slack.messages.values()
            if m.get("thread_ts") == message["ts"]
        ]
        return replies if len(replies) == 2 else None

    replies = await eventually(outputs)
    assert any("usage-is-92" in r for r in replies) and any("cache-cleaned" in r for r in replies)
    decisions = (
        await slack_stack.http.get(f"/executions/{execution_id}", headers=slack_stack.api())
    ).json()["steps"][1]["decisions"]
    assert [(d["display_name"], d["source"]) for d in decisions] == [("Ana", "slack")]


async def test_a_rate_limit_delays_the_update_and_loses_nothing(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    marker = tmp_path / "cleaned"
    execution_id = await fire(slack_stack, marker)
    message = await message_where(slack_stack, lambda m: "ddoc_approve_s2" in buttons(m))
    slack_stack.slack.fail_next("chat.update", 429, times=2, retry_after=1)
    approved = await slack_stack.http.post(
        f"/executions/{execution_id}/decisions",
        json={"step_id": "s2", "decision": "approve"},
        headers=slack_stack.api(),
    )
    assert approved.status_code == 202
    final = await message_where(
        slack_stack,
        lambda m: m["ts"] == message["ts"] and "ddoc_approve_s2" not in buttons(m),
    )
    assert "succeeded" in json.dumps(final["blocks"])
    statuses = [c for c in slack_stack.slack.calls if c[0] == "chat.update"]
    assert len(statuses) >= 3  # two refused with 429, then through


async def test_slack_down_for_the_whole_execution_changes_nothing_for_it(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    slack_stack.slack.down = True
    marker = tmp_path / "cleaned"
    execution_id = await fire(slack_stack, marker)

    async def status(wanted: str) -> bool:
        body = (
            await slack_stack.http.get(f"/executions/{execution_id}", headers=slack_stack.api())
        ).json()
        return bool(body["status"] == wanted)

    await eventually(lambda: status("awaiting_human"))
    approved = await slack_stack.http.post(
        f"/executions/{execution_id}/decisions",
        json={"step_id": "s2", "decision": "approve"},
        headers=slack_stack.api(),
    )
    assert approved.status_code == 202
    await eventually(lambda: status("succeeded"))
    assert marker.exists()
    assert slack_stack.slack.messages == {}
    slack_stack.slack.down = False  # Slack is back: the message catches up, final state first
    message = await message_where(slack_stack, lambda m: True, within=45)
    assert "succeeded" in json.dumps(message["blocks"]) and buttons(message) == {}


async def test_a_broken_slack_setup_is_shown_to_the_admin_not_the_incident(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    slack_stack.slack.missing_channels.add(CHANNEL)
    execution_id = await fire(slack_stack, tmp_path / "cleaned")

    async def reported() -> dict[str, Any] | None:
        shown: dict[str, Any] = (
            await slack_stack.http.get("/settings", headers=slack_stack.api())
        ).json()
        return shown if shown.get("slack_status") else None

    shown = await eventually(reported)
    assert shown["slack_status"]["error"] == "channel_not_found"

    async def waiting() -> bool:  # the execution goes on regardless
        body = (
            await slack_stack.http.get(f"/executions/{execution_id}", headers=slack_stack.api())
        ).json()
        return bool(body["status"] == "awaiting_human")

    await eventually(waiting)
    # A set-up error is not retried in a loop: only a new transition tries again (so fixing
    # the channel heals the next update by itself).
    await asyncio.sleep(1)
    posts = len(slack_stack.slack.calls_to("chat.postMessage"))
    await asyncio.sleep(3)
    assert len(slack_stack.slack.calls_to("chat.postMessage")) == posts


async def test_messages_are_routed_and_escalations_reach_the_next_responders(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    routing = {"slack_channels": {"by_service": {"web": "C0WEBTEAM"}}}
    policy = {
        "execution_policy": {
            "wait_minutes": {"default": 0.05, "warning": 0.05, "critical": 0.05},
            "escalation_levels": [{"name": "L2 web", "slack_user_ids": [ANA]}],
        }
    }
    for change in (routing, policy):
        patched = await slack_stack.http.patch("/settings", json=change, headers=slack_stack.api())
        assert patched.status_code == 200, patched.text
    bad = await slack_stack.http.patch(
        "/settings", json={"slack_channels": {"by_moon": {}}}, headers=slack_stack.api()
    )
    assert bad.status_code == 422
    added = await slack_stack.http.post(
        "/runbooks",
        json={"content": RUNBOOK.format(marker=tmp_path / "x")},
        headers=slack_stack.api(),
    )
    assert added.status_code == 201
    fired = await slack_stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(
            am_alert("DiskAlmostFull", fingerprint="d15c0000f0000002", service="web")
        ),
        headers=slack_stack.hook(),
    )
    assert fired.json()["alerts"][0]["status"] == "started"

    async def routed() -> dict[str, Any] | None:
        messages = slack_stack.slack.messages.values()
        return next((m for m in messages if m["channel"] == "C0WEBTEAM"), None)

    await eventually(routed)

    async def direct() -> list[dict[str, Any]] | None:
        opened = slack_stack.slack.calls_to("conversations.open")
        return opened if opened else None

    opened = await eventually(direct, within=30)
    assert opened[0]["users"] == ANA
    dms = [m for m in slack_stack.slack.messages.values() if m["channel"].startswith("D")]
    assert dms and "L2 web" in dms[0]["text"]


async def test_a_suggested_runbook_is_picked_from_slack(
    slack_stack: SlackStack, tmp_path: Path
) -> None:
    marker = tmp_path / "restarted"
    content = (
        "# Checkout API latency is high\n\n"
        "The checkout API answers slowly; customers time out at payment.\n\n"
        f"1. Restart the checkout API workers: `touch {marker}`\n"
    )
    added = await slack_stack.http.post(
        "/runbooks", json={"content": content}, headers=slack_stack.api()
    )
    runbook_id = added.json()["id"]
    fired = await slack_stack.http.post(
        "/webhooks/generic",
        json={"title": "Checkout API latency high", "service": "checkout", "dedup_key": "lat-1"},
        headers=slack_stack.hook(),
    )
    [outcome] = fired.json()["alerts"]
    assert outcome["status"] == "suggested", outcome

    picks = await message_where(slack_stack, lambda m: "ddoc_pick_runbook_1" in buttons(m))
    value = json.loads(buttons(picks)["ddoc_pick_runbook_1"])
    assert (value["r"], value["i"]) == (runbook_id, outcome["incident_id"])
    assert (
        await click(slack_stack, ANA, "ddoc_pick_runbook_1", buttons(picks)["ddoc_pick_runbook_1"])
        == 200
    )

    # The execution starts for the incident's alert, with its own message; the incident's
    # message says what was picked, without buttons.
    execution = await message_where(slack_stack, lambda m: "ddoc_approve_s1" in buttons(m))
    assert execution["ts"] != picks["ts"]
    closed = await message_where(
        slack_stack, lambda m: m["ts"] == picks["ts"] and "picked" in m["text"]
    )
    assert buttons(closed) == {}
    incident = (
        await slack_stack.http.get(
            f"/incidents/{outcome['incident_id']}", headers=slack_stack.api()
        )
    ).json()
    assert incident["runbook_id"] == runbook_id and incident["execution_id"]
    again = await slack_stack.http.post(
        f"/incidents/{outcome['incident_id']}/runbook",
        json={"runbook_id": runbook_id},
        headers=slack_stack.api(),
    )
    assert again.status_code == 409 and "already runs" in again.json()["detail"]
    # The pick is learned, in Ana's name: the next alert like this one gets the runbook.
    shown = await slack_stack.http.get(f"/runbooks/{runbook_id}", headers=slack_stack.api())
    [trigger] = shown.json()["learned_triggers"]
    assert (trigger["created_by_name"], trigger["incident_id"]) == ("Ana", outcome["incident_id"])
    assert trigger["created_by"].startswith("user:")
