"""Slack's requests: button clicks (interactions). Verified before anything else; acknowledged
at once; the decision goes to the workflow as a signal, checked like any API decision."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, Response
from slack_sdk import WebClient
from sqlmodel import Session

from api.deps import AppState, StateDep
from ddoc import live
from ddoc.approvals import RefusalCode
from ddoc.contracts import Actor, DecisionKind
from ddoc.slack import inbound

log = logging.getLogger(__name__)
router = APIRouter(prefix="/slack", tags=["slack"])

# Slack gives 3 s; our own calls to Slack while answering get less.
SLACK_CALL_TIMEOUT_SECONDS = 2


def web_client(state: AppState) -> WebClient | None:
    settings = state.settings
    if not settings.slack_bot_token:
        return None
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=SLACK_CALL_TIMEOUT_SECONDS,
    )


@router.post("/interactions", summary="Slack interactivity (button clicks); signed by Slack")
async def interactions(request: Request, state: StateDep) -> Response:
    body = await request.body()
    secret = state.settings.slack_signing_secret
    if not secret:
        raise HTTPException(404, "Slack is not configured (DDOC_SLACK_SIGNING_SECRET)")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        await asyncio.to_thread(_verify, state, secret, body, headers)
    except inbound.SlackRequestRejected as err:
        log.warning("Slack request refused: %s", err)
        raise HTTPException(401, f"not a valid Slack request: {err}") from None
    action = inbound.button_action(body)
    if action is None:
        return Response(status_code=200)
    tenant_id = state.settings.tenant
    web = web_client(state)
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
    message = await _decide(state, tenant_id, action, actor)
    if message is not None:
        await asyncio.to_thread(
            inbound.tell, web, channel=action.channel_id, user=action.slack_user_id, message=message
        )
    return Response(status_code=200)


async def _decide(
    state: AppState, tenant_id: str, action: inbound.ButtonAction, actor: Actor
) -> str | None:
    """None when signalled; else what to tell the user."""
    try:
        kind = DecisionKind(action.decision)
    except ValueError:
        return f"Unknown decision {action.decision!r}."
    try:
        await live.decide(
            state.engine,
            state.temporal,
            tenant_id=tenant_id,
            execution_id=action.execution_id,
            step_id=action.step_id,
            kind=kind,
            actor=actor,
            branch=action.branch,
        )
    except live.DecisionRefused as refused:
        prefix = "Not allowed" if refused.refusal.code == RefusalCode.FORBIDDEN else "Not now"
        return f"{prefix}: {refused}"
    except (live.StepNotFound, LookupError) as err:
        return f"Nothing done: {err}"
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
