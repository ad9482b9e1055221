"""Tenant isolation and roles, over every route of the OpenAPI document (not a hand-picked few).

Tenant A has a runbook, an execution waiting for approval, an incident, a suggestion, a user and
API keys. Tenant B's admin key (and B's webhook token, and B's Slack workspace) then calls every
route, naming A's resources wherever a route takes an id: each such call is a 404, no answer
carries anything of A's, and afterwards A's data is exactly as it was. A new route without an
entry in ROUTES fails the test. A second test walks the routes' role dependencies: a key one role
short gets 403, no key gets 401.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlmodel import Session

from ddoc.alerts import fingerprints, learned
from ddoc.contracts.roles import Role
from ddoc.platform import tenancy, users
from ddoc.platform.tables import Incident, RunbookSuggestion
from ddoc.slack.inbound import button_value
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually
from tests.fakes.slack import (
    block_actions_payload,
    interaction_body,
    signed_headers,
    slash_command_body,
)

B_SLACK_SECRET = "tenant-b-signing-secret-0123456789"
B_TEAM = "T0BISO"
B_USER = "U0BISO0001"

ALPHA_RUNBOOK = """# Alpha-only restart procedure ZX81

1. Look first: `echo alpha-zx81`
2. Restart alpha: `touch /nonexistent/alpha-zx81`
"""
BETA_RUNBOOK = "# Beta procedure\n\n1. Look: `uptime`\n"


def alert_bodies(name: str) -> dict[str, Any]:
    return {
        "alertmanager": alertmanager_v4(am_alert(name, fingerprint=f"{name}-f", service="svc")),
        "grafana": {**alertmanager_v4(am_alert(name, fingerprint=f"{name}-g")), "version": "1"},
        "pagerduty": {
            "event": {
                "id": f"E-{name}",
                "event_type": "incident.triggered",
                "data": {"id": f"Q-{name}", "title": name, "incident_key": name},
            }
        },
        "opsgenie": {"action": "Create", "alert": {"alertId": f"a-{name}", "message": name}},
        "generic": {"title": name},
    }


# (method, path) -> how tenant B calls it: "admin" | "webhook" | "slack" | "public", and a body
# (a callable of A's ids for bodies that name A's resources).
Body = dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] | bytes | None
ROUTES: dict[tuple[str, str], tuple[str, Body]] = {
    ("GET", "/health"): ("public", None),
    ("POST", "/runbooks/parse"): ("admin", {"content": BETA_RUNBOOK}),
    ("POST", "/runbooks"): ("admin", {"content": BETA_RUNBOOK, "source_path": "beta.md"}),
    ("GET", "/runbooks"): ("admin", None),
    ("PUT", "/runbooks/{runbook_id}"): ("admin", {"content": BETA_RUNBOOK}),
    ("GET", "/runbooks/{runbook_id}"): ("admin", None),
    ("DELETE", "/runbooks/{runbook_id}/learned-triggers/{trigger_id}"): ("admin", None),
    ("POST", "/runbooks/import"): (
        "admin",
        {"documents": [{"content": BETA_RUNBOOK, "source_path": "imported/beta.md"}]},
    ),
    ("POST", "/runbooks/archive-missing"): ("admin", {"prefix": "", "present": []}),
    ("GET", "/runbooks/{runbook_id}/versions"): ("admin", None),
    ("POST", "/runbooks/{runbook_id}/archive"): ("admin", None),
    ("POST", "/runbooks/{runbook_id}/trust"): (
        "admin",
        {"level": "autopilot", "reason": "b", "force": True},
    ),
    ("GET", "/runbooks/{runbook_id}/trust"): ("admin", None),
    ("POST", "/runbooks/{runbook_id}/breaker"): ("admin", {"action": "resume", "reason": "b"}),
    ("GET", "/runbooks/{runbook_id}/stats"): ("admin", None),
    ("GET", "/runbooks/{runbook_id}/suggestions"): ("admin", None),
    ("POST", "/runbooks/{runbook_id}/suggestions"): ("admin", None),
    ("POST", "/runbooks/{runbook_id}/suggestions/{suggestion_id}/accept"): ("admin", {}),
    ("POST", "/runbooks/{runbook_id}/suggestions/{suggestion_id}/dismiss"): ("admin", {}),
    ("POST", "/runbooks/{runbook_id}/publish"): ("admin", None),
    ("POST", "/runbooks/drafts"): (
        "admin",
        lambda a: {"kind": "history", "content": "kubectl get pods\n", "incident_id": a["inc"]},
    ),
    ("GET", "/runbooks/drafts"): ("admin", None),
    ("GET", "/runbooks/templates"): ("admin", None),
    ("POST", "/runbooks/templates/{name}"): ("admin", None),
    ("POST", "/executions/{execution_id}/save-as-version"): ("admin", None),
    **{
        ("POST", f"/webhooks/{source}"): ("webhook", body)
        for source, body in alert_bodies("BetaAlert").items()
    },
    **{
        ("POST", f"/match/{source}"): ("admin", body)
        for source, body in alert_bodies("AlphaOnlyAlert").items()
    },
    ("GET", "/incidents"): ("admin", None),
    ("GET", "/incidents/{incident_id}"): ("admin", None),
    ("POST", "/incidents/{incident_id}/runbook"): ("admin", lambda a: {"runbook_id": a["rb"]}),
    ("POST", "/executions"): ("admin", lambda a: {"runbook_id": a["rb"]}),
    ("GET", "/executions"): ("admin", None),
    ("GET", "/executions/{execution_id}"): ("admin", None),
    ("GET", "/executions/{execution_id}/events"): ("admin", None),
    ("POST", "/executions/{execution_id}/decisions"): (
        "admin",
        {"step_id": "s2", "decision": "approve"},
    ),
    ("POST", "/executions/{execution_id}/abort"): ("admin", {"rollback": True}),
    ("POST", "/executions/{execution_id}/rollback"): ("admin", None),
    ("POST", "/executions/{execution_id}/breakpoints"): ("admin", {"step_id": "s3"}),
    ("DELETE", "/executions/{execution_id}/breakpoints/{step_id}"): ("admin", None),
    ("POST", "/executions/{execution_id}/replay"): ("admin", {}),
    ("PUT", "/runbooks/{runbook_id}/breakpoints"): ("admin", {"steps": []}),
    ("GET", "/drills"): ("admin", None),
    ("GET", "/settings/risk-rules"): ("admin", None),
    ("PUT", "/settings/risk-rules"): ("admin", b""),
    ("GET", "/settings"): ("admin", None),
    ("PATCH", "/settings"): ("admin", {"execution_policy": {"red_approvals": 2}}),
    ("POST", "/settings"): ("admin", {"execution_policy": {"red_approvals": 2}}),
    ("POST", "/self-checks"): ("admin", None),
    ("GET", "/self-checks"): ("admin", None),
    ("GET", "/users"): ("admin", None),
    ("POST", "/users"): (
        "admin",
        {"email": "bea@b.example", "display_name": "Bea", "roles": ["approver"]},
    ),
    ("GET", "/api-keys"): ("admin", None),
    ("POST", "/api-keys"): ("admin", {"name": "b ci", "roles": ["viewer"]}),
    ("POST", "/api-keys/{key_id}/rotate"): ("admin", {"grace_seconds": 0}),
    ("DELETE", "/api-keys/{key_id}"): ("admin", None),
    ("POST", "/slack/interactions"): ("slack", None),
    ("POST", "/slack/commands"): ("slack", None),
    ("GET", "/audit/export"): ("admin", None),
    ("POST", "/codec/decode"): ("admin", {"payloads": []}),
    ("POST", "/codec/encode"): ("admin", {"payloads": []}),
    ("GET", "/reports/health"): ("admin", None),
}


def operations(stack_app: Any) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, ops in stack_app.openapi()["paths"].items()
        for method in ops
    }


@pytest.fixture
def app() -> Any:
    from api.app import create_app
    from ddoc.contracts.settings import Settings

    return create_app(Settings())


def test_every_route_is_in_the_isolation_table(app: Any) -> None:
    assert operations(app) == set(ROUTES), "add new routes to ROUTES (and think about tenants)"


async def a_world(stack: Stack, engine: Engine) -> dict[str, str]:
    """Tenant A's resources, made through A's own credentials."""
    headers = stack.api_headers()
    runbook = await stack.http.post(
        "/runbooks", json={"content": ALPHA_RUNBOOK, "source_path": "alpha.md"}, headers=headers
    )
    assert runbook.status_code == 201, runbook.text
    rb = runbook.json()["id"]
    started = await stack.http.post("/executions", json={"runbook_id": rb}, headers=headers)
    ex = started.json()["id"]

    async def waiting() -> bool:
        body = (await stack.http.get(f"/executions/{ex}", headers=headers)).json()
        return bool(body["status"] == "awaiting_human")

    await eventually(waiting)
    fired = await stack.http.post(
        "/webhooks/generic",
        json={"title": "AlphaOnlyAlert", "service": "alpha-svc"},
        headers=stack.webhook_headers(),
    )
    assert fired.status_code == 202, fired.text
    incidents = (await stack.http.get("/incidents", headers=headers)).json()
    inc = next(i["id"] for i in incidents if i["title"] == "AlphaOnlyAlert")
    created = await stack.http.post(
        "/api-keys", json={"name": "alpha ci", "roles": ["admin"]}, headers=headers
    )
    key = created.json()["id"]
    with Session(engine) as session:
        users.add(
            session,
            tenant_id=stack.settings.tenant,
            email="alpha-zx81@a.example",
            display_name="Alpha",
            roles=["approver"],
            slack_user_id=None,
            actor="test",
        )
        session.add(
            RunbookSuggestion(
                id="sug_alpha_zx81",
                tenant_id=stack.settings.tenant,
                runbook_id=rb,
                base_version=1,
                status="open",
                fingerprint="f",
                changes=[],
                content=ALPHA_RUNBOOK,
                diff="",
            )
        )
        incident = session.get(Incident, inc)
        assert incident is not None and incident.fingerprint
        fingerprint = fingerprints.from_dict(incident.fingerprint)
        assert fingerprint is not None
        trigger = learned.record(
            session,
            tenant_id=stack.settings.tenant,
            fingerprint=fingerprint,
            runbook_id=rb,
            incident_id=inc,
            actor="test",
            actor_name="Alpha",
        )
        session.commit()
        lt = trigger.id
    return {"rb": rb, "ex": ex, "inc": inc, "key": key, "sug": "sug_alpha_zx81", "lt": lt}


def a_secrets(a: dict[str, str]) -> list[str]:
    return [*a.values(), "ZX81", "zx81", "AlphaOnlyAlert", "alpha-svc"]


async def a_state(stack: Stack, a: dict[str, str]) -> dict[str, Any]:
    headers = stack.api_headers()
    runbook = (await stack.http.get(f"/runbooks/{a['rb']}", headers=headers)).json()
    execution = (await stack.http.get(f"/executions/{a['ex']}", headers=headers)).json()
    incident = (await stack.http.get(f"/incidents/{a['inc']}", headers=headers)).json()
    keys = (await stack.http.get("/api-keys", headers=headers)).json()
    suggestions = (await stack.http.get(f"/runbooks/{a['rb']}/suggestions", headers=headers)).json()
    settings = (await stack.http.get("/settings", headers=headers)).json()
    users_ = (await stack.http.get("/users", headers=headers)).json()
    return {
        "runbook": (runbook["version"], runbook["trust_level"], runbook["archived"]),
        "learned_triggers": [t["id"] for t in runbook["learned_triggers"]],
        "execution": (
            execution["status"],
            [len(s["decisions"]) for s in execution["steps"]],
        ),
        "incident": (incident["status"], incident["runbook_id"], incident["execution_id"]),
        "keys": sorted((k["id"], k["revoked_at"]) for k in keys),
        "suggestions": [(s["id"], s["status"]) for s in suggestions],
        "settings": settings,
        "users": sorted(u["email"] for u in users_),
    }


async def test_tenant_b_cannot_see_or_touch_anything_of_tenant_a(
    stack: Stack, engine: Engine, app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a = await a_world(stack, engine)
    before = await a_state(stack, a)

    other, b_key, b_token = (
        f"{stack.settings.tenant}b",
        f"ddoc_test_b_{uuid.uuid4().hex}",
        f"ddwh_test_b_{uuid.uuid4().hex}",
    )
    tenancy.bootstrap(engine, tenant_id=other, api_key=b_key, webhook_token=b_token)
    b_admin = {"Authorization": f"Bearer {b_key}"}
    monkeypatch.setenv("DDOC_TEST_ISO_SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("DDOC_TEST_ISO_SLACK_SECRET", B_SLACK_SECRET)
    slack = {
        "team_id": B_TEAM,
        "channel": "C0BISO",
        "bot_token_env": "DDOC_TEST_ISO_SLACK_TOKEN",
        "signing_secret_env": "DDOC_TEST_ISO_SLACK_SECRET",
    }
    assert (
        await stack.http.patch("/settings", json={"slack": slack}, headers=b_admin)
    ).status_code == 200
    with Session(engine) as session:
        users.add(
            session,
            tenant_id=other,
            email="bo@b.example",
            display_name="Bo",
            roles=["admin"],
            slack_user_id=B_USER,
            actor="test",
        )
        session.commit()

    params = {
        "runbook_id": a["rb"],
        "execution_id": a["ex"],
        "incident_id": a["inc"],
        "suggestion_id": a["sug"],
        "key_id": a["key"],
        "trigger_id": a["lt"],
        "name": "no-such-template",
        "step_id": "s3",
    }
    failures = []
    for (method, path), (caller, body) in sorted(ROUTES.items()):
        url = path.format(**{k: v for k, v in params.items() if "{" + k + "}" in path})
        kwargs: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if caller == "admin":
            headers = dict(b_admin)
        elif caller == "webhook":
            headers = {"Authorization": f"Bearer {b_token}"}
        if callable(body):
            kwargs["json"] = body(a)
        elif isinstance(body, bytes):
            kwargs["content"] = body
            headers["Content-Type"] = "application/yaml"
        elif body is not None:
            kwargs["json"] = body
        if caller == "slack":
            if path.endswith("interactions"):
                payload = block_actions_payload(
                    user_id=B_USER,
                    team_id=B_TEAM,
                    action_id="ddoc_approve_s2",
                    value=button_value(a["ex"], "s2", "approve"),
                )
                raw = interaction_body(payload)
            else:
                raw = slash_command_body(
                    command="/ddoc", text=f"status {a['ex']}", user_id=B_USER, team_id=B_TEAM
                )
            kwargs = {"content": raw}
            headers = signed_headers(B_SLACK_SECRET, raw)
        response = await stack.http.request(method, url, headers=headers, **kwargs)
        text = response.text
        sent = url + json.dumps(kwargs.get("json")) + str(kwargs.get("content"))
        problems = []
        if response.status_code >= 500:
            problems.append(f"status {response.status_code}")
        if "{" in path and response.status_code != 404:
            problems.append(f"status {response.status_code}, not 404, for A's resource")
        # Naming back what B itself sent is no leak; anything else of A's is.
        leaked = [s for s in a_secrets(a) if s in text and s not in sent]
        if leaked:
            problems.append(f"answer carries A's {leaked}")
        if problems:
            failures.append(f"{method} {path}: {'; '.join(problems)}: {text[:200]}")
    assert not failures, "\n".join(failures)
    # What B did left A exactly as it was (B's archive-missing, settings, keys, ... were B's).
    assert await a_state(stack, a) == before
    audit = await stack.http.get("/audit/export", headers=b_admin)
    assert not [s for s in a_secrets(a) if s in audit.text]
    b_runbooks = (await stack.http.get("/runbooks?include_archived=true", headers=b_admin)).json()
    assert b_runbooks and all("ZX81" not in json.dumps(r) for r in b_runbooks)


def route_role(route: APIRoute) -> Role | None:
    """The minimum role a route's dependencies demand (api/deps.py `require`)."""
    stack_ = list(route.dependant.dependencies)
    while stack_:
        dependency = stack_.pop()
        role = getattr(dependency.call, "ddoc_role", None)
        if role is not None:
            return Role(role)
        stack_.extend(dependency.dependencies)
    return None


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those as their router)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


