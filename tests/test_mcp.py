"""The MCP server for AI assistants (api/mcp, `ddoc mcp`), driven by the SDK's own client over
streamable HTTP (the API's /mcp) and over stdio (`python -m ddoc.cli.main mcp`, a subprocess),
on the real stack: API, PostgreSQL, Temporal dev server, control worker, agent, fake Slack.

A fake `kubectl` on the agent's PATH logs every call: what never ran is not in its log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.runbooks import store as runbooks
from tests import test_slack_e2e
from tests.conftest import eventually, store_runbooks
from tests.test_slack_e2e import CHANNEL, SlackStack

# The Slack end-to-end test's stack (fake Slack, notifier, worker, agent, API), reused.
slack = test_slack_e2e.slack
slack_stack = test_slack_e2e.slack_stack

REPO = Path(__file__).resolve().parents[1]
TOOLS = {
    "search_runbooks",
    "match_alert",
    "get_runbook",
    "explain_step",
    "start_execution",
    "get_execution",
    "request_approval",
    "run_diagnostic",
    "list_incidents",
    "get_incident",
}
RUNBOOK = """---
title: Web pods crash looping
alerts: [WebPodsCrashLooping]
---
# Web pods crash looping

1. List the pods: `kubectl get pods -n web`
2. Restart the deployment: `kubectl rollout restart deployment/web -n web`
"""
OTHER_RUNBOOK = """# Billing database failover

