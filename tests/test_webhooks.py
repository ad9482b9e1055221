"""Every alert source end to end through the API: normalisation, authentication, signatures,
correlation, resolution, and `/match` without side effects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from ddoc.contracts.settings import Settings, TemporalSettings
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually, free_port, serve_api

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"

DISK_RUNBOOK = """---
title: Disk filling up on a database host
services: [postgres]
---
# Disk filling up on a database host

The data volume of a PostgreSQL host is running out of free space; writes will fail.

1. Check free space: `df -h /var/lib/postgresql`
2. Find the largest tables with a query in psql.
"""

CERT_RUNBOOK = """---
title: TLS certificate about to expire
---
# TLS certificate about to expire

A certificate served by the load balancer expires within days; clients will refuse it.

1. Show the expiry date: `openssl x509 -noout -enddate -in /etc/ssl/site.pem`
"""


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


async def add(stack: Stack, content: str, path: str) -> dict[str, Any]:
    response = await stack.http.post(
        "/runbooks", json={"content": content, "source_path": path}, headers=stack.api_headers()
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def send(stack: Stack, source: str, body: Any, **headers: str) -> Any:
    return await stack.http.post(
        f"/webhooks/{source}",
        content=json.dumps(body).encode(),
        headers={**stack.webhook_headers(), "Content-Type": "application/json", **headers},
    )


def pagerduty_body(event_type: str, *, title: str, key: str, service: str = "payments") -> Any:
    return {
        "event": {
            "id": "01DEN3V3BOSOXOAG3N5T8EKTSJ",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-25T03:00:00.000Z",
            "agent": None,
            "client": None,
            "data": {
                "id": "Q2EVHXB3BDVK4X",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/Q2EVHXB3BDVK4X",
                "html_url": "https://acme.pagerduty.com/incidents/Q2EVHXB3BDVK4X",
                "number": 4711,
                "status": "triggered" if event_type == "incident.triggered" else "resolved",
                "incident_key": key,
                "created_at": "2026-11-25T03:00:00Z",
                "title": title,
                "service": {"id": "PSVC123", "summary": service, "type": "service_reference"},
                "urgency": "high",
                "priority": None,
            },
        }
    }


async def test_generic_alert_without_name_finds_its_runbook_by_text(stack: Stack) -> None:
    disk = await add(stack, DISK_RUNBOOK, "db/disk.md")
    await add(stack, CERT_RUNBOOK, "edge/cert.md")
    body = {
        "title": "Database host disk almost full",
        "description": "Free space on the PostgreSQL data volume is below 5%.",
        "service": "postgres",
        "severity": "critical",
    }
    matched = await stack.http.post("/match/generic", json=body, headers=stack.api_headers())
    assert matched.status_code == 200
    [result] = matched.json()["alerts"]
    assert result["candidates"][0]["runbook_id"] == disk["id"]
    assert result["candidates"][0]["reasons"]
    response = await send(stack, "generic", body)
    assert response.status_code == 202
    [outcome] = response.json()["alerts"]
    expected = "started" if result["attached"] else "suggested"
    assert outcome["status"] == expected


async def test_match_endpoint_has_no_side_effects(stack: Stack, engine: Engine) -> None:
    await add(stack, (FIXTURES / "crashloop.md").read_text(), "k8s/crashloop.md")
    body = alertmanager_v4(
        am_alert("KubePodCrashLooping", fingerprint="f1", pod="p", namespace="n")
    )
    response = await stack.http.post("/match/alertmanager", json=body, headers=stack.api_headers())
    [result] = response.json()["alerts"]
    assert result["attached"]["source_path"] == "k8s/crashloop.md"
    assert result["attached"]["score"] == 1.0
    assert result["candidates"][0]["reasons"] == [
        "declares alert 'KubePodCrashLooping' in its triggers"
    ]
    assert count(engine, "SELECT count(*) FROM incidents") == 0
    assert count(engine, "SELECT count(*) FROM alerts") == 0


async def test_unknown_alert_is_a_recorded_coverage_gap(stack: Stack) -> None:
    await add(stack, CERT_RUNBOOK, "edge/cert.md")
    body = {"title": "Kafka consumer group lag growing on orders topic", "service": "orders"}
    response = await send(stack, "generic", body)
    [outcome] = response.json()["alerts"]
    assert outcome["status"] in ("unmatched", "suggested")
    assert outcome["execution_id"] is None
    incident = await stack.http.get(
        f"/incidents/{outcome['incident_id']}", headers=stack.api_headers()
    )
    assert incident.json()["match_status"] == outcome["status"]
    assert incident.json()["runbook_id"] is None


async def test_pagerduty_signature_replay_and_resolution(stack: Stack, engine: Engine) -> None:
    await add(stack, DISK_RUNBOOK, "db/disk.md")
    secret = "pd-secret-0123456789"
    patched = await stack.http.patch(
        "/settings", json={"pagerduty_signing_secrets": ["old-secret", secret]},
        headers=stack.api_headers(),
    )  # fmt: skip
    assert patched.json()["pagerduty_signing_secrets"] is True
    body = pagerduty_body("incident.triggered", title="Postgres disk nearly full", key="pd-1")
    raw = json.dumps(body).encode()
    signature = "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()

    unsigned = await send(stack, "pagerduty", body)
    assert unsigned.status_code == 401
    assert unsigned.json() == {"detail": "missing X-PagerDuty-Signature header"}
    forged = await send(stack, "pagerduty", body, **{"X-PagerDuty-Signature": "v1=" + "0" * 64})
    assert forged.status_code == 401
    assert count(engine, "SELECT count(*) FROM alerts") == 0

    headers = {"X-PagerDuty-Signature": f"v1=deadbeef,{signature}", "X-Webhook-Id": "wh-1"}
    accepted = await send(stack, "pagerduty", body, **headers)
    assert accepted.status_code == 202, accepted.text
    [outcome] = accepted.json()["alerts"]
    assert outcome["dedup_key"] == "pd-1"
    replay = await send(stack, "pagerduty", body, **headers)
    assert replay.status_code == 409
    assert replay.json() == {"detail": "delivery wh-1 was already received"}

    resolved = pagerduty_body("incident.resolved", title="Postgres disk nearly full", key="pd-1")
    raw = json.dumps(resolved).encode()
    signed = "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    closing = await send(stack, "pagerduty", resolved, **{"X-PagerDuty-Signature": signed})
    assert closing.json()["alerts"] == [{**outcome, "status": "resolved"}]
    incident = await stack.http.get(
        f"/incidents/{outcome['incident_id']}", headers=stack.api_headers()
    )
    assert incident.json()["status"] == "resolved"

    ack = pagerduty_body("incident.acknowledged", title="x", key="pd-1")
    raw = json.dumps(ack).encode()
    signed = "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    ignored = await send(stack, "pagerduty", ack, **{"X-PagerDuty-Signature": signed})
    assert ignored.status_code == 202 and ignored.json() == {"alerts": []}


async def test_grafana_signed_with_timestamp_and_stale_replay(stack: Stack) -> None:
    secret = "grafana-hmac-secret"
    await stack.http.patch(
        "/settings", json={"grafana_signing_secret": secret}, headers=stack.api_headers()
    )
    body = alertmanager_v4(am_alert("HighLatency", fingerprint="g1", service="api"))
    body.update({"version": "1", "orgId": 1, "title": "[FIRING:1]", "state": "alerting"})
    body["alerts"][0].update({"values": {"B": 1.5}, "silenceURL": "http://g/silence"})
    raw = json.dumps(body).encode()

    def sign(ts: str) -> str:
        return hmac.new(secret.encode(), ts.encode() + b":" + raw, hashlib.sha256).hexdigest()

    now = str(int(time.time()))
    fresh = await send(
        stack,
        "grafana",
        body,
        **{"X-Grafana-Alerting-Signature": sign(now), "X-Grafana-Alerting-Timestamp": now},
    )
    assert fresh.status_code == 202, fresh.text
    old = str(int(time.time()) - 3600)
    stale = await send(
        stack,
        "grafana",
        body,
        **{"X-Grafana-Alerting-Signature": sign(old), "X-Grafana-Alerting-Timestamp": old},
    )
    assert stale.status_code == 401
    assert "stale or replayed" in stale.json()["detail"]


async def test_opsgenie_create_and_close(stack: Stack) -> None:
    await add(stack, CERT_RUNBOOK, "edge/cert.md")
    body = {
        "action": "Create",
        "alert": {
            "alertId": "a1b2-c3d4",
            "message": "TLS certificate for shop.example.com expires in 3 days",
            "tags": ["service:edge", "env:prod"],
            "tinyId": "42",
            "alias": "cert-shop",
            "entity": "lb-1",
            "priority": "P2",
        },
        "source": {"name": "", "type": "api"},
        "integrationName": "dd0c",
    }
    created = await send(stack, "opsgenie", body)
    assert created.status_code == 202
    [outcome] = created.json()["alerts"]
    assert outcome["dedup_key"] == "cert-shop"
    incident = await stack.http.get(
        f"/incidents/{outcome['incident_id']}", headers=stack.api_headers()
    )
    assert (incident.json()["service"], incident.json()["severity"]) == ("edge", "P2")
    closed = await send(stack, "opsgenie", {**body, "action": "Close"})
    assert closed.json()["alerts"][0]["status"] == "resolved"
    note = await send(stack, "opsgenie", {**body, "action": "AddNote"})
    assert note.json() == {"alerts": []}


async def test_alerts_of_one_service_join_the_open_incident(stack: Stack, engine: Engine) -> None:
    await add(stack, (FIXTURES / "crashloop.md").read_text(), "k8s/crashloop.md")
    first = alertmanager_v4(
        am_alert("KubePodCrashLooping", fingerprint="c1", service="checkout", pod="a")
    )
    second = alertmanager_v4(am_alert("HighErrorRate", fingerprint="c2", service="checkout"))
    other = alertmanager_v4(am_alert("HighErrorRate", fingerprint="c3", service="search"))
    [a] = (await send(stack, "alertmanager", first)).json()["alerts"]
    [b] = (await send(stack, "alertmanager", second)).json()["alerts"]
    [c] = (await send(stack, "alertmanager", other)).json()["alerts"]
    assert a["status"] == "started"
    assert b == {**a, "dedup_key": "c2", "status": "joined"}
    assert c["incident_id"] != a["incident_id"]
    incident = (
        await stack.http.get(f"/incidents/{a['incident_id']}", headers=stack.api_headers())
    ).json()
    assert [k["dedup_key"] for k in incident["keys"]] == ["c1", "c2"]
    assert incident["alert_count"] == 2

    # The incident resolves when its last alert does.
    r1 = alertmanager_v4(
        am_alert("KubePodCrashLooping", fingerprint="c1", service="checkout", status="resolved"),
        status="resolved",
    )
    await send(stack, "alertmanager", r1)
    assert count(engine, f"SELECT count(*) FROM incidents WHERE id = '{a['incident_id']}'"
                 " AND status = 'open'") == 1  # fmt: skip
    r2 = alertmanager_v4(
        am_alert("HighErrorRate", fingerprint="c2", service="checkout", status="resolved"),
        status="resolved",
    )
    await send(stack, "alertmanager", r2)
    assert count(engine, f"SELECT count(*) FROM incidents WHERE id = '{a['incident_id']}'"
                 " AND status = 'resolved'") == 1  # fmt: skip


async def test_oversized_group_is_refused_whole(stack: Stack, engine: Engine) -> None:
    alerts = [am_alert("Flood", fingerprint=f"{i:016x}") for i in range(1001)]
    response = await send(stack, "alertmanager", alertmanager_v4(*alerts))
    assert response.status_code == 413
    assert "max_alerts" in response.json()["detail"]
    assert count(engine, "SELECT count(*) FROM alerts") == 0


async def test_token_in_query_and_unknown_source(stack: Stack) -> None:
    body = {"title": "Queue depth high"}
    response = await stack.http.post(
        f"/webhooks/generic?token={stack.credentials.webhook_token}", json=body
    )
    assert response.status_code == 202
    unknown = await send(stack, "nagios", body)
    assert unknown.status_code == 404
    # An unknown field (a misspelt one, say) costs no page: it is kept in raw and counted.
    extra = await send(stack, "generic", {"title": "x", "sevrity": "critical"})
    assert extra.status_code == 202
    assert [a["status"] for a in extra.json()["alerts"]] == ["unmatched"]
    # A status word no source defines is read as firing, never refused.
    odd = alertmanager_v4(am_alert("Exploded", fingerprint="odd-1", status="exploded"))
    odd_response = await send(stack, "alertmanager", odd)
    assert odd_response.status_code == 202
    assert [a["status"] for a in odd_response.json()["alerts"]] == ["unmatched"]


SLOW_RUNBOOK = """---
title: Slow check
alerts: [SlowCheck]
---
# Slow check