PUBLIC_PREFIXES = (
    "/health",
    "/metrics",  # aggregate counts only
    "/webhooks/",  # webhook token
    "/slack/",  # Slack's signature
    "/ui/",  # the sign-in cookie
    "/docs",
    "/redoc",
    "/openapi",
)


async def test_every_route_demands_a_role_and_refuses_the_one_below(
    stack: Stack, engine: Engine, app: Any
) -> None:
    keys = {}
    with Session(engine) as session:
        for role in Role:
            _, keys[role] = tenancy.create_api_key(
                session, tenant_id=stack.settings.tenant, name=role.value, roles=[role.value]
            )
        session.commit()
    checked, with_role = 0, set()
    for route in api_routes(app.routes):
        role = route_role(route)
        if role is None:
            public = route.path == "/ui" or route.path.startswith(PUBLIC_PREFIXES)
            assert public, f"{route.path} has no role"
            continue
        for method in route.methods:
            with_role.add((method, route.path))
            if role == Role.VIEWER:  # a viewer reads; the only POSTs it may make store nothing
                assert (
                    method == "GET"
                    or route.path in ("/runbooks/parse", "/codec/decode")
                    or route.path.startswith("/match/")
                ), (method, route.path)
            url = route.path.replace("{", "").replace("}", "")  # ids that do not exist
            anonymous = await stack.http.request(method, url)
            assert anonymous.status_code == 401, (method, route.path, anonymous.text)
            if role.rank == 0:
                continue
            below = list(Role)[role.rank - 1]
            refused = await stack.http.request(
                method, url, headers={"Authorization": f"Bearer {keys[below]}"}, json={}
            )
            assert refused.status_code == 403, (method, route.path, refused.text)
            assert f"needs the {role.value} role" in refused.json()["detail"]
            checked += 1
    # Every route called with an API key in the isolation table demands a role, and vice versa.
    assert with_role == {op for op, (caller, _) in ROUTES.items() if caller == "admin"}
    assert checked >= 20


