"""Tolerant webhook models: bodies shaped like the ones the sources really send (written after
their documentation and other projects' fixtures: tests/fixtures/webhooks/<source>/) are all
accepted, by the normalisers and by the real API on `/match/<source>` and `/webhooks/<source>`;
what had to be coerced is named and counted (`ddoc_webhook_coerced_total{source,field}`); only a
body that cannot be an alert at all is refused, with a message saying why."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ddoc.alerts import sources as alerts
from ddoc.alerts.sources import NormalizedAlert
from tests.conftest import Stack
from tests.test_metrics import scrape, value

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"

NORMALISERS: dict[str, tuple[type[BaseModel], Callable[[Any], list[NormalizedAlert]]]] = {
    "alertmanager": (alerts.AlertmanagerWebhook, alerts.normalize_alertmanager),
    "grafana": (alerts.GrafanaWebhook, alerts.normalize_grafana),
    "pagerduty": (alerts.PagerDutyWebhook, alerts.normalize_pagerduty),
    "opsgenie": (alerts.OpsgenieWebhook, alerts.normalize_opsgenie),
    "generic": (alerts.GenericAlert, alerts.normalize_generic),
}

# Each body's alerts, as their statuses in order ([] for deliveries that are news about an
# alert rather than an alert: acknowledged, annotated, a ping, …).
F, R = "firing", "resolved"
EXPECTED: dict[str, list[str]] = {
    "alertmanager/bare_alerts_list.json": [F],
    "alertmanager/group_status_only.json": [F, F],
    "alertmanager/kube_prometheus_v4.json": [F, R],
    "alertmanager/nanosecond_times_unknown_fields.json": [F],
    "alertmanager/numbers_and_nulls.json": [F],
    "alertmanager/regex_groupkey_duplicate_labels.json": [F, F, F],
    "alertmanager/resolved_inherited.json": [R],
    "alertmanager/resolved_zero_endsat.json": [R],
    "alertmanager/v3_numeric_groupkey.json": [F],
    "grafana/contact_point_test.json": [F],
    "grafana/legacy_dashboard_alert.json": [F],
    "grafana/mixed_status_group.json": [F, R],
    "grafana/oncall_outgoing_resolve.json": [R],
    "grafana/state_ok_no_status.json": [R],
    "grafana/unified_two_alerts.json": [F, F],
    "grafana/values_null_value_string.json": [F],
    "pagerduty/pagey_ping.json": [],
    "pagerduty/v2_messages_trigger.json": [F],
    "pagerduty/v3_annotated.json": [],
    "pagerduty/v3_no_incident_key_priority_null.json": [F],
    "pagerduty/v3_priority_updated.json": [],
    "pagerduty/v3_reopened_no_key.json": [F],
    "pagerduty/v3_resolved_service_null.json": [R],
    "pagerduty/v3_triggered.json": [F],
    "opsgenie/acknowledge.json": [],
    "opsgenie/close.json": [R],
    "opsgenie/create_from_web.json": [F],
    "opsgenie/from_alertmanager_details.json": [F],
    "opsgenie/priority_integer.json": [F],
    "opsgenie/zabbix_string_numbers.json": [F],
    "generic/alertname_label_resolved.json": [R],
    "generic/numbers_for_strings.json": [F],
    "generic/readme_example.json": [F],
    "generic/summary_instead_of_title.json": [F],
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def normalise(source: str, raw: bytes | Any) -> tuple[list[NormalizedAlert], set[str]]:
    """The route's pipeline without HTTP: validate, normalise, and what was coerced."""
    model, normalize = NORMALISERS[source]
    if not isinstance(raw, bytes):
        raw = json.dumps(raw).encode()
    with alerts.recording_coercions() as coerced:
        result = normalize(model.model_validate_json(raw))
    return result, coerced


def only(source: str, body: bytes | Any) -> NormalizedAlert:
    [alert], _ = normalise(source, body)
    return alert


