"""The fake Slack Web API, driven by the real slack_sdk WebClient over real local HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack import (
    FakeSlack,
    block_actions_payload,
    interaction_body,
    signed_headers,
    slash_command_body,
)

TOKEN = "xoxb-test"
ALICE = "U0ALICE"
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*disk full* on db-1"}},
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "exec-1:step-2",
            }
        ],
    },
]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    users = {ALICE: {"email": "alice@example.com", "real_name": "Alice Doe"}}
    with FakeSlack(bot_token=TOKEN, users=users) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.base_url, timeout=5)


def api_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> object:
    return excinfo.value.response.get("error")


def test_base_url_ends_with_a_slash(slack: FakeSlack) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:")
    assert slack.base_url.endswith("/api/")


def test_post_message_with_blocks_then_update(slack: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0INCIDENT", text="disk full", blocks=BLOCKS)
    assert posted["ok"] is True
    assert posted["channel"] == "C0INCIDENT"
    ts = posted["ts"]
    assert ts == "1700000000.000100"
    assert posted["message"]["text"] == "disk full"
    assert posted["message"]["blocks"] == BLOCKS
    assert slack.calls_to("chat.postMessage") == [
        {"channel": "C0INCIDENT", "text": "disk full", "blocks": BLOCKS}
    ]
    assert slack.messages == {
        ts: {
            "channel": "C0INCIDENT",
            "ts": ts,
            "text": "disk full",
            "blocks": BLOCKS,
            "thread_ts": None,
        }
    }

    new_blocks = BLOCKS[:1]
    updated = client.chat_update(channel="C0INCIDENT", ts=ts, text="approved", blocks=new_blocks)
    assert (updated["ok"], updated["channel"], updated["ts"]) == (True, "C0INCIDENT", ts)
    assert updated["text"] == "approved"
    assert slack.messages[ts]["text"] == "approved"
    assert slack.messages[ts]["blocks"] == new_blocks

    # A field left out keeps its value; an empty blocks list removes the blocks, as on Slack.
    client.api_call("chat.update", json={"channel": "C0INCIDENT", "ts": ts, "text": "ok"})
    assert slack.messages[ts]["text"] == "ok"
    assert slack.messages[ts]["blocks"] == new_blocks
    client.chat_update(channel="C0INCIDENT", ts=ts, text="approved!", blocks=[])
    assert slack.messages[ts]["text"] == "approved!"
    assert slack.messages[ts]["blocks"] == []


def test_timestamps_are_unique_and_increasing_and_threads_are_recorded(
    slack: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel="C1", text="root")["ts"]
    reply = client.chat_postMessage(channel="C1", text="reply", thread_ts=first)
    second = client.chat_postMessage(channel="C2", text="other")["ts"]
    assert float(first) < float(reply["ts"]) < float(second)
    assert reply["message"]["thread_ts"] == first
    assert slack.messages[reply["ts"]]["thread_ts"] == first
    assert [m["channel"] for m in slack.messages.values()] == ["C1", "C1", "C2"]


def test_form_encoded_blocks_are_decoded(slack: FakeSlack, client: WebClient) -> None:
    response = client.api_call(
        "chat.postMessage",
        params={"channel": "C1", "text": "hi", "blocks": json.dumps(BLOCKS)},
    )
    assert response["ok"] is True
    assert slack.calls_to("chat.postMessage")[0]["blocks"] == BLOCKS
    assert slack.messages[response["ts"]]["blocks"] == BLOCKS


def test_update_of_an_unknown_message(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C1", ts="1600000000.000001", text="nope")
    assert api_error(excinfo) == "message_not_found"
    posted = client.chat_postMessage(channel="C1", text="hi")
    with pytest.raises(SlackApiError) as excinfo:  # the right ts in another channel
        client.chat_update(channel="C2", ts=posted["ts"], text="nope")
    assert api_error(excinfo) == "message_not_found"


def test_post_ephemeral(slack: FakeSlack, client: WebClient) -> None:
    response = client.chat_postEphemeral(
        channel="C0INCIDENT", user=ALICE, text="only you", blocks=BLOCKS
    )
    assert response["ok"] is True
    assert response["message_ts"]
    assert slack.ephemerals == [
        {
            "channel": "C0INCIDENT",
            "user": ALICE,
            "text": "only you",
            "blocks": BLOCKS,
            "thread_ts": None,
            "message_ts": response["message_ts"],
        }
    ]
    assert slack.messages == {}  # ephemeral messages cannot be updated
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postEphemeral(channel="C0INCIDENT", user="U0NOBODY", text="x")
    assert api_error(excinfo) == "user_not_found"


def test_users_info(client: WebClient) -> None:
    user = client.users_info(user=ALICE)["user"]
    assert user["id"] == ALICE
    assert user["name"] == "alice"
    assert user["real_name"] == "Alice Doe"
    assert user["profile"]["email"] == "alice@example.com"
    assert user["profile"]["real_name"] == "Alice Doe"
    assert user["profile"]["display_name"] == "Alice Doe"

    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U0NOBODY")
    assert api_error(excinfo) == "user_not_found"
    assert excinfo.value.response.status_code == 200


def test_conversations_open_and_posting_to_a_user(slack: FakeSlack, client: WebClient) -> None:
    dm = client.conversations_open(users=ALICE)["channel"]["id"]
    assert dm.startswith("D")
    posted = client.chat_postMessage(channel=ALICE, text="psst")
    assert posted["channel"] == dm
    assert slack.messages[posted["ts"]]["channel"] == dm
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_open(users="U0NOBODY")
    assert api_error(excinfo) == "user_not_found"


def test_auth_test(slack: FakeSlack, client: WebClient) -> None:
    response = client.auth_test()
    assert response["ok"] is True
    assert response["team_id"] == slack.team_id
    assert response["user_id"].startswith("U")


def test_invalid_token(slack: FakeSlack) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=slack.base_url, timeout=5)
    with pytest.raises(SlackApiError) as excinfo:
        bad.chat_postMessage(channel="C1", text="hi")
    assert api_error(excinfo) == "invalid_auth"
    assert excinfo.value.response.status_code == 200
    anonymous = WebClient(base_url=slack.base_url, timeout=5)
    with pytest.raises(SlackApiError) as excinfo:
        anonymous.auth_test()
    assert api_error(excinfo) == "invalid_auth"
    assert slack.messages == {}
    assert [method for method, _ in slack.calls] == ["chat.postMessage", "auth.test"]


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("bogus.method")
    assert api_error(excinfo) == "unknown_method"


def test_channel_not_found(slack: FakeSlack, client: WebClient) -> None:
    slack.missing_channels.add("C0GONE")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0GONE", text="hello?")
    assert api_error(excinfo) == "channel_not_found"
    assert slack.messages == {}
    assert len(slack.calls_to("chat.postMessage")) == 1  # recorded anyway


def test_rate_limited(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", 429, retry_after=7)
    assert client.auth_test()["ok"] is True  # another method is not affected
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="hi")
    response = excinfo.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.messages) == 1


def test_rate_limit_retry_handler_of_slack_sdk(slack: FakeSlack) -> None:
    client = WebClient(
        token=TOKEN,
        base_url=slack.base_url,
        timeout=5,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next(None, 429, retry_after=0)
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True
    assert len(slack.calls_to("chat.postMessage")) == 2


def test_server_errors_for_any_method(slack: FakeSlack, client: WebClient) -> None:
    slack.fail_next(None, 500, times=2)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="hi")
    assert excinfo.value.response.status_code == 500
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user=ALICE)
    assert excinfo.value.response.status_code == 500
    assert client.users_info(user=ALICE)["ok"] is True
    assert slack.messages == {}


def test_outage(slack: FakeSlack, client: WebClient) -> None:
    slack.down = True
    calls: list[Callable[[], object]] = [
        client.auth_test,
        lambda: client.chat_postMessage(channel="C1", text="hi"),
    ]
    for call in calls:
        with pytest.raises(SlackApiError) as excinfo:
            call()
        assert excinfo.value.response.status_code == 503
    slack.down = False
    assert client.chat_postMessage(channel="C1", text="hi")["ok"] is True
    assert len(slack.messages) == 1


def test_wait_for(slack: FakeSlack, client: WebClient) -> None:
    def post_later() -> None:
        time.sleep(0.05)
        client.chat_postMessage(channel="C1", text="late")

    thread = threading.Thread(target=post_later)
    thread.start()
    try:
        assert slack.wait_for("chat.postMessage", timeout=5)[0]["text"] == "late"
    finally:
        thread.join()
    with pytest.raises(AssertionError, match=r"chat\.update"):
        slack.wait_for("chat.update", timeout=0.05)


def test_stop_closes_the_port() -> None:
    fake = FakeSlack()
    port = int(fake.base_url.split(":")[2].split("/")[0])
    fake.stop()
    fake.stop()  # idempotent
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", port))


# -- requests from Slack to our endpoints --------------------------------------------------


def test_signed_headers_pass_slack_sdk_verification() -> None:
    body = interaction_body(
        block_actions_payload(user_id=ALICE, team_id="T0TEAM", action_id="approve", value="v")
    )
    headers = signed_headers(SECRET, body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["X-Slack-Signature"].startswith("v0=")
    verifier = SignatureVerifier(SECRET)
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert verifier.is_valid(body, timestamp, signature)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid(body + b"x", timestamp, signature)  # tampered body
    assert not SignatureVerifier("another-secret").is_valid(body, timestamp, signature)

    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 10 * 60)
    stale_ts, stale_signature = stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    assert not verifier.is_valid(body, stale_ts, stale_signature)


def test_signed_headers_match_slacks_documented_example() -> None:
    # The example from Slack's "Verifying requests from Slack" documentation.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = signed_headers(SECRET, body, timestamp=1531420618)
    assert headers["X-Slack-Signature"] == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_block_actions_payload_round_trips_through_the_form_body() -> None:
    payload = block_actions_payload(
        user_id=ALICE,
        team_id="T0TEAM",
        action_id="approve",
        value="exec-1:step-2",
        response_url="http://127.0.0.1:1/respond",
    )
    form = parse_qs(interaction_body(payload).decode())
    assert list(form) == ["payload"]
    decoded = json.loads(form["payload"][0])
    assert decoded == payload
    assert decoded["type"] == "block_actions"
    assert decoded["user"]["id"] == ALICE
    assert decoded["user"]["team_id"] == "T0TEAM"
    assert decoded["team"]["id"] == "T0TEAM"
    assert decoded["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C0INCIDENT",
        "is_ephemeral": False,
    }
    assert decoded["channel"]["id"] == "C0INCIDENT"
    assert decoded["response_url"] == "http://127.0.0.1:1/respond"
    [action] = decoded["actions"]
    assert action["action_id"] == "approve"
    assert action["value"] == "exec-1:step-2"
    assert action["type"] == "button"
    assert action["block_id"]
    assert action["action_ts"]
    assert decoded["trigger_id"]


def test_slash_command_body() -> None:
    body = slash_command_body(
        command="/ddoc", text="run disk-full", user_id=ALICE, team_id="T0TEAM"
    )
    form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    assert set(form) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "response_url",
        "trigger_id",
    }
    assert form["command"] == "/ddoc"
    assert form["text"] == "run disk-full"
    assert form["user_id"] == ALICE
    assert form["team_id"] == "T0TEAM"
    assert form["channel_id"] == "C0INCIDENT"
    assert form["response_url"] == ""
    assert SignatureVerifier(SECRET).is_valid_request(body, signed_headers(SECRET, body))
