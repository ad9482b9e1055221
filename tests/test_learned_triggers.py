"""Learning from picks: a responder's pick becomes a learned trigger for the alert's fingerprint,
recurrences of that alert (new ids, other numbers, hosts, pods) are attached to the picked
runbook, near-twins and unrelated alerts are not; replacing, forgetting (API, CLI, abort as
"wrong runbook"), archived runbooks, tenants, audit. The real stack: API over HTTP, Temporal,
PostgreSQL; the masking rules also on their own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.alerts import fingerprints, learned
from ddoc.contracts.settings import Settings
from ddoc.platform import tenancy
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.parsing import parse_runbook
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually
from tests.test_cli import ddoc
from tests.test_webhooks import pagerduty_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Text similarity never attaches and recurrences never join the first incident: what
    # attaches below is the learned trigger alone.
    return settings.replace(match_attach=1.5, correlation_window_seconds=0)


# -- the masking rules on their own ----------------------------------------------------------

SAME = [
    ("Disk usage at 93% on web-03", "Disk usage at 71.5% on db-11"),
    (
        "Pod payments/api-7d9f8b6c4-x2x9z is crash looping (restarts: 12)",
        "Pod payments/api-5c8d7f9b6-k8s2p is crash looping (restarts: 3)",
    ),
    ("fluentd-x2x9z OOMKilled, limit 512Mi", "fluentd-7k2pd OOMKilled, limit 1Gi"),
    ("High latency 1.5s on 10.0.3.17:8080", "High latency 250ms on [2001:db8::1]:9090"),
    (
        "Node ip-10-0-3-17.ec2.internal NotReady since 2026-12-03T10:00:00Z",
        "Node ip-10-0-9-201.ec2.internal NotReady since 2026-12-04T11:22:33.123+01:00",
    ),
    ('Job "nightly-backup-28391" failed after 1h30m', 'Job "nightly-backup-4" failed after 5m'),
    ("Certificate for shop.example.com expires in 5 days", "Certificate for api.acme.io expires"
     " in 12 days"),
    (
        "Request 6ba7b810-9dad-11d1-80b4-00c04fd430c8 failed at commit 8f3e2a1c",
        "Request 9c4f1e2a-1b2c-4d3e-8f90-0a1b2c3d4e5f failed at commit 12345678",
    ),
    ("PagerDuty incident Q2EVHXB3BDVK4X", "PagerDuty incident PT4KHLK"),
    ("Lag on db1 is 35 seconds at Mon, 03 Dec 2026 10:00:00 GMT", "Lag on db7 is 4 seconds at "
     "Tue, 04 Dec 2026 11:30:00 GMT"),
    ("Instance i-0abc123def4567890 in us-east-1a stopped",
     "Instance i-0fe98 in eu-west-2b stopped"),
    ("Queue depth 12,345 (threshold 10k) for ana@example.com", "Queue depth 7 (threshold 10k) for"
     " bo@example.org"),
    ("Errors on 10.0.0.1, 10.0.0.2 and 10.0.0.3", "Errors on 10.1.1.1"),
]  # fmt: skip
DIFFERENT = [
    (
        "Deployment checkout has 2 unavailable replicas",
        "Deployment checkout has 2 unavailable pods",
    ),
    ("Disk read latency high on web-03", "Disk write latency high on web-03"),
    ("IPv4 address pool exhausted", "IPv6 address pool exhausted"),
    ("5xx rate above 5% for checkout", "4xx rate above 5% for checkout"),
    ("Inbound traffic dropped 40% on lb-1", "Outbound traffic dropped 40% on lb-1"),
]


@pytest.mark.parametrize(("first", "again"), SAME)
def test_recurrences_mask_to_the_same_title(first: str, again: str) -> None:
    assert fingerprints.mask(first) == fingerprints.mask(again), fingerprints.mask(first)


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_a_meaningful_word_keeps_titles_apart(one: str, other: str) -> None:
    assert fingerprints.mask(one) != fingerprints.mask(other)


def test_source_alert_name_and_service_are_parts() -> None:
    def digest(**changes: str | None) -> str:
        parts: dict[str, Any] = {
            "source": "alertmanager",
            "alert_name": "KubePodCrashLooping",
            "service": "checkout",
            "title": "Pod crash looping",
            **changes,
        }
        return fingerprints.build(**parts).digest

    base = digest()
    assert digest(title="Pod  crash looping.") == base
    assert digest(service="checkout-7d9f8b6c4-x2x9z") != base
    assert digest(service="payments") != base
    assert digest(source="pagerduty") != base
    assert digest(alert_name="KubePodNotReady") != base
    # An instance in the service (OpsGenie's entity is often the host) is masked like a title's.
    assert digest(service="web-03") == digest(service="web-11")


def test_a_title_of_values_alone_is_not_specific_enough_to_learn() -> None:
    def specific(title: str, **parts: str) -> bool:
        fields: dict[str, Any] = {"source": "generic", "alert_name": None, "service": None}
        return fingerprints.build(**{**fields, **parts}, title=title).specific

    assert not specific("10.0.3.17")
    assert not specific("web-03: 93% at 2026-12-03T10:00:00Z")
    assert specific("web-03 down")
    assert specific("10.0.3.17", service="edge")
    assert specific("10.0.3.17", alert_name="TargetDown")


def test_a_huge_title_is_bounded() -> None:
    title = "Disk full on web-03 " + "x" * 100_000
    fingerprint = fingerprints.build(source="generic", alert_name=None, service=None, title=title)
    assert len(fingerprint.title) == fingerprints.MAX_PATTERN
    assert fingerprint.title.startswith("disk full on <*> x")
    again = fingerprints.build(
        source="generic", alert_name=None, service=None, title=title.replace("web-03", "web-7")
    )
    assert again.digest == fingerprint.digest


# -- the stack -------------------------------------------------------------------------------


async def add_runbook(stack: Stack, title: str, path: str) -> str:
    content = f"# {title}\n\nWhat to do when {title.lower()}.\n\n1. Look at the dashboard.\n"
    response = await stack.http.post(
        "/runbooks", json={"content": content, "source_path": path}, headers=stack.api_headers()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def deliver(stack: Stack, source: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.http.post(
        f"/webhooks/{source}",
        content=json.dumps(body).encode(),
        headers={**stack.webhook_headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    [outcome] = response.json()["alerts"]
    return dict(outcome)


async def incident(stack: Stack, incident_id: str) -> dict[str, Any]:
    response = await stack.http.get(f"/incidents/{incident_id}", headers=stack.api_headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def pick(stack: Stack, incident_id: str, runbook_id: str) -> dict[str, Any]:
    response = await stack.http.post(
        f"/incidents/{incident_id}/runbook",
        json={"runbook_id": runbook_id},
        headers=stack.api_headers(),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def attached_by_learning(stack: Stack, outcome: dict[str, Any]) -> str | None:
    """The runbook a learned trigger attached to the outcome's incident, else None."""
    if outcome["status"] != "started":
        return None
    match = (await incident(stack, outcome["incident_id"]))["match"]
    attached = match["attached"]
    if not attached or not attached.get("learned_trigger_id"):
        return None
    assert attached["reasons"][0].startswith("picked by bootstrap admin for inc_")
    return str(attached["runbook_id"])