def refusal(source: str, body: Any) -> list[dict[str, Any]]:
    model, normalize = NORMALISERS[source]
    with pytest.raises(ValidationError) as caught:
        normalize(model.model_validate_json(json.dumps(body)))
    return list(caught.value.errors(include_url=False, include_context=False))


# --- the fixtures, without HTTP -----------------------------------------------------------------


def test_every_fixture_has_an_expectation() -> None:
    found = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}
    assert found == set(EXPECTED)
    per_source = Counter(name.split("/")[0] for name in found)
    assert set(per_source) == set(NORMALISERS) and min(per_source.values()) >= 4
    assert len(found) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_accepted_and_normalised(name: str) -> None:
    source = name.split("/")[0]
    result, _ = normalise(source, fixture(name))
    assert [a.status for a in result] == EXPECTED[name]
    for alert in result:
        assert alert.source == source
        assert alert.title.strip() and alert.dedup_key
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
        assert all(isinstance(v, str) for v in alert.annotations.values())
        assert all(link for link in alert.links)
        assert alert.starts_at is None or alert.starts_at.tzinfo is not None
        json.dumps([alert.raw, alert.labels, alert.annotations], allow_nan=False)


# --- Alertmanager ---------------------------------------------------------------------------


def test_alerts_without_a_status_take_the_groups() -> None:
    firing, coerced = normalise("alertmanager", fixture("alertmanager/group_status_only.json"))
    assert [a.status for a in firing] == ["firing", "firing"]
    assert coerced == {"alerts.status"}
    assert firing[0].dedup_key != firing[1].dedup_key  # labels differ (pod)
    resolved, coerced = normalise("alertmanager", fixture("alertmanager/resolved_inherited.json"))
    assert [a.status for a in resolved] == ["resolved"] and coerced == {"alerts.status"}
    assert resolved[0].raw["status"] == "resolved"


def test_without_any_status_an_alert_that_ended_is_resolved() -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    body = {
        "alerts": [
            {"labels": {"alertname": "A"}, "endsAt": past},
            {"labels": {"alertname": "B"}, "endsAt": future},
            {"labels": {"alertname": "C"}, "endsAt": "0001-01-01T00:00:00Z"},
            {"labels": {"alertname": "D"}},
        ]
    }
    result, _ = normalise("alertmanager", body)
    assert [a.status for a in result] == ["resolved", "firing", "firing", "firing"]


def test_a_resolved_alert_may_still_carry_the_zero_end_time() -> None:
    alert = only("alertmanager", fixture("alertmanager/resolved_zero_endsat.json"))
    assert alert.status == "resolved" and alert.dedup_key == "4c3c58dbb8b3a1d2"
    assert alert.starts_at == datetime(2026, 3, 1, 22, 41, 7, 502000, tzinfo=UTC)


def test_legacy_v3_numeric_group_key_is_kept_exactly() -> None:
    raw = fixture("alertmanager/v3_numeric_groupkey.json")
    assert b'"groupKey": 17264927364928374650' in raw  # above 2^53: a float would round it
    body = alerts.AlertmanagerWebhook.model_validate_json(raw)
    assert (body.groupKey, body.version) == ("17264927364928374650", "3")
    _, coerced = normalise("alertmanager", raw)
    assert coerced == {"groupKey"}


def test_numbers_and_nulls_where_strings_and_blocks_are_usual() -> None:
    alert, coerced = normalise("alertmanager", fixture("alertmanager/numbers_and_nulls.json"))
    [alert] = alert
    assert alert.labels == {
        "alertname": "QueueBacklog",
        "queue": "orders",
        "partition": "7",
        "critical_path": "true",
        "service": "order-router",
    }
    assert alert.annotations == {} and alert.links == []
    assert alert.dedup_key == "8141239938765"  # a numeric fingerprint, as text
    assert alert.starts_at == datetime.fromtimestamp(1768822200, UTC)  # epoch seconds
    assert (alert.title, alert.service) == ("QueueBacklog", "order-router")
    assert coerced == {
        "version",
        "truncatedAlerts",
        "commonLabels",
        "commonAnnotations",
        "alerts.labels",
        "alerts.annotations",
        "alerts.startsAt",
        "alerts.fingerprint",
    }


