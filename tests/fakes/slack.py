"""A fake Slack Web API as a real HTTP server on 127.0.0.1 (an ephemeral port).

Real HTTP, not an httpx transport, because the code under test uses the real
`slack_sdk.WebClient` (urllib) and may run in a Temporal activity in another thread. Point the
client at it with `WebClient(token=fake.bot_token, base_url=fake.base_url)`; `base_url` ends
with "/" as slack_sdk requires, and the client POSTs to `base_url + "chat.postMessage"` etc.

It serves `/api/<method>` (404 elsewhere), takes form-encoded or JSON bodies (plus the query
string), decodes the JSON-string fields of form bodies (`blocks`, `attachments`, `metadata`)
and, in this order:

- records every request in `calls` as `(method, params)`, including the ones answered with an
  error;
- answers 503 (plain-text body) while `down` is true, then queued failures (`fail_next(...)`):
  429 with `Retry-After` and `{"ok": false, "error": "ratelimited"}`, or a 5xx with a plain-text
  body, as Slack's edge does;
- answers `{"ok": false, "error": "unknown_method"}` for methods it does not implement, and
  `{"ok": false, "error": "invalid_auth"}` unless `Authorization: Bearer <bot_token>` came with
  the request (HTTP 200, as Slack does; slack_sdk raises `SlackApiError` for both);
- otherwise answers like Slack for `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
  `users.info`, `conversations.open` and `auth.test`.

State: `messages` (ts -> the message as posted and updated), `ephemerals` (in posting order).
Users are only those given as `users` (id -> {"email", "real_name", ...}); an unknown user id
gets `user_not_found` from `users.info`, `conversations.open` and `chat.postEphemeral`. Posting
to a user id (U.../W...) posts to that user's DM channel, as Slack does. Channels are not
modelled: any channel id works except those added to `missing_channels`.

Also here, for tests of our own Slack endpoints: `signed_headers` (Slack's v0 request signature),
`interaction_body` / `block_actions_payload` (a button click) and `slash_command_body`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.server import FakeHTTPServer, ServedFake

API_PREFIX = "/api/"
TEAM_ID = "T0FAKETEAM"
TEAM_DOMAIN = "fake-team"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
APP_ID = "A0FAKEAPP"
VERIFICATION_TOKEN = "fake-verification-token"  # Slack's deprecated per-app token
FIRST_TS_SECONDS = 1_700_000_000
# Fields Slack takes as JSON strings in form-encoded bodies.
_JSON_FIELDS = ("blocks", "attachments", "metadata")

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class _Failure:
    method: str | None
    status: int
    retry_after: int | None


class _Server(FakeHTTPServer):
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5.0  # a client that stalls mid-request cannot hold up stop()

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not url.path.startswith(API_PREFIX) or len(url.path) == len(API_PREFIX):
            self._answer((404, {"Content-Type": "text/plain"}, b"Not Found"))
            return
        method = url.path[len(API_PREFIX) :]
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body_ok = True
        if content_type == "application/json":
            try:
                decoded = json.loads(raw) if raw.strip() else {}
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                params.update(decoded)
            else:
                body_ok = False
        elif content_type in ("application/x-www-form-urlencoded", "") and raw:
            try:
                form = parse_qs(raw.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                body_ok = False
            else:
                params.update({k: v[-1] for k, v in form.items()})
        elif raw:
            body_ok = False  # multipart (file uploads) is not implemented
        for name in _JSON_FIELDS:
            if isinstance(params.get(name), str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError:
                    body_ok = False
        authorization = self.headers.get("Authorization")
        try:
            answer = self.server.fake.handle(method, params, authorization, body_ok)
        except Exception as exc:  # a bug in the fake: say so rather than drop the connection
            answer = 500, {"Content-Type": "text/plain"}, f"fake Slack error: {exc!r}".encode()
        self._answer(answer)

    def _answer(self, answer: Answer) -> None:
        status, headers, data = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Answer:
    return status, {"Content-Type": "application/json; charset=utf-8", **headers}, _dumps(body)


def _error(error: str) -> Answer:
    return _json({"ok": False, "error": error})


def _plain(status: int, **headers: str) -> Answer:
    try:
        text = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        text = str(status)
    return status, {"Content-Type": "text/plain", **headers}, text.encode()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class FakeSlack(ServedFake):
    """`with FakeSlack(users={...}) as slack:` point a WebClient at `slack.base_url`.

    `users` maps a Slack user id to `{"email": ..., "real_name": ...}` (optionally also
    `name`, `display_name`, `tz`, `is_bot`, `deleted`).
    """

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        users: dict[str, dict[str, Any]] | None = None,
        *,
        team_id: str = TEAM_ID,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.users: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (users or {}).items()}
        # Channel ids answered with channel_not_found (add to it at any time).
        self.missing_channels: set[str] = set()
        # While true, every request gets a 503 (an outage); set it back to False to recover.
        self.down = False
        self._cond = threading.Condition()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._messages: dict[str, dict[str, Any]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._used_triggers: set[str] = set()
        self.views: list[dict[str, Any]] = []  # modals opened with views.open
        self._failures: deque[_Failure] = deque()
        self._ts_counter = itertools.count(100, 100)  # microseconds after FIRST_TS_SECONDS
        self._methods: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "auth.test": self._auth_test,
            "views.open": self._views_open,
        }
        port = self._serve(_Handler, _Server, "fake-slack")
        self.base_url = f"http://127.0.0.1:{port}{API_PREFIX}"

    # -- inspection ----------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """A copy of every `(method, params)` received so far, in arrival order."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The params of every call to `method` so far, in arrival order."""
        with self._cond:
            return [params for name, params in self._calls if name == method]

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        """ts -> {"channel", "ts", "text", "blocks", "thread_ts"}, as posted then updated."""
        with self._cond:
            return {ts: dict(message) for ts, message in self._messages.items()}

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """{"channel", "user", "text", "blocks", "thread_ts", "message_ts"} in posting order."""
        with self._cond:
            return [dict(message) for message in self._ephemerals]

    def wait_for(self, method: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `n` calls to `method` arrived and return all their params.

        This blocks the calling thread: from an async test do not call it on the event loop
        (the code under test could not run); poll `calls_to(method)` instead, e.g. with
        `tests.conftest.eventually`.
        """
        with self._cond:
            if not self._cond.wait_for(
                lambda: sum(name == method for name, _ in self._calls) >= n, timeout
            ):
                raise AssertionError(
                    f"expected {n} call(s) to {method} within {timeout}s, got: {self._calls!r}"
                )
            return [params for name, params in self._calls if name == method]

    # -- failure injection ---------------------------------------------------------------

    def fail_next(
        self, method: str | None, status: int, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Answer the next `times` calls to `method` (any method if None) with HTTP `status`.

        429 comes with `Retry-After` (`retry_after`, 1 if None) and Slack's
        `{"ok": false, "error": "ratelimited"}`; other statuses with a plain-text body (and
        `Retry-After` if `retry_after` is given). The calls are still recorded.
        """
        with self._cond:
            self._failures.extend(_Failure(method, status, retry_after) for _ in range(times))

    # -- request handling (called on the server's handler threads) -----------------------

    def handle(
        self, method: str, params: dict[str, Any], authorization: str | None, body_ok: bool = True
    ) -> Answer:
        """Record the call and decide the answer (status, headers, body)."""
        with self._cond:
            self._calls.append((method, params))
            self._cond.notify_all()
            if self.down:
                return _plain(503)
            failure = next(
                (f for f in self._failures if f.method is None or f.method == method), None
            )
            if failure is not None:
                self._failures.remove(failure)
                return self._injected(failure)
            handler = self._methods.get(method)
            if handler is None:
                return _error("unknown_method")
            if authorization != f"Bearer {self.bot_token}":
                return _error("invalid_auth")
            if not body_ok:
                return _error("invalid_form_data")
            return handler(params)

    @staticmethod
    def _injected(failure: _Failure) -> Answer:
        if failure.status == 429:
            retry_after = str(failure.retry_after if failure.retry_after is not None else 1)
            return _json({"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": retry_after})
        if failure.retry_after is not None:
            return _plain(failure.status, **{"Retry-After": str(failure.retry_after)})
        return _plain(failure.status)

    def _next_ts(self) -> str:
        micros = next(self._ts_counter)
        return f"{FIRST_TS_SECONDS + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, channel: Any) -> str | None:
        """The channel id a message to `channel` lands in (a user id means their DM)."""
        if not isinstance(channel, str) or not channel or channel in self.missing_channels:
            return None
        if channel[0] in "UW":
            return self._dm_channel(channel) if channel in self.users else None
        return channel

    @staticmethod
    def _dm_channel(user_id: str) -> str:
        return "D" + user_id[1:]

    def _message_body(self, message: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.team_id,
            "text": message["text"],
            "ts": message["ts"],
        }
        if message["blocks"]:
            body["blocks"] = message["blocks"]
        if message["thread_ts"]:
            body["thread_ts"] = message["thread_ts"]
        return body

    def _post_message(self, params: dict[str, Any]) -> Answer:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        text, blocks = params.get("text"), params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return _error("no_text")
        if blocks is not None and not isinstance(blocks, list):
            return _error("invalid_blocks")
        ts = self._next_ts()
        message = {
            "channel": channel,
            "ts": ts,
            "text": text or "",
            "blocks": blocks or [],
            "thread_ts": params.get("thread_ts") or None,
        }
        self._messages[ts] = message
        return _json(
            {"ok": True, "channel": channel, "ts": ts, "message": self._message_body(message)}
        )

    def _update(self, params: dict[str, Any]) -> Answer:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        message = self._messages.get(str(params.get("ts") or ""))
        if message is None or message["channel"] != channel:
            return _error("message_not_found")
        text, blocks = params.get("text"), params.get("blocks")
        if text is None and blocks is None and params.get("attachments") is None:
            return _error("no_text")
        if blocks is not None and not isinstance(blocks, list):
            return _error("invalid_blocks")
        # As on Slack, a field left out keeps its previous value; `blocks=[]` removes blocks.
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        return _json(
            {
                "ok": True,
                "channel": channel,
                "ts": message["ts"],
                "text": message["text"],
                "message": self._message_body(message),
            }
        )

    def _post_ephemeral(self, params: dict[str, Any]) -> Answer:
        channel = self._resolve_channel(params.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        user = params.get("user")
        if user not in self.users:
            return _error("user_not_found")
        text, blocks = params.get("text"), params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return _error("no_text")
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": text or "",
                "blocks": blocks or [],
                "thread_ts": params.get("thread_ts") or None,
                "message_ts": ts,
            }
        )
        return _json({"ok": True, "message_ts": ts})

    def _users_info(self, params: dict[str, Any]) -> Answer:
        user_id = params.get("user")
        if not isinstance(user_id, str) or user_id not in self.users:
            return _error("user_not_found")
        info = self.users[user_id]
        email = info.get("email")
        real_name = info.get("real_name") or ""
        name = info.get("name") or (email.split("@")[0] if email else user_id.lower())
        profile: dict[str, Any] = {
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": info.get("display_name", real_name),
            "display_name_normalized": info.get("display_name", real_name),
            "team": self.team_id,
        }
        if email:
            profile["email"] = email
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": bool(info.get("deleted", False)),
            "is_bot": bool(info.get("is_bot", False)),
            "tz": info.get("tz", "Etc/UTC"),
            "profile": profile,
        }
        return _json({"ok": True, "user": user})

    def _conversations_open(self, params: dict[str, Any]) -> Answer:
        if params.get("channel"):
            channel = self._resolve_channel(params["channel"])
            if channel is None:
                return _error("channel_not_found")
            return _json({"ok": True, "channel": {"id": channel}})
        users = params.get("users")
        ids = [u.strip() for u in users.split(",") if u.strip()] if isinstance(users, str) else []
        if not ids:
            return _error("users_list_not_supplied")
        if any(u not in self.users for u in ids):
            return _error("user_not_found")
        if len(ids) == 1:
            channel_id = self._dm_channel(ids[0])
        else:  # a multi-person DM
            digest = hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()
            channel_id = "G" + digest[:10].upper()
        return _json(
            {"ok": True, "no_op": True, "already_open": True, "channel": {"id": channel_id}}
        )

    def _views_open(self, params: dict[str, Any]) -> Answer:
        # A trigger id is valid once, for 3 s on Slack; here: once, and it must be given.
        trigger = params.get("trigger_id")
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not trigger or not isinstance(view, dict) or view.get("type") != "modal":
            return _error("invalid_arguments")
        if trigger in self._used_triggers:
            return _error("expired_trigger_id")
        self._used_triggers.add(trigger)
        self.views.append(view)
        return _json({"ok": True, "view": {"id": f"V{len(self.views):09d}", **view}})

    def _auth_test(self, params: dict[str, Any]) -> Answer:
        return _json(
            {
                "ok": True,
                "url": f"https://{TEAM_DOMAIN}.slack.com/",
                "team": "Fake Team",
                "user": "ddoc",
                "team_id": self.team_id,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        )


# -- requests from Slack to our endpoints ------------------------------------------------


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`, signed with the app's signing `secret` (v0)."""
    ts = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{ts}:".encode() + body
    signature = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={signature}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def interaction_body(payload: dict[str, Any]) -> bytes:
    """The form body Slack posts to the interactivity URL: `payload=<json>`."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def _trigger_id() -> str:
    return f"{time.time_ns() // 1000}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def block_actions_payload(
    *,
    user_id: str,
    team_id: str,
    action_id: str,
    value: str,
    channel_id: str = "C0INCIDENT",
    message_ts: str = "1700000000.000100",
    response_url: str = "",
) -> dict[str, Any]:
    """A block_actions payload for a click on button `action_id` (with `value`) in a message."""
    username = user_id.lower()
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": username, "name": username, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "incident"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def slash_command_body(
    *,
    command: str,
    text: str,
    user_id: str,
    team_id: str,
    channel_id: str = "C0INCIDENT",
    response_url: str = "",
) -> bytes:
    """The form body Slack posts to a slash command's request URL."""
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": "incident",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "response_url": response_url,
            "trigger_id": _trigger_id(),
        }
    ).encode()