1. Wait for the metrics to settle: `sleep 3`
"""


async def test_resolved_alert_signals_the_running_execution(stack: Stack) -> None:
    await add(stack, SLOW_RUNBOOK, "slow.md")
    firing = alertmanager_v4(am_alert("SlowCheck", fingerprint="r1"))
    [outcome] = (await send(stack, "alertmanager", firing)).json()["alerts"]
    assert outcome["status"] == "started"
    handle = stack.client.get_workflow_handle(outcome["execution_id"])
    resolved = alertmanager_v4(
        am_alert("SlowCheck", fingerprint="r1", status="resolved"), status="resolved"
    )
    closing = await send(stack, "alertmanager", resolved)
    assert closing.json()["alerts"] == [{**outcome, "status": "resolved"}]

    async def signalled() -> bool:
        history = await handle.fetch_history()
        return any(
            e.workflow_execution_signaled_event_attributes.signal_name == "alert_resolved"
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
        )

    assert await eventually(signalled)
    execution = f"/executions/{outcome['execution_id']}"

    async def resolved_and_waiting() -> dict[str, Any] | None:
        body: dict[str, Any] = (await stack.http.get(execution, headers=stack.api_headers())).json()
        return body if body.get("alert_resolved") and body["current_step"] == "s1" else None

    # The step ("wait for the metrics") is the human's: resolution stops paging, never acts.
    waiting = await eventually(resolved_and_waiting)
    assert waiting["steps"][0]["awaiting"]["allowed"] == ["done", "skip"]
    done = await stack.http.post(
        f"{execution}/decisions",
        json={"step_id": "s1", "decision": "done"},
        headers=stack.api_headers(),
    )
    assert done.status_code == 202
    await handle.result()


async def test_a_start_lost_to_a_temporal_outage_is_finished_by_the_retry(
    stack: Stack, settings: Settings
) -> None:
    await add(stack, (FIXTURES / "crashloop.md").read_text(), "k8s/crashloop.md")
    body = alertmanager_v4(
        am_alert("KubePodCrashLooping", fingerprint="lost1", pod="p", namespace="n")
    )
    down = settings.replace(temporal=TemporalSettings(address=f"127.0.0.1:{free_port()}"))
    async with serve_api(down) as url, httpx.AsyncClient(base_url=url, timeout=120) as http:
        first = await http.post(
            "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
        )
    # 503 makes Alertmanager retry; the incident and its execution are already stored.
    assert first.status_code == 503
    assert first.headers["retry-after"] == "5"
    assert "a retried delivery finishes it" in first.json()["detail"]

    retry = await send(stack, "alertmanager", body)
    [outcome] = retry.json()["alerts"]
    assert outcome["status"] == "duplicate"

    async def ran() -> bool:
        response = await stack.http.get(
            f"/executions/{outcome['execution_id']}", headers=stack.api_headers()
        )
        # Its read-only steps ran; the restart waits for a human.
        return bool(response.json()["status"] == "awaiting_human")

    assert await eventually(ran, within=30)
    executions = await stack.client.count_workflows(f'TenantId = "{stack.settings.tenant}"')
    assert executions.count == 1


# The key's lock is taken before the service's: deliveries of one key naming different
# services still queue on the key, so the first opens the incident and the rest repeat it.
async def test_one_key_raced_with_different_services_opens_one_incident(
    stack: Stack, engine: Engine
) -> None:
    bodies = [
        {"title": "Queue depth high", "dedup_key": "race-1", "service": f"svc-{i}"}
        for i in range(8)
    ]
    responses = await asyncio.gather(*(send(stack, "generic", b) for b in bodies))
    assert [r.status_code for r in responses] == [202] * 8
    statuses = sorted(r.json()["alerts"][0]["status"] for r in responses)
    assert statuses.count("duplicate") == 7
    assert count(engine, "SELECT count(*) FROM incidents") == 1
    assert count(engine, "SELECT alert_count FROM incidents") == 8


async def test_a_large_group_starts_every_execution(stack: Stack, engine: Engine) -> None:
    await add(stack, (FIXTURES / "crashloop.md").read_text(), "k8s/crashloop.md")
    # The default blast-radius limits would hold most of them (docs/LIMITS.md, and
    # tests/test_blast_radius.py): here every start is the point, so they are lifted.
    lifted = await stack.http.patch(
        "/settings",
        json={
            "blast_radius": {
                "max_concurrent_per_runbook": 1000,
                "max_concurrent_per_service": 1000,
                "max_runs_per_hour": {"copilot": 1000},
            }
        },
        headers=stack.api_headers(),
    )
    assert lifted.status_code == 200
    group = alertmanager_v4(
        *(
            am_alert("KubePodCrashLooping", fingerprint=f"grp{i:04d}", pod=f"p{i}")
            for i in range(60)
        )
    )
    response = await send(stack, "alertmanager", group)
    assert response.status_code == 202
    outcomes = response.json()["alerts"]
    assert [o["dedup_key"] for o in outcomes] == [f"grp{i:04d}" for i in range(60)]
    assert {o["status"] for o in outcomes} == {"started"}

    async def all_started() -> bool:
        found = await stack.client.count_workflows(f'TenantId = "{stack.settings.tenant}"')
        return found.count == 60

    assert await eventually(all_started, within=60)
    assert count(engine, "SELECT count(*) FROM executions") == 60