def am(name: str, summary: str, **labels: str) -> dict[str, Any]:
    return alertmanager_v4(am_alert(name, fingerprint=uuid.uuid4().hex, summary=summary, **labels))


def grafana(name: str, summary: str, **labels: str) -> dict[str, Any]:
    return {**am(name, summary, **labels), "version": "1"}


def pd(title: str, service: str) -> dict[str, Any]:
    return pagerduty_body("incident.triggered", title=title, key=uuid.uuid4().hex, service=service)


def og(message: str, entity: str | None = None, **details: str) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "alertId": uuid.uuid4().hex,
        "alias": uuid.uuid4().hex,
        "message": message,
        "details": details,
    }
    if entity:
        alert["entity"] = entity
    return {"action": "Create", "alert": alert}


def generic(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, **fields}


@dataclass
class Family:
    name: str
    source: str
    first: Callable[[], dict[str, Any]]
    again: Callable[[], dict[str, Any]]


FAMILIES = [
    Family(
        "crashloop", "alertmanager",
        lambda: am("KubePodCrashLooping", "Pod payments/api-7d9f8b6c4-x2x9z is crash looping "
                   "(5 restarts in 10m)", service="payments", namespace="payments"),
        lambda: am("KubePodCrashLooping", "Pod payments/api-5c8d7f9b6-k8s2p is crash looping "
                   "(12 restarts in 10m)", service="payments", namespace="payments"),
    ),
    Family(
        "filesystem", "alertmanager",
        lambda: am("NodeFilesystemAlmostFull", "Filesystem /var on ip-10-0-3-17.ec2.internal "
                   "has 7.5% space left", instance="10.0.3.17:9100"),
        lambda: am("NodeFilesystemAlmostFull", "Filesystem /var on ip-10-0-9-201.ec2.internal "
                   "has 3% space left", instance="10.0.9.201:9100"),
    ),
    Family(
        "latency", "alertmanager",
        lambda: am("HighRequestLatency", "p99 latency 1.5s on 10.0.3.17:8080", service="checkout"),
        lambda: am("HighRequestLatency", "p99 latency 2.25s on 10.0.7.4:8081", service="checkout"),
    ),
    Family(
        "disk-io", "grafana",
        lambda: grafana("DiskIOSaturation", "Disk IO at 93% on web-03"),
        lambda: grafana("DiskIOSaturation", "Disk IO at 97.2% on web-11"),
    ),
    Family(
        "lb-errors", "pagerduty",
        lambda: pd("[FIRING:1] Elevated 502 errors on lb-7 (region us-east-1)", "edge"),
        lambda: pd("[FIRING:3] Elevated 504 errors on lb-2 (region us-west-2)", "edge"),
    ),
    Family(
        "replication", "pagerduty",
        lambda: pd("Replication lag 35s on db-01.prod.example.com", "postgres"),
        lambda: pd("Replication lag 4.2s on db-07.prod.example.com", "postgres"),
    ),
    Family(
        "certificate", "pagerduty",
        lambda: pd("Certificate for shop.example.com expires in 5 days", "edge"),
        lambda: pd("Certificate for api.example.com expires in 12 days", "edge"),
    ),
    Family(
        "unavailable-replicas", "pagerduty",
        lambda: pd("Deployment orders/checkout has 2 unavailable replicas", "orders"),
        lambda: pd("Deployment orders/checkout has 4 unavailable replicas", "orders"),
    ),
    Family(
        "kafka-lag", "opsgenie",
        lambda: og("Kafka consumer group orders-consumer lag 12,345 messages", service="kafka"),
        lambda: og("Kafka consumer group orders-consumer lag 987 messages", service="kafka"),
    ),
    Family(
        "backup", "opsgenie",
        lambda: og("Job nightly-backup-28391 failed after 1h30m on 2026-12-03"),
        lambda: og("Job nightly-backup-28422 failed after 45m on 2026-12-04"),
    ),
    Family(
        "memory", "opsgenie",
        lambda: og("Memory usage 91% (7.2GiB of 8GiB)", entity="web-03"),
        lambda: og("Memory usage 96.5% (7.7GiB of 8GiB)", entity="web-09"),
    ),
    Family(
        "redis", "generic",
        lambda: generic("Redis memory fragmentation ratio 1.8 on cache-2", service="redis"),
        lambda: generic("Redis memory fragmentation ratio 2.4 on cache-5", service="redis"),
    ),
    Family(
        "payments-5xx", "generic",
        lambda: generic("Request 6ba7b810-9dad-11d1-80b4-00c04fd430c8 to payments failed with "
                        "503 at 2026-12-03T10:00:00Z"),
        lambda: generic("Request 9c4f1e2a-1b2c-4d3e-8f90-0a1b2c3d4e5f to payments failed with "
                        "502 at 2026-12-05T23:59:59Z"),
    ),
    Family(
        "invoices-backlog", "generic",
        lambda: generic("Queue invoices has 12000 messages", service="billing",
                        labels={"alertname": "QueueBacklog"}),
        lambda: generic("Queue invoices has 845 messages", service="billing",
                        labels={"alertname": "QueueBacklog"}),
    ),
]  # fmt: skip

