"""Hostile and malformed bodies never crash the API: webhooks, /match and runbook intake
answer 2xx or 4xx, never 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddoc.contracts.settings import Settings
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Credentials

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)

VALID: dict[str, Any] = {
    "alertmanager": alertmanager_v4(am_alert("FuzzAlert", fingerprint="f0", service="fuzz")),
    "grafana": {**alertmanager_v4(am_alert("FuzzAlert", fingerprint="f1")), "version": "1"},
    "pagerduty": {
        "event": {
            "id": "E1",
            "event_type": "incident.triggered",
            "data": {"id": "Q1", "title": "fuzz", "incident_key": "k"},
        }
    },
    "opsgenie": {"action": "Create", "alert": {"alertId": "a1", "message": "fuzz"}},
    "generic": {"title": "fuzz"},
}


@pytest.fixture
def client(settings: Settings, credentials: Credentials) -> Iterator[TestClient]:
    from api.app import create_app

    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {credentials.webhook_token}"
        yield test_client


def mutate(body: Any, path: list[str | int], value: Any) -> Any:
    """`body` with the value at `path` (as far as it exists) replaced by `value`."""
    if not path or not isinstance(body, dict | list):
        return value
    key, rest = path[0], path[1:]
    if isinstance(body, dict):
        name = str(key) if str(key) in body else next(iter(body), None)
        if name is None:
            return value
        return {**body, name: mutate(body[name], rest, value)}
    if not body:
        return value
    index = int(key) % len(body) if isinstance(key, int) else 0
    return [mutate(v, rest, value) if i == index else v for i, v in enumerate(body)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    source=st.sampled_from(sorted(VALID)),
    path=st.lists(st.text(max_size=10) | st.integers(0, 3), max_size=4),
    value=JSON,
    raw_junk=st.binary(max_size=64),
    use_junk=st.booleans(),
)
def test_no_body_crashes_a_webhook(
    client: TestClient,
    source: str,
    path: list[str | int],
    value: Any,
    raw_junk: bytes,
    use_junk: bool,
) -> None:
    body = raw_junk if use_junk else json.dumps(mutate(VALID[source], path, value)).encode()
    for route in (f"/webhooks/{source}", f"/match/{source}"):
        response = client.post(route, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code < 500, (route, body[:200], response.text[:300])


RUNBOOK_TYPES = ["application/json", "text/markdown", "text/plain", "text/html", "application/xml"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.text(max_size=400) | st.binary(max_size=200),
    content_type=st.sampled_from(RUNBOOK_TYPES),
    fmt=st.sampled_from(["markdown", "text", "html", "pdf", ""]),
    as_json=st.booleans(),
)
def test_no_runbook_body_crashes_parsing(
    client: TestClient,
    credentials: Credentials,
    content: str | bytes,
    content_type: str,
    fmt: str,
    as_json: bool,
) -> None:
    if as_json and isinstance(content, str):
        body = json.dumps({"content": content, "format": fmt}).encode()
    else:
        body = content.encode() if isinstance(content, str) else content
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {credentials.api_key}"}
    for route in ("/runbooks/parse", "/runbooks"):
        response = client.post(route, content=body, headers=headers)
        assert response.status_code < 500, (route, body[:200], response.text[:300])
