"""Ranking when nothing is explicit: variable parts left out of the alert's text, the runbook's
title compared word by word (a title word the alert does not mention keeps the runbook from
being attached), services compared by their words, the attach decision as a pure function, and
Claude's confirmation through the real anthropic SDK against the fake Messages API. Real
PostgreSQL and the real embedding model, on small runbooks of our own; one corpus check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from ddoc.alerts import search_text
from ddoc.alerts.match_confirm import TOOL_NAME, ClaudeConfirmer, ConfirmConfig, config_from_env
from ddoc.alerts.matching import (
    Candidate,
    Matcher,
    MatchResult,
    Ranked,
    Thresholds,
    _mentioned,
    _same_service,
    decide,
)
from ddoc.alerts.sources import (
    GenericAlert,
    NormalizedAlert,
    PagerDutyWebhook,
    normalize_generic,
    normalize_pagerduty,
)
from ddoc.platform import tenancy
from ddoc.runbooks import search
from ddoc.runbooks import store as runbooks
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.parsing import parse_runbook
from tests.conftest import store_runbooks
from tests.fakes_anthropic import BASE_URL, FakeAnthropicAPI

TENANT = "acme"
KEY = "sk-ant-test-0123456789abcdef"

RUNBOOKS = {
    "kubelet-server-cert.md": """# Kubelet server certificate expiring

The kubelet's serving certificate on a node expires soon; the API server can no longer reach
the kubelet once it has.

1. Show its expiry: `openssl x509 -noout -enddate -in /var/lib/kubelet/pki/kubelet.crt`
""",
    "redis-memory.md": """# Redis memory almost full

Redis used memory is close to maxmemory; keys will be evicted or writes refused.

1. Check memory: `redis-cli info memory`
""",
    "pgbouncer-pool.md": """---
services: [payments]
---
# PgBouncer connection pool saturated

Clients wait for a server connection: the pool is exhausted.

1. Show pools: `psql -p 6432 pgbouncer -c 'SHOW POOLS'`
""",
    "kafka-lag.md": """# Kafka consumer lag growing

A consumer group falls behind its topic; messages are processed late.

