"""Slack requests in: verified before anything else, then mapped to a responder.

Verification is Slack's v0 scheme (`slack_sdk.signature.SignatureVerifier`: HMAC-SHA256 of
`v0:<timestamp>:<body>` with the signing secret, timestamp within 5 minutes), plus replay
protection: a signature seen once is refused for as long as its timestamp would be accepted.

Button values carry everything needed to act (`{"e": execution, "s": step, "d": decision}`):
no server-side session state.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from sqlmodel import Session

from ddoc.platform import users
from ddoc.platform.tables import User

log = logging.getLogger(__name__)

ACTION_PREFIX = "ddoc_"
REPLAY_WINDOW = timedelta(minutes=10)  # longer than the 5 minutes a timestamp is accepted


class SlackRequestRejected(Exception):
    """The request is not provably from Slack: nothing about it is acted upon."""


@dataclass(frozen=True)
class ButtonAction:
    execution_id: str
    step_id: str | None
    decision: str
    branch: str | None
    slack_user_id: str
    channel_id: str | None
    response_url: str | None
    trigger_id: str | None = None
    command: str | None = None  # an edit submitted from the modal
    runbook_id: str | None = None  # "pick this runbook"
    incident_id: str | None = None


def verify(session: Session, *, secret: str, body: bytes, headers: dict[str, str]) -> None:
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise SlackRequestRejected("missing Slack signature headers")
    if not SignatureVerifier(secret).is_valid(body, timestamp, signature):
        raise SlackRequestRejected("invalid signature or stale timestamp")
    # Replays: the first delivery of a signature wins, any later one is refused.
    session.execute(
        text("DELETE FROM slack_requests WHERE received_at < :cutoff"),
        {"cutoff": datetime.now(UTC) - REPLAY_WINDOW},
    )
    fresh = session.execute(
        text(
            "INSERT INTO slack_requests (signature) VALUES (:signature) "
            "ON CONFLICT (signature) DO NOTHING RETURNING signature"
        ),
        {"signature": signature},
    ).first()
    session.commit()
    if fresh is None:
        raise SlackRequestRejected("replayed request")


EDIT_CALLBACK = "ddoc_edit"
EDIT_BLOCK = "command"


def button_action(body: bytes) -> ButtonAction | None:
    """The dd0c/run button a `block_actions` payload carries (or the edit modal's submission),
    or None for anything else."""
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    try:
        payload: dict[str, Any] = json.loads(fields["payload"][0])
    except (KeyError, IndexError, json.JSONDecodeError):
        return None
    if payload.get("type") == "view_submission":
        return _edit_submission(payload)
    if payload.get("type") != "block_actions":
        return None
    action = next(
        (
            a
            for a in payload.get("actions") or []
            if str(a.get("action_id", "")).startswith(ACTION_PREFIX)
        ),
        None,
    )
    if action is None:
        return None
    try:
        value: dict[str, Any] = json.loads(action.get("value") or "")
        execution_id = str(value["e"])
        decision = str(value["d"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    container = payload.get("container") or {}
    return ButtonAction(
        execution_id=execution_id,
        step_id=value.get("s"),
        decision=decision,
        branch=value.get("b"),
        slack_user_id=str((payload.get("user") or {}).get("id", "")),
        channel_id=container.get("channel_id") or (payload.get("channel") or {}).get("id"),
        response_url=payload.get("response_url"),
        trigger_id=payload.get("trigger_id"),
        runbook_id=value.get("r"),
        incident_id=value.get("i"),
    )


def _edit_submission(payload: dict[str, Any]) -> ButtonAction | None:
    view = payload.get("view") or {}
    if view.get("callback_id") != EDIT_CALLBACK:
        return None
    try:
        value: dict[str, Any] = json.loads(view.get("private_metadata") or "")
        state = view["state"]["values"][EDIT_BLOCK][EDIT_BLOCK]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return ButtonAction(
        execution_id=str(value.get("e", "")),
        step_id=value.get("s"),
        decision="edit",
        branch=None,
        slack_user_id=str((payload.get("user") or {}).get("id", "")),
        channel_id=value.get("c"),
        response_url=None,
        command=str(state.get("value") or ""),
    )


def edit_modal(action: ButtonAction, current_command: str) -> dict[str, Any]:
    """The modal an Edit button opens: the step's command, editable; submitting it sends an
    `edit` decision (re-classified and approved again by the workflow)."""
    metadata = {"e": action.execution_id, "s": action.step_id or "", "c": action.channel_id or ""}
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "title": {"type": "plain_text", "text": f"Edit step {action.step_id}"[:24]},
        "submit": {"type": "plain_text", "text": "Propose"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": EDIT_BLOCK,
                "label": {"type": "plain_text", "text": "Command"},
                "hint": {
                    "type": "plain_text",
                    "text": "It is re-classified and needs approval at its new risk, "
                    "never from you.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": EDIT_BLOCK,
                    "multiline": True,
                    "initial_value": current_command[:3000],
                },
            }
        ],
    }


def team_of(body: bytes) -> str | None:
    """The Slack workspace (team id) a request claims to come from, read before verification
    only to pick the signing secret to verify it with."""
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    if "payload" in fields:
        try:
            payload: dict[str, Any] = json.loads(fields["payload"][0])
        except json.JSONDecodeError:
            return None
        team = (payload.get("team") or {}).get("id") or (payload.get("user") or {}).get("team_id")
        return str(team) if team else None
    team_ids = fields.get("team_id")
    return team_ids[0] if team_ids else None


def button_value(execution_id: str, step_id: str | None, decision: str, **extra: str) -> str:
    """What a button carries (Slack allows 2,000 characters)."""
    value: dict[str, str] = {"e": execution_id, "d": decision, **extra}
    if step_id is not None:
        value["s"] = step_id
    return json.dumps(value, separators=(",", ":"))


def responder(
    session: Session, web: WebClient | None, *, tenant_id: str, slack_user_id: str
) -> User | None:
    """The registered responder behind a Slack user: by explicit id, else by the e-mail Slack
    reports for them (then remembered). None when they are not registered."""
    user = users.by_slack_id(session, tenant_id=tenant_id, slack_user_id=slack_user_id)
    if user is not None or web is None:
        return user
    try:
        info = web.users_info(user=slack_user_id)
    except SlackApiError as err:
        log.warning("users.info for %s failed: %s", slack_user_id, err.response.get("error"))
        return None
    except OSError as err:  # Slack unreachable
        log.warning("users.info for %s failed: %s", slack_user_id, err)
        return None
    email = ((info.get("user") or {}).get("profile") or {}).get("email")
    if not email:
        return None
    user = users.link_slack_by_email(
        session, tenant_id=tenant_id, email=email, slack_user_id=slack_user_id
    )
    session.commit()
    return user


def tell(web: WebClient | None, *, channel: str | None, user: str, message: str) -> None:
    """An ephemeral message only the clicking user sees; failures are logged, never raised."""
    if web is None or not channel:
        log.warning("cannot tell Slack user %s: %s", user, message)
        return
    try:
        web.chat_postEphemeral(channel=channel, user=user, text=message)
    except SlackApiError as err:
        log.warning("chat.postEphemeral failed: %s", err.response.get("error"))
    except OSError as err:  # Slack unreachable
        log.warning("chat.postEphemeral failed: %s", err)