def test_identical_labels_with_different_fingerprints_stay_two_alerts() -> None:
    result, coerced = normalise(
        "alertmanager", fixture("alertmanager/regex_groupkey_duplicate_labels.json")
    )
    assert [a.dedup_key for a in result] == [
        "9a1ee2bc04e4c6f0",
        "9a1ee2bc04e4c6f1",
        "0d5c1b7a22e9f310",
    ]
    assert result[0].labels == result[1].labels and not coerced


def test_unknown_fields_are_ignored_and_nanosecond_times_read() -> None:
    alert, coerced = normalise(
        "alertmanager", fixture("alertmanager/nanosecond_times_unknown_fields.json")
    )
    assert not coerced
    assert alert[0].starts_at == datetime(2026, 1, 27, 15, 27, 56, 612666, tzinfo=UTC)
    assert alert[0].raw["relay"] == {"hop": 1}


def test_a_well_formed_body_is_not_coerced() -> None:
    result, coerced = normalise("alertmanager", fixture("alertmanager/kube_prometheus_v4.json"))
    assert not coerced
    assert [(a.status, a.service) for a in result] == [
        ("firing", "search-api"),
        ("resolved", "search-indexer"),
    ]
    assert result[0].links == [
        "http://prometheus-k8s-0:9090/graph?g0.expr=kube_deployment_spec_replicas&g0.tab=1",
        "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubedeploymentreplicasmismatch",
    ]


# --- Grafana --------------------------------------------------------------------------------


def test_grafana_values_and_value_string() -> None:
    first, second = normalise("grafana", fixture("grafana/unified_two_alerts.json"))[0]
    assert first.extra["values"] == {"A": 93.51874, "B": 93.51874, "C": 1}
    assert first.extra["valueString"].startswith("[ var='A' labels={zone=eu-2}")
    assert first.links == [
        "https://grafana.example.com/alerting/grafana/ddq4lq6/view?orgId=1",
        "https://grafana.example.com/d/storage-overview?orgId=1",
        "https://grafana.example.com/d/storage-overview?orgId=1&viewPanel=4",
    ]
    assert second.links == ["https://grafana.example.com/alerting/grafana/a8b2k3v/view?orgId=1"]
    assert first.alert_name == "High memory usage"  # names with spaces

    alert, coerced = normalise("grafana", fixture("grafana/values_null_value_string.json"))
    assert alert[0].extra == {"valueString": "[ var='B' labels={instance=web-1:9100} value=97.3 ]"}
    assert alert[0].alert_name == "Disk usage (root) > 90%"
    assert coerced == {"orgId"}  # "1"
    body = alerts.GrafanaWebhook.model_validate_json(
        fixture("grafana/values_null_value_string.json")
    )
    assert body.orgId == 1


def test_grafana_group_status_does_not_override_an_alerts_own() -> None:
    result, _ = normalise("grafana", fixture("grafana/mixed_status_group.json"))
    assert [(a.service, a.status) for a in result] == [("checkout", "firing"), ("cart", "resolved")]


def test_grafana_state_ok_resolves_alerts_without_a_status() -> None:
    alert, coerced = normalise("grafana", fixture("grafana/state_ok_no_status.json"))
    assert alert[0].status == "resolved" and coerced == {"alerts.status"}


