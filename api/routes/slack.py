"""Slack's requests: button clicks (interactions) and `/ddoc` slash commands. Verified before
anything else; acknowledged at once; a decision goes to the workflow as a signal, checked like
any API decision."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from api.deps import AppState, StateDep
from ddoc.alerts import service as incidents_service
from ddoc.alerts.sources import GenericAlert, normalize_generic
from ddoc.contracts.execution import Actor, DecisionKind, ExecutionMode
from ddoc.contracts.roles import Role, holds
from ddoc.execution import service
from ddoc.execution.views import ExecutionView
from ddoc.platform.errors import DomainError, Forbidden, NotFound
from ddoc.slack import inbound, render, tenants
from ddoc.slack.tenants import SlackConfig

log = logging.getLogger(__name__)
router = APIRouter(prefix="/slack", tags=["slack"])

# Slack gives 3 s; our own calls to Slack while answering get less.
SLACK_CALL_TIMEOUT_SECONDS = 2


def web_client(config: SlackConfig) -> WebClient | None:
    if not config.bot_token:
        return None
    return WebClient(
        token=config.bot_token, base_url=config.api_url, timeout=SLACK_CALL_TIMEOUT_SECONDS
    )


async def _verified_body(request: Request, state: AppState) -> tuple[bytes, SlackConfig]:
    """The body, once proven to come from Slack, and the Slack set-up of the tenant that owns
    the workspace (found by the team id before verifying; nothing is acted upon before)."""
    body = await request.body()
    team = inbound.team_of(body)
    config = await asyncio.to_thread(_config_for_team, state, team)
    if config is None or not config.signing_secret:
        raise HTTPException(404, "Slack is not configured for this workspace")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        await asyncio.to_thread(_verify, state, config.signing_secret, body, headers)
    except inbound.SlackRequestRejected as err:
        log.warning("Slack request refused: %s", err)
        raise HTTPException(401, f"not a valid Slack request: {err}") from None
    return body, config


def _config_for_team(state: AppState, team: str | None) -> SlackConfig | None:
    with Session(state.engine) as session:
        return tenants.for_team(session, team, tenants.default_config(state.settings))


@router.post("/interactions", summary="Slack interactivity (button clicks); signed by Slack")
async def interactions(request: Request, state: StateDep) -> Response:
    """Buttons (`block_actions`) and the edit modal's submission (`view_submission`)."""
    body, config = await _verified_body(request, state)
    action = inbound.button_action(body)
    if action is None:
        return Response(status_code=200)
    tenant_id = config.tenant_id
    web = web_client(config)
    actor = await asyncio.to_thread(_responder, state, web, tenant_id, action.slack_user_id)
    if actor is None:
        await asyncio.to_thread(
            inbound.tell,
            web,
            channel=action.channel_id,
            user=action.slack_user_id,
            message="You are not registered as a responder in dd0c/run, so nothing was done. "
            "Ask an admin to add you (`ddoc user add <your e-mail> --role responder`).",
        )
        return Response(status_code=200)
    if action.decision == "pick":
        message = await _pick(state, tenant_id, action, actor)
    elif action.decision == "edit" and action.command is None:
        message = await _open_edit(state, web, tenant_id, action, actor)
    else:
        message = await _decide(state, tenant_id, action, actor)
    if message is not None and action.command is not None:
        # The modal stays open and shows why.
        return JSONResponse(
            {"response_action": "errors", "errors": {inbound.EDIT_BLOCK: message[:200]}}
        )
    if message is not None:
        await asyncio.to_thread(
            inbound.tell, web, channel=action.channel_id, user=action.slack_user_id, message=message
        )
    return Response(status_code=200)


async def _pick(
    state: AppState, tenant_id: str, action: inbound.ButtonAction, actor: Actor
) -> str | None:
    """Run the picked runbook for the incident (None), or say why not."""
    if not holds(actor.roles, Role.RESPONDER):
        return "Not allowed: starting a runbook needs the responder, approver or admin role."
    if not action.runbook_id or not action.incident_id:
        return "Nothing done: the button names no runbook."
    try:
        await incidents_service.pick(
            state.engine,
            state.temporal,
            state.settings,
            tenant_id=tenant_id,
            incident_id=action.incident_id,
            runbook_id=action.runbook_id,
            actor=actor.user_id,
            actor_name=actor.display_name,
        )
    except DomainError as err:
        return f"Not started: {err}"
    return None


async def _open_edit(
    state: AppState,
    web: WebClient | None,
    tenant_id: str,
    action: inbound.ButtonAction,
    actor: Actor,
) -> str | None:
    """Open the edit modal (None), or say why not."""
    try:
        command = await service.editable_command(
            state.engine,
            state.temporal,
            tenant_id=tenant_id,
            execution_id=action.execution_id,
            step_id=action.step_id,
            actor=actor,
        )
    except NotFound as err:
        return f"Nothing done: {err}"
    except DomainError as err:
        return f"Not now: {err}"
    if web is None or not action.trigger_id:
        return "Slack is not configured to open the editor."
    try:
        await asyncio.to_thread(
            web.views_open, trigger_id=action.trigger_id, view=inbound.edit_modal(action, command)
        )
    except SlackApiError as err:
        return f"Could not open the editor: {err.response.get('error')}"
    except OSError as err:  # Slack unreachable
        return f"Could not open the editor: {err}"
    return None


