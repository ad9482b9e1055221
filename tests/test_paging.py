"""The PagerDuty Events API v2 client against a fake PagerDuty over real local HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ddoc.alerts.paging import (
    MAX_SUMMARY,
    Page,
    PagerDutyEvents,
    PagingError,
    mask_key,
    pd_severity,
)
from tests.fakes.pagerduty import FakePagerDuty

KEY = "R0UT1NGKEY0000000000000000000000"[:32]
DEDUP = "ddoc:exec-42:step-3"


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def events(pd: FakePagerDuty) -> Iterator[PagerDutyEvents]:
    with PagerDutyEvents(url=pd.url, timeout=5.0) as client:
        yield client


def page(**overrides: Any) -> Page:
    fields: dict[str, Any] = {
        "routing_key": KEY,
        "dedup_key": DEDUP,
        "summary": "Restart of payments-api needs approval",
        "source": "dd0c/run",
        "severity": "critical",
    }
    fields.update(overrides)
    return Page(**fields)


def test_trigger_sends_the_exact_events_v2_body(pd: FakePagerDuty, events: PagerDutyEvents) -> None:
    result = events.trigger(
        page(
            custom_details={"execution": "exec-42", "step": 3},
            links=[{"href": "https://run.example/executions/exec-42", "text": "Execution"}],
            component="payments-api",
            group="prod",
            client_url="https://run.example/executions/exec-42",
        )
    )

    assert result.status == "success"
    assert result.message == "Event processed"
    assert result.dedup_key == DEDUP
    assert pd.wait_for(1) == [
        {
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": DEDUP,
            "payload": {
                "summary": "Restart of payments-api needs approval",
                "source": "dd0c/run",
                "severity": "critical",
                "component": "payments-api",
                "group": "prod",
                "custom_details": {"execution": "exec-42", "step": 3},
            },
            "links": [{"href": "https://run.example/executions/exec-42", "text": "Execution"}],
            "client": "dd0c/run",
            "client_url": "https://run.example/executions/exec-42",
        }
    ]


def test_trigger_leaves_out_empty_optional_keys(pd: FakePagerDuty, events: PagerDutyEvents) -> None:
    events.trigger(page(severity="warning"))

    assert pd.wait_for(1) == [
        {
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": DEDUP,
            "payload": {
                "summary": "Restart of payments-api needs approval",
                "source": "dd0c/run",
                "severity": "warning",
            },
            "client": "dd0c/run",
        }
    ]


def test_resolve(pd: FakePagerDuty, events: PagerDutyEvents) -> None:
    result = events.resolve(KEY, DEDUP)

    assert result.status == "success"
    assert result.dedup_key == DEDUP
    assert pd.wait_for(1) == [{"routing_key": KEY, "event_action": "resolve", "dedup_key": DEDUP}]


def test_retriggering_echoes_the_same_dedup_key(pd: FakePagerDuty, events: PagerDutyEvents) -> None:
    first = events.trigger(page())
    again = events.trigger(page(summary="Still waiting"))

    assert first.dedup_key == again.dedup_key == DEDUP
    assert [e["dedup_key"] for e in pd.wait_for(2)] == [DEDUP, DEDUP]


def test_fake_generates_a_dedup_key_when_none_is_sent(pd: FakePagerDuty) -> None:
    body = {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "src", "severity": "info"},
    }
    answer = httpx.post(pd.url, json=body)

    assert answer.status_code == 202
    assert len(answer.json()["dedup_key"]) == 32


@pytest.mark.parametrize("length", [MAX_SUMMARY - 1, MAX_SUMMARY])
def test_summary_within_the_limit_is_sent_unchanged(
    pd: FakePagerDuty, events: PagerDutyEvents, length: int
) -> None:
    summary = "x" * length
    events.trigger(page(summary=summary))

    assert pd.wait_for(1)[0]["payload"]["summary"] == summary


def test_long_summary_is_truncated_with_an_ellipsis(
    pd: FakePagerDuty, events: PagerDutyEvents
) -> None:
    events.trigger(page(summary="é" * 5000))

    sent = pd.wait_for(1)[0]["payload"]["summary"]
    assert len(sent) == MAX_SUMMARY
    assert sent == "é" * (MAX_SUMMARY - 1) + "…"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("critical", "critical"),
        ("CRITICAL", "critical"),
        ("high", "error"),
        ("error", "error"),
        ("warning", "warning"),
        ("medium", "warning"),
        ("low", "info"),
        ("info", "info"),
        ("page-me", "info"),
        ("", "info"),
        (None, "info"),
    ],
)
def test_severity_mapping(ours: str | None, theirs: str) -> None:
    assert pd_severity(ours) == theirs


def test_invalid_event_is_not_retryable_and_says_why(
    pd: FakePagerDuty, events: PagerDutyEvents
) -> None:
    with pytest.raises(PagingError) as caught:
        events.trigger(page(severity="high"))  # not mapped through pd_severity

    err = caught.value
    assert err.retryable is False
    assert err.status == 400
    message = str(err)
    assert "invalid event" in message
    assert "Event object is invalid" in message
    assert "'payload.severity' is invalid" in message
    assert DEDUP in message
    assert KEY not in message
    assert mask_key(KEY) in message


def test_wrong_length_routing_key_is_rejected_without_showing_it(
    pd: FakePagerDuty, events: PagerDutyEvents
) -> None:
    short_key = "SHORTKEY-SECRET-123"
    with pytest.raises(PagingError) as caught:
        events.resolve(short_key, DEDUP)

    assert caught.value.retryable is False
    assert "Length of 'routing_key' is incorrect" in str(caught.value)
    assert short_key not in str(caught.value)


def test_routing_key_echoed_by_the_server_is_masked() -> None:
    def echo_key(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [f"Invalid routing key {KEY}"],
            },
        )

    client = httpx.Client(transport=httpx.MockTransport(echo_key))
    with client, pytest.raises(PagingError) as caught:
        PagerDutyEvents(client=client).trigger(page())

    assert KEY not in str(caught.value)
    assert f"Invalid routing key {mask_key(KEY)}" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_not_retryable(
    pd: FakePagerDuty, events: PagerDutyEvents, status: int
) -> None:
    pd.fail_next(status)
    with pytest.raises(PagingError) as caught:
        events.trigger(page())

    assert caught.value.retryable is False
    assert caught.value.status == status
    assert "refused the routing key" in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "words"), [(429, "rate limiting"), (500, "server error"), (503, "server error")]
)
def test_rate_limit_and_server_errors_are_retryable(
    pd: FakePagerDuty, events: PagerDutyEvents, status: int, words: str
) -> None:
    pd.fail_next(status)
    with pytest.raises(PagingError) as caught:
        events.trigger(page())

    assert caught.value.retryable is True
    assert caught.value.status == status
    assert words in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert KEY not in str(caught.value)
    # The retry (the activity's next attempt) goes through, deduplicated on the same key.
    assert events.trigger(page()).dedup_key == DEDUP
    assert len(pd.wait_for(2)) == 2


def test_connection_refused_is_retryable() -> None:
    with FakePagerDuty() as gone:
        url = gone.url  # closed when the block ends: nothing listens there any more

    with PagerDutyEvents(url=url, timeout=2.0) as client, pytest.raises(PagingError) as caught:
        client.trigger(page())

    assert caught.value.retryable is True
    assert caught.value.status is None
    assert "could not be reached" in str(caught.value)
    assert KEY not in str(caught.value)


def test_timeout_is_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = httpx.Client(transport=httpx.MockTransport(slow))
    with client, pytest.raises(PagingError) as caught:
        PagerDutyEvents(client=client).resolve(KEY, DEDUP)

    assert caught.value.retryable is True
    assert "ReadTimeout" in str(caught.value)


def test_non_pagerduty_success_answer_is_an_error() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Welcome</html>")

    client = httpx.Client(transport=httpx.MockTransport(html))
    with client, pytest.raises(PagingError) as caught:
        PagerDutyEvents(url="https://proxy.example/", client=client).trigger(page())

    assert caught.value.retryable is False
    assert "unexpected answer" in str(caught.value)


def test_wait_for_reports_what_arrived(pd: FakePagerDuty, events: PagerDutyEvents) -> None:
    events.resolve(KEY, DEDUP)

    with pytest.raises(AssertionError, match=r"expected 2 PagerDuty event\(s\).*got 1"):
        pd.wait_for(2, timeout=0.1)