def test_grafana_legacy_dashboard_alert_is_one_alert() -> None:
    alert, coerced = normalise("grafana", fixture("grafana/legacy_dashboard_alert.json"))
    [alert] = alert
    assert (alert.title, alert.alert_name, alert.dedup_key) == (
        "Kernel CPU alert",
        "Kernel CPU alert",
        "grafana-rule-1-12",
    )
    assert alert.labels == {"severity": "2", "team": "platform", "alertname": "Kernel CPU alert"}
    assert alert.description == "CPU time spent in kernel mode is too high on 10.1.4.17"
    assert alert.extra["values"] == {"System - Processes executing in kernel mode": 19377.99}
    assert coerced == {"body"}
    ok = {**json.loads(fixture("grafana/legacy_dashboard_alert.json")), "state": "ok"}
    assert only("grafana", ok).status == "resolved"


def test_grafana_oncall_outgoing_webhook_takes_the_groups_state() -> None:
    alert, coerced = normalise("grafana", fixture("grafana/oncall_outgoing_resolve.json"))
    [alert] = alert
    assert (alert.status, alert.dedup_key, alert.service) == (
        "resolved",  # the payload is the group's first alert, still "firing"
        "e2c1a7d05b3f9846",
        "orders",
    )
    assert coerced == {"body"}
    body = json.loads(fixture("grafana/oncall_outgoing_resolve.json"))
    del body["alert_payload"]
    body["alert_group"]["state"] = "firing"
    bare = only("grafana", body)
    assert (bare.status, bare.title, bare.dedup_key) == (
        "firing",
        "HighErrorRate orders (eu-1)",
        "oncall-I6HNZGUFG4K11",
    )


# --- PagerDuty ------------------------------------------------------------------------------


def test_pagerduty_without_incident_key_and_with_priority_null() -> None:
    alert = only("pagerduty", fixture("pagerduty/v3_no_incident_key_priority_null.json"))
    assert alert.dedup_key == "PT4KHLK"  # the incident id
    assert (alert.severity, alert.service) == ("low", "data-exports")  # urgency, no priority
    assert alert.links == ["https://acme.pagerduty.com/incidents/PT4KHLK"]
    triggered = only("pagerduty", fixture("pagerduty/v3_triggered.json"))
    assert (triggered.dedup_key, triggered.severity) == ("9f3b2c1e7d5a4e0b8c6d2f1a0e9b7c5d", "P1")
    assert triggered.starts_at == datetime(2026, 2, 18, 2, 11, 44, tzinfo=UTC)
    assert "data" in triggered.raw["event"] and "incident" not in triggered.raw["event"]


def test_pagerduty_resolved_with_service_null_and_reopened_without_key() -> None:
    resolved = only("pagerduty", fixture("pagerduty/v3_resolved_service_null.json"))
    assert (resolved.status, resolved.service, resolved.dedup_key) == (
        "resolved",
        None,
        "Q3K9ZB2XF7T1LM",
    )
    assert resolved.severity == "critical"  # high urgency
    reopened = only("pagerduty", fixture("pagerduty/v3_reopened_no_key.json"))
    assert (reopened.status, reopened.dedup_key) == ("firing", "Q3K9ZB2XF7T1LM")


def test_pagerduty_news_and_pings_are_accepted_and_ignored() -> None:
    for name in ("v3_priority_updated", "v3_annotated", "pagey_ping"):
        assert normalise("pagerduty", fixture(f"pagerduty/{name}.json")) == ([], set())


def test_pagerduty_v2_and_v1_messages() -> None:
    alert = only("pagerduty", fixture("pagerduty/v2_messages_trigger.json"))
    assert (alert.dedup_key, alert.title, alert.service, alert.severity) == (
        "cache-2/redis-memory",
        "Redis memory above 95% on cache-2",
        "cache",
        "critical",
    )
    body = {
        "messages": [
            {
                "type": "incident.resolve",
                "data": {
                    "incident": {
                        "id": "PIJ90N7",
                        "incident_number": 2,
                        "created_on": "2012-12-22T00:35:21Z",
                        "status": "resolved",
                        "html_url": "https://acme.pagerduty.com/incidents/PIJ90N7",
                        "incident_key": None,
                        "service": {"id": "PBAZLIU", "name": "service", "html_url": "x"},
                        "trigger_summary_data": {"subject": "45645"},
                    }
                },
                "id": "3a3e2d60-4ac8-11e2-a0d5-22000a1f0b57",
                "created_on": "2012-12-22T00:35:22Z",
            },
            {"type": "incident.acknowledge", "data": {"incident": {"id": "PIJ90N7"}}},
            "not a message",
        ]
    }
    [resolved], coerced = normalise("pagerduty", body)
    assert (resolved.status, resolved.dedup_key, resolved.title, resolved.service) == (
        "resolved",
        "PIJ90N7",
        "45645",
        "service",
    )
    assert coerced == {"messages"}