# Alerts that look like a picked one but are not it: they must not be captured.
NEAR_TWINS = [
    ("pagerduty", pd("Deployment orders/checkout has 2 unavailable pods", "orders")),
    ("pagerduty", pd("Certificate for shop.example.com renewal failed", "edge")),
    ("alertmanager", am("KubePodCrashLooping", "Pod payments/api-7d9f8b6c4-x2x9z is crash "
                        "looping (5 restarts in 10m)", service="checkout")),
    ("alertmanager", am("KubePodNotReady", "Pod payments/api-7d9f8b6c4-x2x9z is crash looping "
                        "(5 restarts in 10m)", service="payments")),
    ("grafana", grafana("DiskIOSaturation", "Disk IO wait at 93% on web-03")),
    ("opsgenie", og("Swap usage 91% (7.2GiB of 8GiB)", entity="web-03")),
    ("generic", generic("Queue invoices has 12000 messages", service="orders",
                        labels={"alertname": "QueueBacklog"})),
]  # fmt: skip
UNRELATED = [
    ("generic", generic("Kafka broker kafka-2 has 14 under-replicated partitions")),
    ("pagerduty", pd("Login success rate below 80% for 10 minutes", "auth")),
    ("opsgenie", og("Nightly report generation took 3h")),
]


async def test_recurrences_attach_to_the_picked_runbook_and_nothing_else_is_captured(
    stack: Stack,
) -> None:
    runbooks = {
        f.name: await add_runbook(stack, f"Runbook for {f.name}", f"{f.name}.md") for f in FAMILIES
    }
    await add_runbook(stack, "Kafka broker under-replicated partitions", "kafka-broker.md")

    for family in FAMILIES:  # first delivery: no runbook attached; a responder picks one
        outcome = await deliver(stack, family.source, family.first())
        assert outcome["status"] in ("suggested", "unmatched"), (family.name, outcome)
        await pick(stack, outcome["incident_id"], runbooks[family.name])

    missed = []
    for family in FAMILIES:  # the same alerts recurring: other ids, numbers, hosts, pods
        outcome = await deliver(stack, family.source, family.again())
        if await attached_by_learning(stack, outcome) != runbooks[family.name]:
            missed.append((family.name, outcome))
    assert not missed

    captured = []
    for source, body in [*NEAR_TWINS, *UNRELATED]:
        outcome = await deliver(stack, source, body)
        if await attached_by_learning(stack, outcome) is not None:
            captured.append((source, body, outcome))
    assert not captured