1. Describe the group: `kafka-consumer-groups --describe --group orders`
""",
}


@pytest.fixture
def loaded(engine: Engine) -> Iterator[Engine]:
    store_runbooks(engine, TENANT, RUNBOOKS)
    yield engine


def alert(**fields: object) -> NormalizedAlert:
    return normalize_generic(GenericAlert.model_validate(fields))[0]


def pagerduty(title: str, service: str | None = None) -> NormalizedAlert:
    data: dict[str, object] = {"id": "Q1", "title": title, "urgency": "high"}
    if service:
        data["service"] = {"id": "PSVC", "summary": service}
    body = {"event": {"id": "01E", "event_type": "incident.triggered", "data": data}}
    return normalize_pagerduty(PagerDutyWebhook.model_validate(body))[0]


# -- the alert's text without its values ------------------------------------------------------


def test_values_are_left_out_of_the_alert_text() -> None:
    first = alert(
        title="Pod payments/api-7d9f8c6b5-x2v4q restarted 12 times on ip-10-0-3-17.ec2.internal",
        description="Memory at 93.4% on 10.0.3.17:9100 since 2026-12-03T10:00:00Z",
    )
    again = alert(
        title="Pod payments/api-5f6b7c8d9-k2m4p restarted 3 times on ip-10-0-9-201.ec2.internal",
        description="Memory at 71% on 192.168.4.9:9100 since 2026-12-04T11:22:33Z",
    )
    assert search_text.alert_text(first) == search_text.alert_text(again)
    assert search_text.alert_text(first) == ("pod payments/ restarted times on. memory at on since")


def test_camel_case_in_the_alert_is_split_and_the_alert_name_kept() -> None:
    text = search_text.alert_text(
        alert(title="PersistentVolume is filling up", labels={"alertname": "KubePVFillingUp"})
    )
    assert text == "Kube PV Filling Up. persistent volume is filling up"
    assert search_text.query_words(
        alert(title="PersistentVolume is filling up", labels={"alertname": "KubePVFillingUp"})
    ).split()[:3] == ["kubepvfillingup", "kube", "pv"]


def test_a_recurrence_with_other_values_is_decided_the_same(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        results = [
            matcher.match(
                session,
                tenant_id=TENANT,
                alert=pagerduty(f"Kafka consumer lag growing on {host}: {lag} messages behind"),
            ).to_dict()
            for host, lag in (("kafka-0", "1,204"), ("kafka-7", "88"), ("10.0.3.17", "9.5k"))
        ]
    assert results[0] == results[1] == results[2]
    assert results[0]["status"] == "attached"


# -- the runbook's title, word by word --------------------------------------------------------


def test_a_title_word_the_alert_does_not_mention_blocks_attaching(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        right = matcher.match(
            session,
            tenant_id=TENANT,
            alert=pagerduty("Kubelet server certificate is about to expire"),
        )
        twin = matcher.match(
            session,
            tenant_id=TENANT,
            alert=pagerduty("Kubelet client certificate is about to expire"),
        )
    assert right.attached is not None
    assert right.attached.source_path == "kubelet-server-cert.md"
    # The only certificate runbook is about the server's: offered, never attached.
    assert twin.attached is None
    assert twin.candidates[0].source_path == "kubelet-server-cert.md"
    assert "not attached: its title says 'server', the alert does not" in twin.candidates[0].reasons


def test_the_title_evidence_is_in_the_reasons(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    with Session(loaded) as session:
        ranked = matcher.ranked(
            session, tenant_id=TENANT, alert=pagerduty("Redis memory is almost exhausted")
        )
    best = ranked[0]
    assert best.candidate.source_path == "redis-memory.md"
    assert best.missing_words == ["full"]
    assert any(r.startswith("the alert mentions ") for r in best.candidate.reasons)


@pytest.mark.parametrize(
    ("lexeme", "alert_lexemes", "expected"),
    [
        ("certif", {"certif"}, True),
        ("failur", {"fail"}, True),  # "failures" and "failed"
        ("err", {"error"}, True),  # "Errs" and "errors"
        ("mismatch", {"match"}, True),  # "Mismatch" and "has not matched"
        ("server", {"servic"}, False),  # "server" and "service" differ
        ("client", {"server", "certif"}, False),
        ("down", {"downtim"}, False),  # meaningful stop words only compare as they are
        ("not", {"note"}, False),
        ("not", {"not"}, True),
    ],
)
def test_when_a_title_word_counts_as_mentioned(
    lexeme: str, alert_lexemes: set[str], expected: bool
) -> None:
    assert _mentioned(lexeme, alert_lexemes) is expected


def test_negations_and_meaningful_stop_words_have_stems(engine: Engine) -> None:
    with Session(engine) as session:
        stems = search.lexemes(session, ["non", "not", "isn", "down", "the", "any", "replicas"])
    assert stems == {
        "non": ("not",),
        "not": ("not",),
        "isn": ("not",),
        "down": ("down",),
        "the": (),
        "any": ("any",),
        "replicas": ("replica",),
    }


# -- services ---------------------------------------------------------------------------------


def test_services_compare_by_their_words() -> None:
    assert _same_service("payments", ["payments"])
    assert _same_service("Payments API", ["payments"])
    assert _same_service("payments-api", ["payments"])
    assert not _same_service("checkout", ["payments"])
    assert not _same_service("payments", ["payments-api"])  # the runbook is narrower
    assert not _same_service("worker-3", ["worker"])  # a host is not a service name
    assert not _same_service("payments", [" "])


def test_a_pagerduty_service_that_a_runbook_declares_adds_confidence(loaded: Engine) -> None:
    matcher = Matcher(default_embedder())
    title = "Connection pool saturated, clients waiting"
    with Session(loaded) as session:
        plain = matcher.rank(session, tenant_id=TENANT, alert=pagerduty(title))
        with_service = matcher.rank(
            session, tenant_id=TENANT, alert=pagerduty(title, service="Payments API")
        )
    assert plain[0][1].source_path == with_service[0][1].source_path == "pgbouncer-pool.md"
    assert with_service[0][0] > plain[0][0]
    assert "declares service 'Payments API'" in with_service[0][1].reasons


# -- the decision on its own ------------------------------------------------------------------


def ranked_(*items: tuple[str, float, int | None, list[str]]) -> list[Ranked]:
    return [
        Ranked(conf, Candidate(rid, rid.title(), f"{rid}.md", conf, []), fts, missing)
        for rid, conf, fts, missing in items
    ]


def test_decide_attaches_only_with_confidence_lead_full_text_and_title_words() -> None:
    plain = alert(title="x")
    thresholds = Thresholds(attach=0.65, suggest=0.45, margin=0.10)

    def outcome(*items: tuple[str, float, int | None, list[str]]) -> tuple[str, list[str]]:
        result = decide(plain, ranked_(*items), thresholds)
        return result.status, [r for r in result.candidates[0].reasons if "not attached" in r]

    assert outcome(("a", 0.8, 1, []), ("b", 0.6, 2, [])) == ("attached", [])
    assert outcome(("a", 0.6, 1, []), ("b", 0.4, 2, [])) == (
        "suggested",
        ["not attached: confidence below 0.65"],
    )
    assert outcome(("a", 0.8, 1, []), ("b", 0.75, 2, [])) == (
        "suggested",
        ["not attached: the next candidate is within 0.10"],
    )
    assert outcome(("a", 0.8, 2, []), ("b", 0.6, 1, [])) == (
        "suggested",
        ["not attached: full-text search ranks another runbook first"],
    )
    assert outcome(("a", 0.8, 1, ["server"]), ("b", 0.6, 2, [])) == (
        "suggested",
        ["not attached: its title says 'server', the alert does not"],
    )
    assert decide(plain, ranked_(("a", 0.3, 1, [])), thresholds).status == "unmatched"
    relaxed = Thresholds(attach=0.65, margin=0.10, require_title_words=False)
    assert decide(plain, ranked_(("a", 0.8, 1, ["server"])), relaxed).status == "attached"


def test_decide_leaves_the_ranked_candidates_as_they_were() -> None:
    ranked = ranked_(("a", 0.6, 1, []), ("b", 0.5, 2, []))
    decide(alert(title="x"), ranked, Thresholds())
    decide(alert(title="x"), ranked, Thresholds())
    assert [r.candidate.reasons for r in ranked] == [[], []]


def test_configured_thresholds_still_decide(loaded: Engine) -> None:
    title = "Kubelet server certificate is about to expire"
    with Session(loaded) as session:
        default = Matcher(default_embedder()).match(
            session, tenant_id=TENANT, alert=pagerduty(title)
        )
        strict = Matcher(default_embedder(), Thresholds(attach=0.99)).match(
            session, tenant_id=TENANT, alert=pagerduty(title)
        )
    assert default.status == "attached"
    assert strict.status == "suggested"


# -- Claude confirms or rejects ---------------------------------------------------------------


def confirmer(api: FakeAnthropicAPI) -> ClaudeConfirmer:
    config = ConfirmConfig(api_key=KEY, model="claude-test", base_url=BASE_URL, timeout_seconds=5)
    return ClaudeConfirmer(config, http_client=api.client())


def test_config_comes_from_the_ai_parser_settings() -> None:
    assert config_from_env({}) is None
    config = config_from_env({"DDOC_ANTHROPIC_API_KEY": KEY, "DDOC_ANTHROPIC_MODEL": "m"})
    assert config is not None and config.model == "m" and KEY not in repr(config)


def test_claude_may_attach_a_suggested_candidate(loaded: Engine) -> None:
    api = FakeAnthropicAPI().tool_use({"choice": 1, "reason": "same problem"}, name=TOOL_NAME)
    matcher = Matcher(default_embedder(), confirmer=confirmer(api))
    with Session(loaded) as session:
        result = matcher.match(
            session, tenant_id=TENANT, alert=pagerduty("Redis memory is almost exhausted")
        )
    assert result.attached is not None
    assert result.attached.source_path == "redis-memory.md"
    assert "confirmed by Claude (claude-test) among the candidates" in result.attached.reasons
    request = api.last.body
    assert request["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert request["tools"][0]["input_schema"]["properties"]["choice"]["maximum"] == len(
        result.candidates
    )
    prompt = api.user_text()
    assert "Redis memory is almost exhausted" in prompt
    assert '1. {"title": "Redis memory almost full"' in prompt
    assert api.sent_api_key() == KEY


def test_claude_may_reject_what_search_would_attach(loaded: Engine) -> None:
    api = FakeAnthropicAPI().tool_use({"choice": 0}, name=TOOL_NAME)
    matcher = Matcher(default_embedder(), confirmer=confirmer(api))
    with Session(loaded) as session:
        result = matcher.match(
            session,
            tenant_id=TENANT,
            alert=pagerduty("Kubelet server certificate is about to expire"),
        )
    assert result.attached is None
    assert result.candidates[0].source_path == "kubelet-server-cert.md"
    assert (
        "not attached: Claude (claude-test): none of the candidates is written for this alert"
        in result.candidates[0].reasons
    )


@pytest.mark.parametrize(
    "script",
    [
        lambda api: api.tool_use({"choice": 7}, name=TOOL_NAME),  # not a candidate
        lambda api: api.tool_use({"choice": True}, name=TOOL_NAME),
        lambda api: api.tool_use({"choice": "1"}, name=TOOL_NAME),
        lambda api: api.tool_use({"runbook": "redis-memory.md"}, name=TOOL_NAME),
        lambda api: api.tool_use({"choice": 1}, name="record_runbook"),  # another tool
        lambda api: api.text("The first one."),
        lambda api: api.error(529, "overloaded_error", "Overloaded"),
        lambda api: api.error(401, "authentication_error", "invalid x-api-key"),
        lambda api: api.raw(200, "<html>proxy</html>"),
        lambda api: api.raise_(httpx2.ReadTimeout("timed out")),
    ],
)
def test_any_failure_keeps_the_search_decision(loaded: Engine, script: object) -> None:
    api = FakeAnthropicAPI()
    script(api)  # type: ignore[operator]
    title = "Kubelet server certificate is about to expire"
    with Session(loaded) as session:
        expected = Matcher(default_embedder()).match(
            session, tenant_id=TENANT, alert=pagerduty(title)
        )
        got = Matcher(default_embedder(), confirmer=confirmer(api)).match(
            session, tenant_id=TENANT, alert=pagerduty(title)
        )
    assert got.to_dict() == expected.to_dict()
    assert got.status == "attached"
    assert KEY not in json.dumps(got.to_dict())


def test_claude_is_not_asked_about_explicit_matches_or_empty_results(loaded: Engine) -> None:
    api = FakeAnthropicAPI().tool_use({"choice": 0}, name=TOOL_NAME)
    matcher = Matcher(default_embedder(), confirmer=confirmer(api))
    with Session(loaded) as session:
        runbooks.store(
            loaded,
            tenant_id=TENANT,
            content="---\nalerts: [KafkaLag]\n---\n# Kafka lag\n\n1. Look: `kafka-topics --list`\n",
            fmt="markdown",
            parsed=parse_runbook(
                "---\nalerts: [KafkaLag]\n---\n# Kafka lag\n\n1. Look: `kafka-topics --list`\n",
                "markdown",
                source_path="kafka-explicit.md",
            ),
            source_path="kafka-explicit.md",
            actor="test",
            embedder=default_embedder(),
        )
        explicit = matcher.match(
            session, tenant_id=TENANT, alert=alert(title="x", labels={"alertname": "KafkaLag"})
        )
        nothing = matcher.match(session, tenant_id=TENANT, alert=alert(title="zzz qqq"))
    assert explicit.attached is not None and explicit.attached.method == "explicit"
    assert nothing.candidates == []
    assert api.requests == []


def test_a_runbook_written_for_another_alert_name_is_never_attached_by_claude(
    loaded: Engine,
) -> None:
    api = FakeAnthropicAPI().tool_use({"choice": 1}, name=TOOL_NAME)
    chosen = Candidate("rb_1", "Kafka lag", "k.md", 0.7, [], alert_names=["KafkaLag"])
    result = MatchResult([chosen], None)
    with Session(loaded) as session:
        got = confirmer(api).confirm(
            session, TENANT, alert(title="lag", labels={"alertname": "OtherAlert"}), result
        )
    assert got is result and got.attached is None


# -- the corpus -------------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus is not present")
def test_corpus_titles_attach_often_and_never_wrongly(engine: Engine) -> None:
    """PagerDuty titles of the labelled alerts: most are attached, none wrongly."""
    from bench.harness import alert_rules, corpus_documents
    from ddoc.runbooks.ingest.sync import import_documents

    tenancy.bootstrap(engine, tenant_id=TENANT)
    import_documents(
        engine,
        tenant_id=TENANT,
        documents=corpus_documents(CORPUS),
        actor="test",
        embedder=default_embedder(),
    )
    with Session(engine) as session:
        ids = dict(
            session.execute(
                text("SELECT source_path, id FROM runbooks WHERE tenant_id = :t"),
                {"t": TENANT},
            ).all()
        )
        matcher = Matcher(default_embedder())
        right = wrong = 0
        labelled = [r for r in alert_rules(CORPUS) if r.runbook_path]
        for rule in labelled:
            result = matcher.match(
                session, tenant_id=TENANT, alert=pagerduty(rule.summary or rule.description)
            )
            if result.attached is not None:
                if result.attached.runbook_id == ids[rule.runbook_path]:
                    right += 1
                else:
                    wrong += 1
    assert wrong == 0
    assert right / len(labelled) >= 0.5