def test_pagerduty_event_without_its_type_is_read_from_the_status() -> None:
    body = json.loads(fixture("pagerduty/v3_triggered.json"))
    del body["event"]["event_type"]
    alert, coerced = normalise("pagerduty", body)
    assert [a.status for a in alert] == ["firing"] and coerced == {"event.event_type"}


def test_pagerduty_priority_and_service_as_text() -> None:
    body = {
        "event": {
            "event_type": "incident.triggered",
            "data": {"id": 4711, "title": "x", "priority": "P2", "service": "checkout"},
        }
    }
    alert, coerced = normalise("pagerduty", body)
    assert (alert[0].dedup_key, alert[0].severity, alert[0].service) == ("4711", "P2", "checkout")
    assert coerced == {"incident.id", "incident.priority", "incident.service"}


# --- OpsGenie -------------------------------------------------------------------------------


def test_opsgenie_integer_priority() -> None:
    alert, coerced = normalise("opsgenie", fixture("opsgenie/priority_integer.json"))
    assert (alert[0].severity, alert[0].service, alert[0].dedup_key) == (
        "P3",
        "checkout",
        "checkout-latency-p95",
    )
    assert coerced == {"alert.priority"}


def test_opsgenie_millisecond_and_nanosecond_times() -> None:
    body = alerts.OpsgenieWebhook.model_validate_json(fixture("opsgenie/create_from_web.json"))
    assert body.alert.createdAt == datetime(2026, 2, 18, 7, 0, 12, 345000, tzinfo=UTC)
    assert body.alert.updatedAt == datetime(2026, 2, 18, 7, 0, 12, 678000, tzinfo=UTC)
    assert body.alert.source == "es-monitor@example.com"
    alert, coerced = normalise("opsgenie", fixture("opsgenie/create_from_web.json"))
    assert alert[0].starts_at == body.alert.createdAt and not coerced  # OpsGenie's own form


def test_opsgenie_labels_from_details_when_the_origin_is_alertmanager() -> None:
    alert = only("opsgenie", fixture("opsgenie/from_alertmanager_details.json"))
    assert alert.title == "[FIRING:1] PostgresReplicationSlotInactive pg-main (critical)"
    assert alert.alert_name == "PostgresReplicationSlotInactive"
    assert (alert.service, alert.environment, alert.severity) == (
        "postgres",
        "production",
        "critical",  # no priority: the severity label
    )
    assert alert.labels["slot_name"] == "standby_2" and alert.labels["prometheus"] == "true"


def test_opsgenie_numbers_as_text_and_several_tags_in_one() -> None:
    alert, coerced = normalise("opsgenie", fixture("opsgenie/zabbix_string_numbers.json"))
    assert alert[0].labels == {
        "component": "rabbitmq",
        "env": "live",
        "location": "fra1",
        "service": "queue",
    }
    assert (alert[0].severity, alert[0].service) == ("P2", "queue")
    assert alert[0].starts_at == datetime(2026, 2, 18, 10, 20, 0, 111000, tzinfo=UTC)
    assert coerced == {
        "alert.priority",
        "alert.tags",
        "alert.tinyId",
        "alert.createdAt",
        "alert.updatedAt",
    }