async def test_match_names_the_learned_trigger(stack: Stack) -> None:
    runbook = await add_runbook(stack, "Certificate renewal", "cert.md")
    first = await deliver(stack, "generic", generic("Certificate for shop.example.com expires"))
    await pick(stack, first["incident_id"], runbook)
    shown = await stack.http.get(f"/runbooks/{runbook}", headers=stack.api_headers())
    [trigger] = shown.json()["learned_triggers"]
    assert trigger["fingerprint"] == ("generic · alert - · service - · certificate for <*> expires")
    assert trigger["created_by"].startswith("api_key:")
    assert trigger["created_by_name"] == "bootstrap admin"
    assert trigger["incident_id"] == first["incident_id"]

    # A title of values alone is not learned: it would capture every alert like it.
    vague = await deliver(stack, "generic", generic("10.0.3.17"))
    await pick(stack, vague["incident_id"], runbook)
    shown = await stack.http.get(f"/runbooks/{runbook}", headers=stack.api_headers())
    assert [t["id"] for t in shown.json()["learned_triggers"]] == [trigger["id"]]
    assert (await incident(stack, vague["incident_id"]))["fingerprint"]["title"] == "<*>"

    matched = await stack.http.post(
        "/match/generic",
        json=generic("Certificate for api.example.org expires"),
        headers=stack.api_headers(),
    )
    [result] = matched.json()["alerts"]
    assert result["attached"]["runbook_id"] == runbook
    reason = result["candidates"][0]["reasons"][0]
    day = trigger["created_at"][:10]
    assert reason == (
        f"picked by bootstrap admin for {first['incident_id']} on {day}"
        f" (learned trigger {trigger['id']})"
    )
    assert result["candidates"][0]["method"] == "explicit"