1. Check replication: `echo replication-ok`
"""


@pytest.fixture
def kubectl_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake kubectl first on PATH (the in-process agent copies the environment when built:
    list this fixture before the stack)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "kubectl.log"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\necho "web-1   Running"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    yield log


def kubectl_calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def new_key(stack: SlackStack, role: str) -> str:
    made = await stack.http.post(
        "/api-keys", json={"name": f"claude-{role}", "roles": [role]}, headers=stack.api()
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


@asynccontextmanager
async def over_http(
    base_url: str, key: str, name: str = "test-assistant"
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write),
        ClientSession(
            read, write, client_info=types.Implementation(name=name, version="1")
        ) as session,
    ):
        await session.initialize()
        yield session


def bridge_params(env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "ddoc.cli.main", "mcp"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=str(REPO),
    )


@asynccontextmanager
async def over_stdio(env: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(bridge_params(env)) as (read, write),
        ClientSession(
            read, write, client_info=types.Implementation(name="claude-code", version="1")
        ) as session,
    ):
        await session.initialize()
        yield session


def result(answer: types.CallToolResult) -> Any:
    assert not answer.is_error, answer.content
    [content] = answer.content
    assert isinstance(content, types.TextContent)
    try:
        return json.loads(content.text)
    except json.JSONDecodeError:
        return content.text


def error(answer: types.CallToolResult) -> str:
    assert answer.is_error, answer.content
    return " ".join(c.text for c in answer.content if isinstance(c, types.TextContent))


def other_tenant_runbook(engine: Engine) -> str:
    other = f"t{uuid.uuid4().hex[:10]}"
    store_runbooks(engine, other, {"billing.md": OTHER_RUNBOOK})
    with Session(engine) as session:
        [row] = runbooks.list_runbooks(session, tenant_id=other)
        return str(row.id)


def audit_rows(engine: Engine, tenant_id: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, data FROM audit_events WHERE tenant_id = :t AND action LIKE 'mcp.%'"
                " ORDER BY seq"
            ),
            {"t": tenant_id},
        ).all()
    return [(str(r[0]), dict(r[1])) for r in rows]


async def test_an_assistant_over_http_finds_runs_and_asks_but_never_decides(
    kubectl_log: Path, slack_stack: SlackStack, engine: Engine, tenant_id: str
) -> None:
    added = await slack_stack.http.post(
        "/runbooks", json={"content": RUNBOOK}, headers=slack_stack.api()
    )
    assert added.status_code == 201, added.text
    runbook_id = added.json()["id"]
    hidden = other_tenant_runbook(engine)
    key = await new_key(slack_stack, "assistant")
    base_url = str(slack_stack.http.base_url).rstrip("/")

    async with over_http(base_url, key) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():  # written for a model: what, when, what it refuses
            assert tool.description and len(tool.description) > 120, tool.name

        found = result(await mcp.call_tool("search_runbooks", {"query": "web pods crash loop"}))
        assert found["runbooks"][0]["runbook_id"] == runbook_id
        matched = result(
            await mcp.call_tool("match_alert", {"text": "WebPodsCrashLooping in namespace web"})
        )
        assert runbook_id in [c["runbook_id"] for c in matched["alerts"][0]["candidates"]]
        both = error(await mcp.call_tool("match_alert", {}))
        assert "exactly one of `text` or `payload`" in both

        document = result(await mcp.call_tool("get_runbook", {"runbook_id": runbook_id}))
        assert "kubectl rollout restart" in document and "🟡 yellow" in document
        explained = result(
            await mcp.call_tool("explain_step", {"runbook_id": runbook_id, "step_id": "s2"})
        )
        assert explained["risk"] == "yellow" and "approval" in explained["what_happens_when_run"]

        # Another tenant's runbook does not exist here, by tool or by resource.
        assert "not found" in error(await mcp.call_tool("get_runbook", {"runbook_id": hidden}))
        with pytest.raises(MCPError, match="not found"):
            await mcp.read_resource(f"ddoc://runbooks/{hidden}")

        # A refused diagnostic runs nothing; a green one runs on the agent.
        refused = error(await mcp.call_tool("run_diagnostic", {"command": "kubectl delete pod x"}))
        assert "refused: `kubectl delete pod x` is red (kubectl delete removes" in refused
        assert "nothing ran" in refused
        assert not any("delete" in call for call in kubectl_calls(kubectl_log))
        looked = result(await mcp.call_tool("run_diagnostic", {"command": "kubectl get pods -n x"}))
        assert looked["exit_code"] == 0 and "web-1" in looked["output"]

        started = result(
            await mcp.call_tool("start_execution", {"runbook_id": runbook_id, "mode": "copilot"})
        )
        execution_id = started["id"]

        async def waiting() -> dict[str, Any] | None:
            view = result(await mcp.call_tool("get_execution", {"execution_id": execution_id}))
            return view if view["status"] == "awaiting_human" else None

        view = await eventually(waiting, within=30)
        steps = {s["id"]: s for s in view["steps"]}
        assert steps["s1"]["status"] == "succeeded" and "web-1" in steps["s1"]["output"]
        assert steps["s2"]["waiting_for"]["kind"] == "approval"
        assert "get pods -n web" in kubectl_calls(kubectl_log)
        assert not any("rollout" in call for call in kubectl_calls(kubectl_log))
        live_doc = await mcp.read_resource(f"ddoc://executions/{execution_id}")
        [content] = live_doc.contents
        assert isinstance(content, types.TextResourceContents)
        assert "Waiting for a human" in content.text

        asked = result(
            await mcp.call_tool(
                "request_approval",
                {"execution_id": execution_id, "step_id": "s2", "comment": "pods crash loop"},
            )
        )
        assert asked["requested"] is True
        not_waiting = error(
            await mcp.call_tool("request_approval", {"execution_id": execution_id, "step_id": "s1"})
        )
        assert "not waiting for a decision" in not_waiting

    async def posted() -> list[dict[str, Any]]:
        return [
            m
            for m in slack_stack.slack.messages.values()
            if m["channel"] == CHANNEL and "asks a human to decide" in (m.get("text") or "")
        ]

    [message] = await eventually(posted, within=30)
    assert "test-assistant" in message["text"] and "pods crash loop" in message["text"]

    # The assistant's key can never decide: the REST route refuses it, and nothing changed.
    decided = await slack_stack.http.post(
        f"/executions/{execution_id}/decisions",
        json={"step_id": "s2", "decision": "approve"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert decided.status_code == 403, decided.text
    assert not any("rollout" in call for call in kubectl_calls(kubectl_log))

    # Every call audited with the key, the client's name and the arguments.
    audited = audit_rows(engine, tenant_id)
    actions = [a for a, _ in audited]
    assert "mcp.run_diagnostic" in actions and "mcp.start_execution" in actions
    diagnostic = next(d for a, d in audited if a == "mcp.run_diagnostic")
    assert diagnostic["client"] == "test-assistant"
    assert diagnostic["arguments"] == {"command": "kubectl delete pod x"}
    assert diagnostic["outcome"].startswith("error: refused")


async def test_a_viewer_key_reads_but_cannot_start_and_no_key_is_refused(
    slack_stack: SlackStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.mcp import server
    from ddoc.platform.ratelimit import Limit

    key = await new_key(slack_stack, "viewer")
    base_url = str(slack_stack.http.base_url).rstrip("/")
    async with over_http(base_url, key) as mcp:
        assert result(await mcp.call_tool("list_incidents", {})) == {"incidents": []}
        refused = error(await mcp.call_tool("start_execution", {"runbook_id": "rb_x"}))
        assert "needs the assistant role or higher" in refused
        bad = error(await mcp.call_tool("get_execution", {"execution_id": ""}))
        assert "execution_id" in bad and "Traceback" not in bad
        unknown = error(await mcp.call_tool("approve_step", {"execution_id": "x"}))
        assert "approve_step" in unknown  # there is no tool that decides
        # The key's bucket (shared through the database): a burst of 2, then refused.
        monkeypatch.setattr(server, "CALL_LIMIT", Limit(per_second=0.01, burst=2))
        other = await new_key(slack_stack, "viewer")
        async with over_http(base_url, other) as limited:
            for _ in range(2):
                assert not (await limited.call_tool("list_incidents", {})).is_error
            over = error(await limited.call_tool("list_incidents", {}))
            assert "rate limit of this API key reached" in over
        assert not (await mcp.call_tool("list_incidents", {})).is_error  # the other key's own
    anonymous = await slack_stack.http.post("/mcp", json={})
    assert anonymous.status_code == 401


async def test_ddoc_mcp_over_stdio_bridges_to_the_api(
    kubectl_log: Path, slack_stack: SlackStack, engine: Engine
) -> None:
    added = await slack_stack.http.post(
        "/runbooks", json={"content": RUNBOOK}, headers=slack_stack.api()
    )
    runbook_id = added.json()["id"]
    hidden = other_tenant_runbook(engine)
    key = await new_key(slack_stack, "assistant")
    env = {"DDOC_API_URL": str(slack_stack.http.base_url).rstrip("/"), "DDOC_API_KEY": key}
    async with over_stdio(env) as mcp:
        assert {tool.name for tool in (await mcp.list_tools()).tools} == TOOLS
        found = result(await mcp.call_tool("search_runbooks", {"query": "web pods"}))
        assert found["runbooks"][0]["runbook_id"] == runbook_id
        assert "not found" in error(await mcp.call_tool("get_runbook", {"runbook_id": hidden}))
        refused = error(await mcp.call_tool("run_diagnostic", {"command": "kubectl delete pod x"}))
        assert "nothing ran" in refused
        started = result(await mcp.call_tool("start_execution", {"runbook_id": runbook_id}))
        assert started["runbook_id"] == runbook_id
        templates = (await mcp.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {
            "ddoc://runbooks/{runbook_id}",
            "ddoc://executions/{execution_id}",
        }
    assert not any("delete" in call for call in kubectl_calls(kubectl_log))


def readme_snippet() -> dict[str, Any]:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- mcp-config -->\s*```json\n(.*?)```", readme, re.DOTALL)
    assert match, "README: the MCP config snippet (after <!-- mcp-config -->)"
    parsed: dict[str, Any] = json.loads(match[1])
    return parsed


async def test_the_readme_config_parses_and_the_stdio_server_answers_initialize() -> None:
    server = readme_snippet()["mcpServers"]["ddoc"]
    assert server["command"] == "ddoc" and server["args"] == ["mcp"]
    assert set(server["env"]) == {"DDOC_API_URL", "DDOC_API_KEY"}
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'ddoc = "ddoc.cli.main:main"' in pyproject  # `ddoc` is this module's main
    # The snippet's settings, with an API that is not there: initialize is answered anyway, and
    # a request that needs the API says what is wrong (no traceback).
    env = {**server["env"], "DDOC_API_URL": "http://127.0.0.1:9"}
    params = bridge_params(env)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        assert initialized.server_info.name == "dd0c-run"
        assert initialized.capabilities.tools is not None
        with pytest.raises(
            MCPError, match=re.escape("cannot reach dd0c/run at http://127.0.0.1:9/mcp")
        ):
            await session.list_tools()