# The MCP server (/mcp, not in the OpenAPI document): how tenant B's admin key calls each tool,
# naming A's resources; "not found" for those that name one. A new tool fails the test below.
MCP_CALLS: dict[str, tuple[Callable[[dict[str, str]], dict[str, Any]], bool]] = {
    "search_runbooks": (lambda a: {"query": "Alpha-only restart procedure ZX81"}, False),
    "match_alert": (lambda a: {"text": "AlphaOnlyAlert on alpha-svc"}, False),
    "get_runbook": (lambda a: {"runbook_id": a["rb"]}, True),
    "explain_step": (lambda a: {"runbook_id": a["rb"], "step_id": "s2"}, True),
    "start_execution": (lambda a: {"runbook_id": a["rb"]}, True),
    "get_execution": (lambda a: {"execution_id": a["ex"]}, True),
    "request_approval": (lambda a: {"execution_id": a["ex"], "step_id": "s2"}, True),
    # Refused before anything is scheduled (it would run on B's own agent queue in any case).
    "run_diagnostic": (lambda a: {"command": "touch /nonexistent/alpha-zx81"}, False),
    "list_incidents": (lambda a: {}, False),
    "get_incident": (lambda a: {"incident_id": a["inc"]}, True),
}


async def test_tenant_b_over_mcp_finds_nothing_of_tenant_a(stack: Stack, engine: Engine) -> None:
    from mcp.shared.exceptions import MCPError

    from tests.test_mcp import over_http

    a = await a_world(stack, engine)
    before = await a_state(stack, a)
    b_key = f"ddoc_test_b_{uuid.uuid4().hex}"
    tenancy.bootstrap(engine, tenant_id=f"{stack.settings.tenant}b", api_key=b_key)
    failures = []
    async with over_http(stack.base_url, b_key) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == set(MCP_CALLS)
        for tool, (arguments, names_a) in MCP_CALLS.items():
            sent = arguments(a)
            answer = await mcp.call_tool(tool, sent)
            text = " ".join(getattr(c, "text", "") for c in answer.content)
            if names_a and not (answer.is_error and "not found" in text):
                failures.append(f"{tool}: not 'not found': {text[:200]}")
            leaked = [s for s in a_secrets(a) if s in text and s not in json.dumps(sent)]
            if leaked:
                failures.append(f"{tool}: answer carries A's {leaked}")
        for uri in (f"ddoc://runbooks/{a['rb']}", f"ddoc://executions/{a['ex']}"):
            with pytest.raises(MCPError, match="not found"):
                await mcp.read_resource(uri)
    assert not failures, "\n".join(failures)
    assert await a_state(stack, a) == before