async def test_a_later_pick_replaces_and_forgetting_removes(stack: Stack, engine: Engine) -> None:
    restart = await add_runbook(stack, "Restart the consumers", "restart.md")
    scale = await add_runbook(stack, "Scale the consumers", "scale.md")
    body = {"title": "Consumer lag 120s on orders", "service": "orders"}
    one = await deliver(stack, "generic", {**body, "dedup_key": "k1"})
    two = await deliver(stack, "generic", {**body, "title": "Consumer lag 95s on orders"})
    assert one["status"] != "started" and two["status"] != "started"

    await pick(stack, one["incident_id"], restart)
    await pick(stack, two["incident_id"], scale)  # same fingerprint: replaces the first

    async def triggers(runbook_id: str) -> list[dict[str, Any]]:
        response = await stack.http.get(f"/runbooks/{runbook_id}", headers=stack.api_headers())
        return list(response.json()["learned_triggers"])

    assert await triggers(restart) == []
    [trigger] = await triggers(scale)
    again = await deliver(stack, "generic", {**body, "title": "Consumer lag 300s on orders"})
    assert await attached_by_learning(stack, again) == scale

    url = f"/runbooks/{scale}/learned-triggers/{trigger['id']}"
    assert (await stack.http.delete(url, headers=stack.api_headers())).status_code == 204
    assert (await stack.http.delete(url, headers=stack.api_headers())).status_code == 404
    wrong = f"/runbooks/{restart}/learned-triggers/{trigger['id']}"
    assert (await stack.http.delete(wrong, headers=stack.api_headers())).status_code == 404
    assert await triggers(scale) == []
    after = await deliver(stack, "generic", {**body, "title": "Consumer lag 42s on orders"})
    assert await attached_by_learning(stack, after) is None

    with engine.connect() as conn:
        actions = conn.execute(
            text(
                "SELECT action, data FROM audit_events WHERE tenant_id = :t"
                " AND action LIKE 'learned_trigger.%' ORDER BY seq"
            ),
            {"t": stack.settings.tenant},
        ).all()
    assert [a.action for a in actions] == [
        "learned_trigger.created",
        "learned_trigger.replaced",
        "learned_trigger.removed",
    ]
    assert actions[1].data["replaced"]["runbook_id"] == restart
    assert actions[2].data["reason"] == "removed by a responder"