@pytest.mark.parametrize(
    ("tags", "labels"),
    [
        (["env=prod", "team:db", "solo"], {"env": "prod", "team": "db", "solo": "true"}),
        ("env:prod, team:db", {"env": "prod", "team": "db"}),
        ({"env": "prod", "tier": 1}, {"env": "prod", "tier": "1"}),
        ([3, None, "x"], {"3": "true", "x": "true"}),
        (None, {}),
    ],
)
def test_opsgenie_tag_forms(tags: Any, labels: dict[str, str]) -> None:
    body = {"action": "Create", "alert": {"alertId": "a", "message": "m", "tags": tags}}
    assert only("opsgenie", body).labels == labels


def test_opsgenie_actions() -> None:
    closed = only("opsgenie", fixture("opsgenie/close.json"))
    assert (closed.status, closed.dedup_key) == ("resolved", "es-logs-prod-health")
    assert normalise("opsgenie", fixture("opsgenie/acknowledge.json")) == ([], set())
    no_action = {"alert": {"alertId": "a1", "message": "disk full"}}
    alert, coerced = normalise("opsgenie", no_action)
    assert alert[0].status == "firing" and coerced == {"action"}
    bare = {"action": "create", "alert": {"tinyId": 12, "description": "Queue stuck\nmore"}}
    alert, coerced = normalise("opsgenie", bare)
    assert (alert[0].title, alert[0].dedup_key) == ("Queue stuck", "12")
    assert coerced == {"alert.message", "alert.tinyId"}


# --- generic --------------------------------------------------------------------------------


def test_generic_title_fallbacks_and_numbers() -> None:
    alert, coerced = normalise("generic", fixture("generic/summary_instead_of_title.json"))
    assert alert[0].title == "Certificate for api.example.com expires in 6 days"
    assert "summary" in alert[0].raw and "message" not in alert[0].raw
    assert coerced == {"title"}
    alert, coerced = normalise("generic", fixture("generic/alertname_label_resolved.json"))
    assert (alert[0].title, alert[0].status) == ("DiskPressure", "resolved")
    assert coerced == {"title", "status"}
    alert, coerced = normalise("generic", fixture("generic/numbers_for_strings.json"))
    assert (alert[0].severity, alert[0].dedup_key) == ("2", "424242")
    assert alert[0].labels == {"tenant": "42", "retry": "true", "attempts": "3", "ratio": "0.25"}
    assert coerced == {"severity", "dedup_key", "labels"}
    for key in ("message", "name"):
        assert only("generic", {key: "from " + key}).title == "from " + key
    long = only("generic", {"title": "x" * 5000, "dedup_key": "k" * 600})
    assert len(long.title) == 1000 and len(long.dedup_key) <= 500


def test_generic_refuses_only_what_has_no_title() -> None:
    [error] = refusal("generic", {"service": "api"})
    assert error["loc"] == ("title",) and error["msg"].startswith("no title")
    # A misspelt field costs no page: it is kept in raw and counted.
    alert, coerced = normalise("generic", {"title": "x", "sevrity": "critical"})
    assert [a.title for a in alert] == ["x"] and coerced == {"unknown_field"}
    assert alert[0].raw["sevrity"] == "critical"
    with pytest.raises(ValidationError, match="NaN and Infinity"):
        alerts.GenericAlert.model_validate_json(b'{"title": "x", "labels": {"a": NaN}}')


# --- times ----------------------------------------------------------------------------------

