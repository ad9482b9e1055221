"""The MCP server over streamable HTTP at `/mcp` (docs/decisions/0020-mcp-server.md).

Every request carries an API key (`Authorization: Bearer`), checked before the SDK sees it
(`KeyGate`); each tool call then goes through `_governed`: the least role the tool needs, the
key's rate limit (shared through the database), the call itself over the services in `ddoc/`,
and one audit event with the key, the assistant's client name and the redacted arguments. A
domain error is the tool's error result (`is_error`), worded for the model; nothing decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.deps import AppState, principal_for_key
from api.mcp import documents
from api.routes.webhooks import SOURCES, parse_body
from ddoc.alerts import incidents
from ddoc.alerts.sources import GenericAlert, normalize_generic
from ddoc.contracts.execution import ExecutionMode
from ddoc.contracts.redact import Redactor
from ddoc.contracts.roles import Role
from ddoc.execution import diagnostics, live, service
from ddoc.platform import audit
from ddoc.platform.errors import DomainError, NotFound
from ddoc.platform.ratelimit import Limit, retry_after
from ddoc.platform.tenancy import Principal
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.risk import tenant as tenant_rules

log = logging.getLogger(__name__)
T = TypeVar("T")

PATH = "/mcp"
# Per API key, shared by every API process (api_key_rate_buckets): bursts of 60 calls, then one
# every half second. docs/LIMITS.md.
CALL_LIMIT = Limit(per_second=2.0, burst=60.0)
MAX_RESULTS = 20
MAX_TEXT = 4000  # free text in: a query, an alert's text, a comment
_REDACT = Redactor()

INSTRUCTIONS = """\
dd0c/run: the team's runbooks, incidents and runbook executions, under the same risk gates and
human approvals as for people. Find a runbook (search_runbooks, match_alert), read it
(get_runbook, explain_step), start it (start_execution: read-only green steps run, the others
wait for a human), follow it (get_execution) and ask the humans to decide (request_approval).
Look around with run_diagnostic (green, read-only commands only). You can never approve,
reject or otherwise decide a step: a human does, in Slack, the console or the CLI."""


class Missing(ToolError):
    """Not found (another tenant's counts as none): a resource read answers it as such."""


class KeyGate:
    """The API key of every MCP request: unknown, missing or revoked → 401 before the SDK."""

    def __init__(self, app: StreamableHTTPASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        state: AppState = request.app.state.ddoc
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        principal = await asyncio.to_thread(principal_for_key, state, key) if key else None
        if principal is None:
            detail = "invalid or revoked API key" if key else "missing API key"
            response = JSONResponse(
                {"detail": f"{detail}: send `Authorization: Bearer <api key>`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["ddoc_principal"] = principal
        await self._app(scope, receive, send)


def build() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "dd0c-run", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING"
    )
    _add_tools(server)
    _add_resources(server)
    return server


def route(server: MCPServer[Any]) -> Route:
    """The `/mcp` route for the API (its session manager runs in the API's lifespan). DNS
    rebinding protection is off: a browser page cannot send the key (a header, not a cookie)."""
    server.streamable_http_app(
        streamable_http_path=PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return Route(
        PATH,
        endpoint=KeyGate(StreamableHTTPASGIApp(server.session_manager)),
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )


# --- governance --------------------------------------------------------------------------------


def _caller(ctx: Context[Any]) -> tuple[AppState, Principal, str]:
    request = ctx.request_context.request
    principal = getattr(getattr(request, "state", None), "ddoc_principal", None)
    if not isinstance(request, Request) or not isinstance(principal, Principal):
        raise ToolError("no API key: this server is served over HTTP with a key (`ddoc mcp`)")
    state: AppState = request.app.state.ddoc
    params = ctx.session.client_params
    client = params.client_info.name if params is not None and params.client_info else "unknown"
    return state, principal, str(client)[:200]


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return _REDACT.redact(value[:MAX_TEXT])
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


async def _governed(
    ctx: Context[Any],
    tool: str,
    arguments: dict[str, Any],
    role: Role,
    work: Callable[[AppState, Principal], Awaitable[T]],
) -> T:
    state, principal, client = _caller(ctx)
    outcome = "ok"
    try:
        if not principal.at_least(role):
            held = ", ".join(sorted(principal.roles)) or "none"
            raise ToolError(
                f"refused: {tool} needs the {role.value} role or higher; this API key has {held}"
            )
        wait = await asyncio.to_thread(state.mcp_limiter.take, principal.key_id, CALL_LIMIT)
        if wait > 0:
            raise ToolError(
                f"rate limit of this API key reached: retry in {retry_after(wait)} s "
                "(nothing was done)"
            )
        try:
            return await work(state, principal)
        except NotFound as err:
            raise Missing(str(err)) from None
        except DomainError as err:
            raise ToolError(str(err)) from None
    except ToolError as err:
        outcome = f"error: {err}"[:500]
        raise
    except Exception:
        outcome = "error: internal"
        raise
    finally:
        await asyncio.to_thread(
            _audit, state, principal, tool, client, _redacted(arguments), outcome
        )


def _audit(
    state: AppState,
    principal: Principal,
    tool: str,
    client: str,
    arguments: dict[str, Any],
    outcome: str,
) -> None:
    with Session(state.engine) as session:
        audit.append(
            session,
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            action=f"mcp.{tool}",
            subject=principal.key_id,
            data={"client": client, "arguments": arguments, "outcome": outcome},
        )
        session.commit()


def _actor(principal: Principal, client: str) -> str:
    return f"{principal.actor} via MCP ({client})"


# --- tools -------------------------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
Id = Annotated[str, Field(min_length=1, max_length=200)]


def _add_tools(server: MCPServer[Any]) -> None:
    @server.tool(
        description="Search the team's runbooks by what they are about (free text: a symptom, "
        "a service, an alert name). Use it first when you need a procedure. Returns runbook "
        "ids, titles and scores, best first; starts nothing. Archived and draft runbooks are "
        "not searched."
    )
    async def search_runbooks(
        query: Text, ctx: Context[Any], limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 5
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            alert = normalize_generic(GenericAlert(title=query))[0]

            def rank() -> list[dict[str, Any]]:
                with Session(state.engine) as session:
                    ranked = state.matcher.rank(session, tenant_id=principal.tenant_id, alert=alert)
                return [
                    {
                        "runbook_id": c.runbook_id,
                        "title": c.title,
                        "source_path": c.source_path,
                        "score": round(score, 3),
                        "reasons": c.reasons[:3],
                    }
                    for score, c in ranked[:limit]
                ]

            return {"query": query, "runbooks": await asyncio.to_thread(rank)}

        return await _governed(
            ctx, "search_runbooks", {"query": query, "limit": limit}, Role.VIEWER, work
        )

    @server.tool(
        description="Find the runbook for an alert, as dd0c/run matches incoming alerts: give "
        "either `text` (the alert's title or description) or `payload` (a webhook body, with "
        "`source`: alertmanager, pagerduty, opsgenie, grafana or generic). Returns per alert "
        "the match status (attached = confident, suggested, unmatched) and the candidates "
        "with reasons. Starts nothing and opens no incident. Refuses a call with both or "
        "neither of text and payload, or a payload its source cannot read."
    )
    async def match_alert(
        ctx: Context[Any],
        text: Annotated[str | None, Field(max_length=MAX_TEXT)] = None,
        payload: dict[str, Any] | None = None,
        source: Literal["alertmanager", "pagerduty", "opsgenie", "grafana", "generic"] = "generic",
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            if (text is None) == (payload is None):
                raise ToolError("give exactly one of `text` or `payload`")
            if text is not None:
                alerts = normalize_generic(GenericAlert(title=text))
            else:
                try:
                    alerts = parse_body(SOURCES[source], json.dumps(payload).encode()).alerts
                except Exception as err:
                    detail = getattr(err, "detail", None) or str(err)
                    raise ToolError(f"the {source} payload cannot be read: {detail}") from None

            def match() -> list[dict[str, Any]]:
                found = []
                with Session(state.engine) as session:
                    for alert in alerts[:MAX_RESULTS]:
                        result = state.matcher.match(
                            session, tenant_id=principal.tenant_id, alert=alert
                        )
                        found.append(
                            {
                                "alert": alert.title,
                                "status": result.status,
                                "attached_runbook_id": result.attached.runbook_id
                                if result.attached
                                else None,
                                "candidates": [
                                    {
                                        "runbook_id": c.runbook_id,
                                        "title": c.title,
                                        "score": round(c.score, 3),
                                        "reasons": c.reasons[:3],
                                    }
                                    for c in result.candidates[:5]
                                ],
                            }
                        )
                return found

            return {"alerts": await asyncio.to_thread(match)}

        arguments = {"text": text, "payload": payload, "source": source}
        return await _governed(ctx, "match_alert", arguments, Role.VIEWER, work)

    @server.tool(
        description="Read a runbook: its steps in order as markdown, each command with its risk "
        "(green = read-only, yellow = changes something, red = dangerous) and why, and its "
        "rollback. Use it before starting a runbook, to tell the user what it will do. "
        "Another team's runbook, or an id that does not exist, is not found."
    )
    async def get_runbook(runbook_id: Id, ctx: Context[Any]) -> str:
        async def work(state: AppState, principal: Principal) -> str:
            return await asyncio.to_thread(_runbook_markdown, state, principal, runbook_id)

        return await _governed(ctx, "get_runbook", {"runbook_id": runbook_id}, Role.VIEWER, work)

    @server.tool(
        description="Explain one step of a runbook: its command, its risk and why (as stored, "
        "and under the tenant's current rules), what happens when an execution reaches it "
        "(runs by itself, or waits for whose approval) and its rollback with the rollback's "
        "risk. Use it when the user asks what a step does or whether it is safe. Not found: "
        "an unknown runbook or step."
    )
    async def explain_step(runbook_id: Id, step_id: Id, ctx: Context[Any]) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            def explain() -> dict[str, Any]:
                with Session(state.engine) as session:
                    runbook = runbooks.get(
                        session, tenant_id=principal.tenant_id, runbook_id=runbook_id
                    )
                    version = runbooks.version(
                        session, tenant_id=principal.tenant_id, runbook_id=runbook_id
                    )
                    rules = tenant_rules.risk_rules(session, principal.tenant_id)
                found = documents.explain_step(runbook, version, step_id, rules)
                if found is None:
                    raise NotFound(f"runbook {runbook_id} has no step {step_id!r}")
                return found

            return await asyncio.to_thread(explain)

        arguments = {"runbook_id": runbook_id, "step_id": step_id}
        return await _governed(ctx, "explain_step", arguments, Role.VIEWER, work)

    @server.tool(
        description="Start a runbook (its current version). In copilot mode (the default) its "
        "green, read-only steps run on the team's agent and every yellow or red step waits for "
        "a human's approval; read_along waits for a human at every step; dry_run runs only "
        "green steps and shows what the others would do. Autopilot is never available here. "
        "Give the runbook's variables by name. Returns the execution (follow it with "
        "get_execution). Refused without the assistant role or higher, for an unknown "
        "runbook, an archived or draft one, or when a blast-radius limit holds it."
    )
    async def start_execution(
        runbook_id: Id,
        ctx: Context[Any],
        variables: dict[str, Annotated[str, Field(max_length=MAX_TEXT)]] | None = None,
        mode: Literal["copilot", "read_along", "dry_run"] = "copilot",
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            _, _, client = _caller(ctx)
            view = await service.start_by_hand(
                state.engine,
                state.temporal,
                state.settings,
                tenant_id=principal.tenant_id,
                actor=_actor(principal, client),
                runbook_id=runbook_id,
                mode=ExecutionMode(mode),
                variables=variables or {},
            )
            return documents.execution_summary(view)

        arguments = {"runbook_id": runbook_id, "variables": variables or {}, "mode": mode}
        return await _governed(ctx, "start_execution", arguments, Role.ASSISTANT, work)

    @server.tool(
        description="An execution as it is now: its status, each step's status, command, risk, "
        "exit code and output (long output is shortened), and what it waits for (which step, "
        "which decision, whose role). Use it after start_execution and to follow up. "
        "Another team's execution, or an unknown id, is not found."
    )
    async def get_execution(execution_id: Id, ctx: Context[Any]) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            view = await live.view(state.engine, state.temporal, principal.tenant_id, execution_id)
            return documents.execution_summary(view)

        arguments = {"execution_id": execution_id}
        return await _governed(ctx, "get_execution", arguments, Role.VIEWER, work)

    @server.tool(
        description="Ask the humans to decide on a step that waits for them: posts your request "
        "(with your comment: why it should be approved) to the team's Slack channel and records "
        "it in the execution's trail and the audit log. It approves nothing: only a human with "
        "the right role can approve, in Slack, the console or the CLI. Refused when the step "
        "does not wait for a decision, or without the assistant role or higher."
    )
    async def request_approval(
        execution_id: Id,
        step_id: Id,
        ctx: Context[Any],
        comment: Annotated[str, Field(max_length=2000)] = "",
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            _, _, client = _caller(ctx)
            view = await service.request_approval(
                state.engine,
                state.temporal,
                tenant_id=principal.tenant_id,
                execution_id=execution_id,
                step_id=step_id,
                comment=_REDACT.redact(comment) or None,
                actor=principal.actor,
                requested_by=f"{principal.name} ({client})",
            )
            step = view.step(step_id)
            return {
                "requested": True,
                "execution_id": execution_id,
                "step_id": step_id,
                "waiting_for": step.awaiting.message if step and step.awaiting else None,
                "note": "A human decides; follow the execution with get_execution.",
            }

        arguments = {"execution_id": execution_id, "step_id": step_id, "comment": comment}
        return await _governed(ctx, "request_approval", arguments, Role.ASSISTANT, work)

    @server.tool(
        description="Run one read-only shell command on the team's agent to look at something "
        "(e.g. `kubectl get pods -n web`, `df -h`), and get its exit code and output. Only "
        "commands the team's risk rules rate green (read-only) run; anything that could change "
        "something (delete, restart, scale, write, ...) is refused with the risk and the reason, "
        "and nothing runs: put such a change in a runbook step, where a human approves it. The "
        "agent's own policy may refuse a command too. Output is redacted and shortened."
    )
    async def run_diagnostic(
        command: Annotated[str, Field(min_length=1, max_length=diagnostics.MAX_COMMAND_CHARS)],
        ctx: Context[Any],
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            ran = await diagnostics.run(
                state.engine,
                state.temporal,
                state.settings,
                tenant_id=principal.tenant_id,
                command=command,
            )
            result = ran.result
            if result.outcome != result.outcome.RAN:
                raise ToolError(f"not run ({result.outcome.value}): {result.reason}; nothing ran")
            return {
                "command": ran.command,
                "risk": ran.risk.value,
                "exit_code": result.exit_code,
                "output": documents.clip(result.output),
                "truncated": result.truncated,
                "timed_out": result.timed_out,
                "duration_ms": result.duration_ms,
            }

        return await _governed(ctx, "run_diagnostic", {"command": command}, Role.ASSISTANT, work)

    @server.tool(
        description="The team's incidents, newest first: what fired, its service and severity, "
        "whether a runbook matched, its status. Filter by status (open or resolved). Use it to "
        "see what is going on; get_incident has the details."
    )
    async def list_incidents(
        ctx: Context[Any],
        status: Literal["open", "resolved"] | None = None,
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 10,
    ) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            def found() -> list[dict[str, Any]]:
                with Session(state.engine) as session:
                    rows = incidents.list_incidents(
                        session, tenant_id=principal.tenant_id, status=status, limit=limit
                    )
                return [row.model_dump(mode="json") for row in rows]

            return {"incidents": await asyncio.to_thread(found)}

        arguments = {"status": status, "limit": limit}
        return await _governed(ctx, "list_incidents", arguments, Role.VIEWER, work)

    @server.tool(
        description="One incident: its alerts and keys, the matched runbook and the other "
        "candidates with their reasons, its executions and resolution. Another team's "
        "incident, or an unknown id, is not found."
    )
    async def get_incident(incident_id: Id, ctx: Context[Any]) -> dict[str, Any]:
        async def work(state: AppState, principal: Principal) -> dict[str, Any]:
            def found() -> dict[str, Any]:
                with Session(state.engine) as session:
                    view = incidents.incident_view(
                        session, tenant_id=principal.tenant_id, incident_id=incident_id
                    )
                return view.model_dump(mode="json")

            return await asyncio.to_thread(found)

        arguments = {"incident_id": incident_id}
        return await _governed(ctx, "get_incident", arguments, Role.VIEWER, work)


def _runbook_markdown(state: AppState, principal: Principal, runbook_id: str) -> str:
    with Session(state.engine) as session:
        runbook = runbooks.get(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
        version = runbooks.version(session, tenant_id=principal.tenant_id, runbook_id=runbook_id)
    return documents.runbook_markdown(runbook, version)


# --- resources ---------------------------------------------------------------------------------


def _add_resources(server: MCPServer[Any]) -> None:
    @server.resource(
        "ddoc://runbooks/{runbook_id}",
        name="runbook",
        description="A runbook as markdown: its steps, each command's risk and why, rollbacks",
        mime_type="text/markdown",
    )
    async def runbook_resource(runbook_id: str, ctx: Context[Any]) -> str:
        async def work(state: AppState, principal: Principal) -> str:
            return await asyncio.to_thread(_runbook_markdown, state, principal, runbook_id)

        return await _resource(ctx, "read_runbook", {"runbook_id": runbook_id}, work)

    @server.resource(
        "ddoc://executions/{execution_id}",
        name="execution",
        description="An execution as a live document: each step's status, output and what it "
        "waits for (read it again for the latest)",
        mime_type="text/markdown",
    )
    async def execution_resource(execution_id: str, ctx: Context[Any]) -> str:
        async def work(state: AppState, principal: Principal) -> str:
            view = await live.view(state.engine, state.temporal, principal.tenant_id, execution_id)
            return documents.execution_markdown(view)

        return await _resource(ctx, "read_execution", {"execution_id": execution_id}, work)


async def _resource(
    ctx: Context[Any],
    name: str,
    arguments: dict[str, Any],
    work: Callable[[AppState, Principal], Awaitable[str]],
) -> str:
    try:
        return await _governed(ctx, name, arguments, Role.VIEWER, work)
    except Missing as err:
        raise ResourceNotFoundError(str(err)) from None
    except ToolError as err:
        raise ResourceError(str(err)) from None