async def test_aborting_as_wrong_runbook_forgets_and_a_new_pick_is_learned(
    stack: Stack, engine: Engine
) -> None:
    wrong = await add_runbook(stack, "Restart the web tier", "web.md")
    right = await add_runbook(stack, "Rotate the TLS certificate", "tls.md")
    body = {"title": "TLS handshake failures on web-03", "service": "web"}
    first = await deliver(stack, "generic", body)
    await pick(stack, first["incident_id"], wrong)  # a slip: the wrong runbook is learned

    second = await deliver(stack, "generic", {**body, "title": "TLS handshake failures on web-8"})
    assert await attached_by_learning(stack, second) == wrong
    execution_id = second["execution_id"]
    await eventually(lambda: _status_is(stack, execution_id, "awaiting_human"))
    aborted = await stack.http.post(
        f"/executions/{execution_id}/abort",
        json={"wrong_runbook": True, "comment": "not this one"},
        headers=stack.api_headers(),
    )
    assert aborted.status_code == 202, aborted.text
    removed = aborted.json()["learned_trigger_removed"]
    assert removed and removed.startswith("lt_")
    shown = await stack.http.get(f"/runbooks/{wrong}", headers=stack.api_headers())
    assert shown.json()["learned_triggers"] == []

    with engine.connect() as conn:
        recorded = conn.execute(
            text(
                "SELECT subject, data FROM audit_events WHERE tenant_id = :t"
                " AND action = 'incident.wrong_runbook'"
            ),
            {"t": stack.settings.tenant},
        ).one()
    assert recorded.subject == second["incident_id"]
    assert recorded.data == {
        "execution_id": execution_id,
        "runbook_id": wrong,
        "learned_trigger_removed": removed,
    }

    # The wrong runbook is detached from the incident: the responder picks the right one at once.
    detached = await incident(stack, second["incident_id"])
    assert (detached["runbook_id"], detached["execution_id"]) == (None, None)
    picked = await pick(stack, second["incident_id"], right)
    assert picked["id"] != execution_id
    third = await deliver(stack, "generic", {**body, "title": "TLS handshake failures on web-1"})
    assert await attached_by_learning(stack, third) == right
    busy = await stack.http.post(
        f"/incidents/{second['incident_id']}/runbook",
        json={"runbook_id": wrong},
        headers=stack.api_headers(),
    )
    assert busy.status_code == 409  # the right one runs now


async def _status_is(stack: Stack, execution_id: str, status: str) -> bool:
    response = await stack.http.get(f"/executions/{execution_id}", headers=stack.api_headers())
    return bool(response.json()["status"] == status)