T = datetime(2026, 2, 18, 7, 0, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected", "coerced"),
    [
        ("2026-02-18T07:00:12Z", T, False),
        ("2026-02-18T08:00:12+01:00", T, False),
        ("2026-02-18T07:00:12.000000000Z", T, False),
        ("2026-02-18T07:00:12", T, False),  # no zone: UTC
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC), False),
        (1771398012, T, True),
        (1771398012000, T, True),
        (1771398012000000, T, True),
        (1771398012000000000, T, True),
        ("1771398012000", T, True),
        ("Wed, 18 Feb 2026 07:00:12 GMT", T, False),
        ("2026-13-45T25:61:00Z", None, True),
        ("soon", None, True),
        (-1, None, True),
        (1e308, None, True),
        (True, None, True),
        ({"at": 1}, None, True),
    ],
)
def test_times(given: Any, expected: datetime | None, coerced: bool) -> None:
    body = {"alerts": [{"status": "firing", "labels": {}, "startsAt": given}]}
    with alerts.recording_coercions() as noted:
        parsed = alerts.AlertmanagerWebhook.model_validate(body).alerts[0].startsAt
    assert parsed == expected
    assert noted == ({"alerts.startsAt"} if coerced else set())


# --- refusals -------------------------------------------------------------------------------

NOT_ALERTS: list[Any] = [[], "x", {}, {"alerts": "nope"}, None, 7]


@pytest.mark.parametrize("source", sorted(NORMALISERS))
@pytest.mark.parametrize("body", NOT_ALERTS, ids=lambda b: json.dumps(b))
def test_what_cannot_be_an_alert_is_refused_with_a_reason(source: str, body: Any) -> None:
    errors = refusal(source, body)
    assert errors and all(e["msg"] for e in errors)
    if not isinstance(body, dict):
        assert errors[0]["loc"] == () and "not a JSON object" in errors[0]["msg"]


def test_alertmanager_refusals_name_the_field() -> None:
    [missing] = refusal("alertmanager", {"version": "4"})
    assert missing["loc"] == ("alerts",) and missing["msg"].startswith("no alerts")
    [not_list] = refusal("alertmanager", {"alerts": "nope"})
    assert not_list["msg"] == "alerts must be a list of alert objects, not a string"
    # A status word no source defines is the group's, else firing: never a lost page.
    odd, coerced = normalise("alertmanager", {"alerts": [{"status": "exploded", "labels": {}}]})
    assert [a.status for a in odd] == ["firing"] and coerced == {"alerts.status"}
    grouped, _ = normalise(
        "alertmanager",
        {"status": "resolved", "alerts": [{"status": "exploded", "labels": {"a": "b"}}]},
    )
    assert [a.status for a in grouped] == ["resolved"]
    assert refusal("alertmanager", {"alerts": [{"labels": {}}, "x"]})[0]["loc"] == ("alerts", 1)
    assert refusal("pagerduty", {"event": None})[0]["msg"].startswith("no PagerDuty event")
    assert refusal("opsgenie", {"action": "Create"})[0]["loc"] == ("alert",)


# --- the coercion notes ---------------------------------------------------------------------


def test_coercions_are_noted_per_context_only() -> None:
    body = fixture("alertmanager/group_status_only.json")
    alerts.AlertmanagerWebhook.model_validate_json(body)  # nobody records: nothing breaks
    entered, validated = threading.Event(), threading.Event()

    def quiet_recorder() -> set[str]:
        with alerts.recording_coercions() as noted:
            entered.set()
            validated.wait(10)
            return set(noted)

    def busy_validator() -> set[str]:
        entered.wait(10)
        try:
            _, noted = normalise("alertmanager", body)
            return noted
        finally:
            validated.set()

    with ThreadPoolExecutor(max_workers=2) as pool:
        quiet, busy = pool.submit(quiet_recorder), pool.submit(busy_validator)
        assert busy.result() == {"alerts.status"}
        assert quiet.result() == set()  # the other thread's coercions are not this one's


# --- through the API ------------------------------------------------------------------------


