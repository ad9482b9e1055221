"""`/metrics` parsed with prometheus-client's own parser: the counters move as alerts arrive and
are refused; per-tenant webhook rate limits answer 429 with Retry-After."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually


async def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await stack.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move_as_alerts_arrive(stack: Stack) -> None:
    before = await scrape(stack)
    for n in range(3):
        alert = am_alert("MetricsProbe", fingerprint=f"m{n}", service=f"svc{n}")
        posted = await stack.http.post(
            "/webhooks/alertmanager", json=alertmanager_v4(alert), headers=stack.webhook_headers()
        )
        assert posted.status_code == 202, posted.text
    bad_token = await stack.http.post(
        "/webhooks/alertmanager",
        json=alertmanager_v4(am_alert("MetricsProbe", fingerprint="x")),
        headers={"Authorization": "Bearer ddwh_wrong"},
    )
    assert bad_token.status_code == 401
    invalid = await stack.http.post(
        "/webhooks/generic", json={"no": "title"}, headers=stack.webhook_headers()
    )
    assert invalid.status_code == 422
    after = await scrape(stack)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ddoc_webhooks_received_total", source="alertmanager") == 3
    assert moved("ddoc_webhooks_rejected_total", source="alertmanager", reason="auth") == 1
    assert moved("ddoc_webhooks_rejected_total", source="generic", reason="invalid") == 1
    assert moved("ddoc_match_confidence_count") == 3  # three new incidents were matched
    families = {
        f.name for f in text_string_to_metric_families((await stack.http.get("/metrics")).text)
    }
    assert {
        "ddoc_webhooks_received",
        "ddoc_webhooks_rejected",
        "ddoc_match_confidence",
        "ddoc_executions",
        "ddoc_approval_wait_seconds",
        "ddoc_escalations",
        "ddoc_agent_command_seconds",
        "ddoc_agent_command_failures",
    } <= families


async def test_executions_gauge_and_command_histogram(stack: Stack) -> None:
    runbook = await stack.http.post(
        "/runbooks",
        json={"content": "# Probe\n\n1. Look: `echo metrics`\n"},
        headers=stack.api_headers(),
    )
    started = await stack.http.post(
        "/executions", json={"runbook_id": runbook.json()["id"]}, headers=stack.api_headers()
    )
    execution_id = started.json()["id"]

    async def done() -> bool:
        body = (
            await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
        ).json()
        return bool(body["status"] == "succeeded")

    await eventually(done)

    async def counted() -> dict[Any, float] | None:
        # The live view says succeeded once the workflow does; the gauge reads the database,
        # which records it a moment later.
        samples = await scrape(stack)
        return samples if value(samples, "ddoc_executions", status="succeeded") >= 1 else None

    samples = await eventually(counted)
    assert value(samples, "ddoc_executions", status="succeeded") >= 1
    # The worker runs in this process in tests: its histogram is on the same page.
    assert value(samples, "ddoc_agent_command_seconds_count", outcome="succeeded") >= 1


async def test_a_tenant_over_its_webhook_rate_gets_429_with_retry_after(stack: Stack) -> None:
    limited = await stack.http.patch(
        "/settings",
        json={"webhook_rate_limit": {"per_second": 0.5, "burst": 2}},
        headers=stack.api_headers(),
    )
    assert limited.status_code == 200, limited.text
    before = await scrape(stack)
    codes = []
    for n in range(4):
        response = await stack.http.post(
            "/webhooks/generic", json={"title": f"rate {n}"}, headers=stack.webhook_headers()
        )
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert "rate limit" in response.json()["detail"]
    assert codes[:2] == [202, 202] and codes[2:] == [429, 429]
    after = await scrape(stack)
    key = ("ddoc_webhooks_rejected_total", (("reason", "rate_limited"), ("source", "generic")))
    assert after.get(key, 0) - before.get(key, 0) == 2
    bad = await stack.http.patch(
        "/settings", json={"webhook_rate_limit": {"per_second": -1}}, headers=stack.api_headers()
    )
    assert bad.status_code == 422