async def test_archived_runbook_stops_matching_and_other_tenants_are_404(
    stack: Stack, engine: Engine
) -> None:
    runbook = await add_runbook(stack, "Flush the CDN cache", "cdn.md")
    first = await deliver(stack, "generic", generic("Stale content served by cdn-4"))
    await pick(stack, first["incident_id"], runbook)
    archived = await stack.http.post(f"/runbooks/{runbook}/archive", headers=stack.api_headers())
    assert archived.status_code == 200
    again = await deliver(stack, "generic", generic("Stale content served by cdn-9"))
    assert await attached_by_learning(stack, again) is None

    other, key = f"{stack.settings.tenant}x", f"ddoc_test_x_{uuid.uuid4().hex}"
    tenancy.bootstrap(engine, tenant_id=other, api_key=key, webhook_token=None)
    theirs = await stack.http.post(
        "/runbooks",
        json={"content": "# Theirs\n\n1. Look.\n", "source_path": "theirs.md"},
        headers={"Authorization": f"Bearer {key}"},
    )
    foreign = await stack.http.post(
        f"/incidents/{again['incident_id']}/runbook",
        json={"runbook_id": theirs.json()["id"]},
        headers=stack.api_headers(),
    )
    assert foreign.status_code == 404
    [trigger] = (await stack.http.get(f"/runbooks/{runbook}", headers=stack.api_headers())).json()[
        "learned_triggers"
    ]
    not_theirs = await stack.http.delete(
        f"/runbooks/{runbook}/learned-triggers/{trigger['id']}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert not_theirs.status_code == 404


async def test_a_100_kb_title_is_learned_bounded(stack: Stack) -> None:
    runbook = await add_runbook(stack, "Huge alert", "huge.md")
    tail = " ".join(f"field{n}=value" for n in range(12_000))  # ~150 KB
    first = await deliver(stack, "pagerduty", pd(f"Dump from web-03: {tail}", "dump"))
    await pick(stack, first["incident_id"], runbook)
    [trigger] = (await stack.http.get(f"/runbooks/{runbook}", headers=stack.api_headers())).json()[
        "learned_triggers"
    ]
    assert len(trigger["title_pattern"]) <= fingerprints.MAX_SHOWN
    assert len(trigger["fingerprint"]) < 400
    again = await deliver(stack, "pagerduty", pd(f"Dump from web-12: {tail}", "dump"))
    assert await attached_by_learning(stack, again) == runbook


def test_the_reason_names_who_picked_and_when(engine: Engine) -> None:
    with Session(engine) as session:
        tenancy.ensure_tenant(session, tenant_id="acme")
        content = "# Disk\n\n1. Look.\n"
        saved = runbooks.save(
            session,
            tenant_id="acme",
            content=content,
            fmt="markdown",
            parsed=parse_runbook(content, "markdown"),
            source_path="disk.md",
            actor="test",
        )
        fingerprint = fingerprints.build(
            source="slack-test", alert_name=None, service=None, title="Disk full on web-03"
        )
        learned.record(
            session,
            tenant_id="acme",
            fingerprint=fingerprint,
            runbook_id=saved.runbook.id,
            incident_id=None,
            actor="user:usr_ana",
            actor_name="Ana",
        )
        hit = learned.lookup(session, tenant_id="acme", fingerprint=fingerprint)
        assert hit is not None and hit.runbook_id == saved.runbook.id
        assert hit.reason.startswith(f"picked by Ana on {hit.created_at:%Y-%m-%d}")
        assert learned.lookup(session, tenant_id="other", fingerprint=fingerprint) is None


async def test_cli_pick_show_forget_and_abort_wrong_runbook(stack: Stack) -> None:
    runbook = await add_runbook(stack, "Drain the node", "drain.md")
    first = await deliver(stack, "generic", generic("Node node-7 kernel deadlock"))
    code, out, err = await ddoc(stack, "incident", "pick", first["incident_id"], runbook)
    assert code == 0, err
    code, out, err = await ddoc(stack, "runbook", "show", runbook)
    assert code == 0, err
    [line] = [x for x in out.splitlines() if x.startswith("learned ")]
    assert "generic · alert - · service - · node <*> kernel deadlock" in line
    assert f"picked by bootstrap admin for {first['incident_id']}" in line
    trigger_id = line.split()[1].rstrip(":")
    code, out, err = await ddoc(stack, "incident", "list", "--match-status", "unmatched")
    assert code == 0 and first["incident_id"] in out

    second = await deliver(stack, "generic", generic("Node node-12 kernel deadlock"))
    assert await attached_by_learning(stack, second) == runbook
    await eventually(lambda: _status_is(stack, second["execution_id"], "awaiting_human"))
    code, out, err = await ddoc(stack, "exec", "abort", second["execution_id"], "--wrong-runbook")
    assert code == 0, err
    assert f"forgot learned trigger {trigger_id}" in out

    third = await deliver(stack, "generic", generic("Node node-3 kernel deadlock"))
    code, out, err = await ddoc(stack, "incident", "pick", third["incident_id"], runbook)
    assert code == 0, err
    code, out, err = await ddoc(stack, "runbook", "show", runbook)
    [line] = [x for x in out.splitlines() if x.startswith("learned ")]
    new_id = line.split()[1].rstrip(":")
    code, out, err = await ddoc(stack, "runbook", "forget", runbook, new_id)
    assert code == 0, err
    code, out, err = await ddoc(stack, "runbook", "forget", runbook, new_id)
    assert code == 1 and "404" in err