async def test_every_fixture_through_match_and_webhooks(stack: Stack) -> None:
    before = await scrape(stack)
    expected_counts: Counter[tuple[str, str]] = Counter()
    for name, statuses in sorted(EXPECTED.items()):
        source = name.split("/")[0]
        raw = fixture(name)
        _, coerced = normalise(source, raw)
        matched = await stack.http.post(
            f"/match/{source}",
            content=raw,
            headers={**stack.api_headers(), "Content-Type": "application/json"},
        )
        assert matched.status_code == 200, (name, matched.text)
        assert len(matched.json()["alerts"]) == len(statuses), name
        assert matched.json()["coerced"] == sorted(coerced), name
        delivered = await stack.http.post(
            f"/webhooks/{source}",
            content=raw,
            headers={**stack.webhook_headers(), "Content-Type": "application/json"},
        )
        assert delivered.status_code == 202, (name, delivered.text)
        outcomes = delivered.json()["alerts"]
        assert [o["status"] == "resolved" for o in outcomes] == [s == R for s in statuses], name
        expected_counts.update((source, field) for field in coerced)
    after = await scrape(stack)
    moved = {
        (dict(labels)["source"], dict(labels)["field"]): after[(metric, labels)]
        - before.get((metric, labels), 0.0)
        for metric, labels in after
        if metric == "ddoc_webhook_coerced_total"
    }
    assert {k: v for k, v in moved.items() if v} == dict(expected_counts)
    # The two failures that started this: both accepted, both counted.
    assert moved[("alertmanager", "alerts.status")] >= 2
    assert moved[("opsgenie", "alert.priority")] >= 2


async def test_normalised_fields_reach_the_incident(stack: Stack) -> None:
    async def deliver(name: str) -> list[dict[str, Any]]:
        response = await stack.http.post(
            f"/webhooks/{name.split('/')[0]}",
            content=fixture(name),
            headers={**stack.webhook_headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
        return list(response.json()["alerts"])

    async def incident(outcome: dict[str, Any]) -> dict[str, Any]:
        response = await stack.http.get(
            f"/incidents/{outcome['incident_id']}", headers=stack.api_headers()
        )
        return dict(response.json())

    before = await scrape(stack)
    [ops] = await deliver("opsgenie/priority_integer.json")
    found = await incident(ops)
    assert (found["severity"], found["service"], found["dedup_key"]) == (
        "P3",
        "checkout",
        "checkout-latency-p95",
    )
    [details] = await deliver("opsgenie/from_alertmanager_details.json")
    found = await incident(details)
    assert (found["service"], found["severity"], found["environment"]) == (
        "postgres",
        "critical",
        "production",
    )
    assert found["labels"]["alertname"] == "PostgresReplicationSlotInactive"
    [pd] = await deliver("pagerduty/v3_no_incident_key_priority_null.json")
    assert pd["dedup_key"] == "PT4KHLK"
    assert (await incident(pd))["severity"] == "low"
    first, second = await deliver("alertmanager/group_status_only.json")
    assert first["status"] != "resolved" and second["status"] != "resolved"
    assert (await incident(first))["status"] == "open"
    after = await scrape(stack)

    def moved(**labels: str) -> float:
        name = "ddoc_webhook_coerced_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(source="opsgenie", field="alert.priority") == 1
    assert moved(source="alertmanager", field="alerts.status") == 1  # once per delivery


async def test_bodies_that_cannot_be_alerts_get_422_over_http(stack: Stack) -> None:
    for source in NORMALISERS:
        for body in NOT_ALERTS[:4]:
            for path, headers in (
                (f"/webhooks/{source}", stack.webhook_headers()),
                (f"/match/{source}", stack.api_headers()),
            ):
                response = await stack.http.post(path, json=body, headers=headers)
                assert response.status_code == 422, (path, body, response.text)
                detail = response.json()["detail"]
                assert detail and all(d["msg"] and d["loc"][0] == "body" for d in detail)
    response = await stack.http.post(
        "/webhooks/alertmanager", json={"alerts": "nope"}, headers=stack.webhook_headers()
    )
    assert response.json()["detail"][0] == {
        "type": "alerts_not_list",
        "loc": ["body", "alerts"],
        "msg": "alerts must be a list of alert objects, not a string",
    }