async def _decide(
    state: AppState, tenant_id: str, action: inbound.ButtonAction, actor: Actor
) -> str | None:
    """None when signalled; else what to tell the user."""
    try:
        kind = DecisionKind(action.decision)
    except ValueError:
        return f"Unknown decision {action.decision!r}."
    try:
        await service.decide(
            state.engine,
            state.temporal,
            tenant_id=tenant_id,
            execution_id=action.execution_id,
            step_id=action.step_id,
            kind=kind,
            actor=actor,
            branch=action.branch,
            command=action.command,
        )
    except NotFound as err:
        return f"Nothing done: {err}"
    except Forbidden as err:
        return f"Not allowed: {err}"
    except DomainError as err:
        return f"Not now: {err}"
    return None


def _verify(state: AppState, secret: str, body: bytes, headers: dict[str, str]) -> None:
    with Session(state.engine) as session:
        inbound.verify(session, secret=secret, body=body, headers=headers)


def _responder(
    state: AppState, web: WebClient | None, tenant_id: str, slack_user_id: str
) -> Actor | None:
    with Session(state.engine) as session:
        user = inbound.responder(session, web, tenant_id=tenant_id, slack_user_id=slack_user_id)
        if user is None:
            return None
        return Actor(
            user_id=f"user:{user.id}",
            display_name=user.display_name,
            source="slack",
            roles=list(user.roles),
        )


HELP = (
    "*dd0c/run*\n"
    "`/ddoc run <runbook id> [read_along|copilot|autopilot|dry_run] [name=value …]` "
    "start a runbook\n"
    "`/ddoc status` open executions and what they wait for\n"
    "`/ddoc find <alert text>` the runbooks that match, best first\n"
    "`/ddoc handoff` what was tried, by whom, what is left (for the next shift)\n"
    "`/ddoc help` this"
)


@router.post("/commands", summary="The /ddoc slash command; signed by Slack")
async def commands(request: Request, state: StateDep) -> dict[str, Any]:
    body, config = await _verified_body(request, state)
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
    words = (fields.get("text") or "").split()
    verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
    tenant_id = config.tenant_id
    if verb == "help":
        return _ephemeral(HELP)
    web = web_client(config)
    actor = await asyncio.to_thread(_responder, state, web, tenant_id, fields.get("user_id", ""))
    if actor is None:
        return _ephemeral(
            "You are not registered as a responder in dd0c/run. Ask an admin to add you "
            "(`ddoc user add <your e-mail> --role responder`)."
        )
    if verb == "run":
        return await _run(state, tenant_id, actor, args)
    if verb == "status":
        return _ephemeral(await asyncio.to_thread(_status, state, tenant_id))
    if verb == "find":
        return _ephemeral(await asyncio.to_thread(_find, state, tenant_id, " ".join(args)))
    if verb == "handoff":
        return _in_channel(await asyncio.to_thread(_handoff, state, tenant_id))
    return _ephemeral(f"Unknown command `{verb}`.\n{HELP}")


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text[:3000]}


def _in_channel(text: str) -> dict[str, Any]:
    return {"response_type": "in_channel", "text": text[:3000]}


async def _run(state: AppState, tenant_id: str, actor: Actor, args: list[str]) -> dict[str, Any]:
    if not args:
        return _ephemeral("Usage: `/ddoc run <runbook id> [mode] [name=value …]`")
    if not holds(actor.roles, Role.RESPONDER):
        return _ephemeral("Starting a runbook needs the responder, approver or admin role.")
    runbook_id, rest = args[0], args[1:]
    mode: ExecutionMode | None = None
    variables: dict[str, str] = {}
    for word in rest:
        if "=" in word:
            name, _, value = word.partition("=")
            variables[name] = value
        else:
            try:
                mode = ExecutionMode(word)
            except ValueError:
                return _ephemeral(f"`{word}` is neither a mode nor name=value.")
    try:
        started = await service.start_by_hand(
            state.engine,
            state.temporal,
            state.settings,
            tenant_id=tenant_id,
            actor=actor.user_id,
            runbook_id=runbook_id,
            mode=mode,
            variables=variables,
        )
    except DomainError as err:
        return _ephemeral(f"Not started: {err}")
    return _in_channel(
        f"{actor.display_name} started runbook `{runbook_id}` ({started.mode}): "
        f"execution `{started.id}`"
    )


def _status(state: AppState, tenant_id: str) -> str:
    rows = service.open_executions(state.engine, tenant_id)
    if not rows:
        return "No execution is running."
    return "\n".join(_status_line(row) for row in rows)


def _status_line(execution: ExecutionView) -> str:
    current = execution.step(execution.current_step)
    waits = f" — {current.id}: {current.awaiting.message}" if current and current.awaiting else ""
    return f"`{execution.id}` {execution.status} ({execution.runbook_id}){waits}"


def _find(state: AppState, tenant_id: str, words: str) -> str:
    if not words.strip():
        return "Usage: `/ddoc find <alert text>`"
    alert = normalize_generic(GenericAlert(title=words[:1000]))[0]
    with Session(state.engine) as session:
        result = state.matcher.match(session, tenant_id=tenant_id, alert=alert)
    if not result.candidates:
        return f"No runbook matches “{words}”."
    lines = [f"Runbooks for “{words}” ({result.status}):"]
    for candidate in result.candidates[:5]:
        lines.append(
            f"• `{candidate.runbook_id}` {candidate.title} — {candidate.score:.2f}"
            + (f" ({'; '.join(candidate.reasons[:2])})" if candidate.reasons else "")
        )
    return "\n".join(lines)


def _handoff(state: AppState, tenant_id: str) -> str:
    open_rows = service.open_executions(state.engine, tenant_id)
    if not open_rows:
        return "Handoff: nothing is running."
    parts: list[str] = []
    for index, row in enumerate(open_rows):
        part = render.handoff_message(row)
        if sum(len(p) + 2 for p in parts) + len(part) > 2900:
            parts.append(f"… and {len(open_rows) - index} more: `/ddoc status` lists them")
            break
        parts.append(part)
    return "\n\n".join(parts)
