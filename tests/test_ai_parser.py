"""Tests for ddoc.runbooks.parsing.ai: the real anthropic SDK against a fake Messages API.

Exact results on our own runbooks: AI structure used, grounding (hallucinated and truncated
commands rejected, whitespace differences accepted), risk escalation only, and the fallback to
the deterministic parser on every kind of API or answer failure.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from ddoc.runbooks.model import ParsedRunbook, RiskClass
from ddoc.runbooks.parsing import ParseError, parse_runbook
from ddoc.runbooks.parsing.ai import AIParserConfig, ai_config_from_env, parse_with_ai
from ddoc.runbooks.parsing.ai_prompt import SYSTEM_PROMPT
from tests.fakes_anthropic import BASE_URL, FakeAnthropicAPI

KEY = "sk-ant-test-0123456789abcdef"
NO_TOOL = "no record_runbook tool call in the answer"
NO_TRIGGER = (
    "no alert or service is named (add `alerts:` or `services:` front-matter, "
    "or an `Alert: <AlertName>` line)"
)

RUNBOOK = """\
---
alerts: [CheckoutLatencyHigh]
---
# Checkout latency high

Checkout p99 latency is above 2 seconds.

## Diagnose

1. List the pods:

   ```bash
   $ kubectl get pods -n checkout -l app=checkout
   ```

2. Check the error rate on the Checkout dashboard.

## Mitigate

3. Restart the deployment:

   ```bash
   kubectl rollout restart deployment/checkout \\
     -n checkout
   ```

4. If one pod is stuck in `Terminating`, delete it: `kubectl delete pod <pod> -n checkout`
5. If latency stays above 2 seconds, page the payments team.
"""
GET = "kubectl get pods -n checkout -l app=checkout"
RESTART = "kubectl rollout restart deployment/checkout \\\n  -n checkout"
DELETE = "kubectl delete pod <pod> -n checkout"


def classify(command: str, language: str | None) -> tuple[RiskClass, str]:
    """Keyword stand-in for ddoc.runbooks.risk; SQL has its own, more lenient reading, as in the
    real one."""
    if language == "sql":
        if re.search(r"\b(?:DROP|TRUNCATE)\b|\bDELETE\s+FROM\b", command, re.I):
            return RiskClass.RED, "sql: destroys data"
        return RiskClass.GREEN, "sql: reads data"
    if re.search(r"\b(?:delete|drop|rm|drain)\b", command):
        return RiskClass.RED, "deletes"
    if re.search(r"\b(?:restart|scale)\b", command):
        return RiskClass.YELLOW, "changes state"
    return RiskClass.GREEN, "read-only"


def step(
    text: str,
    kind: str,
    lines: tuple[int, int],
    command: str | None = None,
    risk: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": text,
        "kind": kind,
        "command": command,
        "language": "kubectl" if command else None,
        "risk": risk,
        "risk_reason": f"AI thinks {risk}" if risk else None,
        "rollback": None,
        "branches": [],
        "source": {"start_line": lines[0], "end_line": lines[1]},
    }
    out.update(extra)
    return out


def branch(condition: str, text: str, goto: str | None, check: Any = None) -> dict[str, Any]:
    return {"condition": condition, "text": text, "goto": goto, "check": check}


GOOD: dict[str, Any] = {
    "title": "Checkout latency high",
    "summary": "What to do when checkout p99 latency is above 2 seconds.",
    "triggers": {"alerts": ["CheckoutLatencyHigh"], "services": ["checkout"], "labels": {}},
    "prerequisites": [{"text": "kubectl access to the checkout namespace", "kind": "access"}],
    "variables": [{"name": "pod", "syntax": "<pod>", "source": "label", "key": "pod"}],
    "steps": [
        step("List the pods", "command", (10, 14), GET, "green"),
        step("Check the error rate on the Checkout dashboard.", "manual", (16, 16)),
        step("Restart the deployment", "command", (20, 25), RESTART, "yellow"),
        step(
            "Is a pod stuck in Terminating?",
            "decision",
            (27, 27),
            branches=[
                branch("a pod is stuck", "delete it", "s5", {"output_pattern": "Terminating"}),
                branch("no pod is stuck", "page the payments team", "s6"),
            ],
        ),
        step("Delete the stuck pod", "command", (27, 27), DELETE, "red"),
        step("Page the payments team", "escalate", (28, 28)),
    ],
}


def good() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def run(
    fake: FakeAnthropicAPI, content: str | bytes = RUNBOOK, fmt: str = "markdown", **config: Any
) -> ParsedRunbook:
    # A model name the SDK has no deprecation notice for keeps the output quiet.
    config.setdefault("model", "claude-test-model")
    cfg = AIParserConfig(api_key=KEY, base_url=BASE_URL, **config)
    return parse_with_ai(content, fmt, config=cfg, classify=classify, http_client=fake.client())


def steps_of(rb: ParsedRunbook) -> list[tuple[Any, ...]]:
    return [
        (s.id, s.kind.value, s.command, s.risk.value if s.risk else None, s.risk_reason)
        for s in rb.steps
    ]


def flags_of(rb: ParsedRunbook) -> list[tuple[str, str | None]]:
    return [(f.code, f.step_id) for f in rb.quality.flags]


def fallback_expected(content: str | bytes, fmt: str, reason: str) -> dict[str, Any]:
    expected = parse_runbook(content, fmt, classify=classify).to_dict()
    expected["warnings"].append(f"AI parser unavailable ({reason}); used the deterministic parser")
    return expected


# --- the AI result is used -----------------------------------------------------------------
def test_ai_structure_is_used_with_verbatim_commands() -> None:
    fake = FakeAnthropicAPI().tool_use(good())
    rb = run(fake)
    assert rb.parser == "ai"
    assert rb.warnings == []
    assert rb.title == "Checkout latency high"
    assert rb.summary == "What to do when checkout p99 latency is above 2 seconds."
    assert steps_of(rb) == [
        ("s1", "command", GET, "green", "rules: read-only"),
        ("s2", "manual", None, None, None),
        ("s3", "command", RESTART, "yellow", "rules: changes state"),
        ("s4", "decision", None, None, None),
        ("s5", "command", DELETE, "red", "rules: deletes"),
        ("s6", "escalate", None, None, None),
    ]
    assert [(s.source.start_line, s.source.end_line) for s in rb.steps] == [
        (10, 14),
        (16, 16),
        (20, 25),
        (27, 27),
        (27, 27),
        (28, 28),
    ]
    assert [s.language for s in rb.steps] == ["kubectl", None, "kubectl", None, "kubectl", None]
    assert [(b.goto, b.check) for b in rb.steps[3].branches] == [
        ("s5", {"output_pattern": "Terminating"}),
        ("s6", None),
    ]
    assert (rb.triggers.alerts, rb.triggers.services) == (["CheckoutLatencyHigh"], ["checkout"])
    assert [(p.text, p.kind) for p in rb.prerequisites] == [
        ("kubectl access to the checkout namespace", "access")
    ]
    assert [(v.name, v.syntax, v.source.value, v.key) for v in rb.variables] == [
        ("pod", "<pod>", "label", "pod")
    ]
    assert flags_of(rb) == [("red_without_rollback", "s5"), ("vague_step", "s2")]
    assert rb.quality.score == 80
    assert ParsedRunbook.from_dict(rb.to_dict()) == rb


def test_request_forces_the_tool_and_numbers_the_lines() -> None:
    fake = FakeAnthropicAPI().tool_use(good())
    run(fake, model="claude-opus-test")
    assert len(fake.requests) == 1
    request = fake.last
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert fake.sent_api_key() == KEY
    body = request.body
    assert body["model"] == "claude-opus-test"
    assert body["max_tokens"] == 8000
    assert body["system"] == SYSTEM_PROMPT
    assert body["tool_choice"] == {"type": "tool", "name": "record_runbook"}
    assert [t["name"] for t in body["tools"]] == ["record_runbook"]
    schema = body["tools"][0]["input_schema"]
    assert schema["required"] == ["title", "summary", "steps"]
    assert schema["properties"]["steps"]["items"]["properties"]["kind"]["enum"] == [
        "command",
        "manual",
        "decision",
        "escalate",
    ]
    text = fake.user_text()
    assert text.startswith("Format: markdown\n")
    assert " 1| ---\n 2| alerts: [CheckoutLatencyHigh]\n" in text
    assert "13|    $ kubectl get pods -n checkout -l app=checkout\n" in text
    assert "28| 5. If latency stays above 2 seconds, page the payments team.\n</runbook>" in text


def test_custom_system_prompt_is_sent() -> None:
    fake = FakeAnthropicAPI().tool_use(good())
    run(fake, system_prompt="Be brief.")
    assert fake.last.body["system"] == "Be brief."


# --- grounding -----------------------------------------------------------------------------
def test_hallucinated_commands_are_rejected() -> None:
    data = good()
    scale = "kubectl scale deployment/checkout --replicas=10 -n checkout"
    undo = "kubectl rollout undo deployment/checkout -n checkout"
    data["steps"] = [
        step("List the pods", "command", (10, 14), GET, "green"),
        step("Scale the checkout deployment to ten replicas", "command", (20, 25), scale, "yellow"),
        step(
            "Restart the deployment",
            "command",
            (20, 25),
            RESTART,
            "yellow",
            rollback={"command": undo, "text": "Undo the rollout.", "origin": "runbook"},
        ),
        step("", "command", (27, 27), "kubectl drain node-1", "red"),
        step(
            "Did it help?",
            "decision",
            (28, 28),
            branches=[
                branch("pods show OOMKilled", "drain", "s4", {"output_pattern": "OOMKilled"}),
                branch("latency stays high", "page", "s6"),
            ],
        ),
        step("Page the payments team", "escalate", (28, 28)),
    ]
    data["variables"].append({"name": "replicas", "syntax": "$REPLICAS", "source": "ask"})
    rb = run(FakeAnthropicAPI().tool_use(data))
    assert rb.parser == "ai"
    assert steps_of(rb) == [
        ("s1", "command", GET, "green", "rules: read-only"),
        ("s2", "manual", None, None, None),
        ("s3", "command", RESTART, "yellow", "rules: changes state"),
        ("s4", "decision", None, None, None),
        ("s5", "escalate", None, None, None),
    ]
    assert rb.steps[1].text == "Scale the checkout deployment to ten replicas"
    rollback = rb.steps[2].rollback
    assert rollback is not None
    assert (rollback.command, rollback.text, rollback.origin.value) == (
        None,
        "Undo the rollout.",
        "runbook",
    )
    # The goto to the dropped step points nowhere; the invented output pattern is not a check.
    assert [(b.goto, b.check) for b in rb.steps[3].branches] == [(None, None), ("s5", None)]
    assert rb.warnings == [
        f"hallucinated command rejected: {scale}",
        f"hallucinated command rejected: {undo}",
        "hallucinated command rejected: kubectl drain node-1",
    ]
    assert [(v.name, v.syntax) for v in rb.variables] == []
    assert flags_of(rb) == [
        ("hallucinated_command", "s2"),
        ("hallucinated_command", "s3"),
        ("hallucinated_command", None),
    ]
    assert [f.message for f in rb.quality.flags] == [
        "command does not occur in the runbook",
        "rollback command does not occur in the runbook",
        "command does not occur in the runbook",
    ]
    assert rb.quality.score == 100


@pytest.mark.parametrize(
    ("returned", "stored"),
    [
        ("kubectl  get pods\n   -n checkout   -l app=checkout", GET),
        ("$ kubectl get pods -n checkout -l app=checkout", GET),
        ("kubectl rollout restart deployment/checkout \\\n-n checkout", RESTART),
        ("kubectl rollout restart deployment/checkout -n checkout", RESTART),
        ("kubectl delete pod <pod>\t-n checkout", DELETE),
    ],
)
def test_whitespace_differences_are_grounded(returned: str, stored: str) -> None:
    data = good()
    data["steps"] = [step("Do it", "command", (10, 27), returned, "green")]
    rb = run(FakeAnthropicAPI().tool_use(data))
    assert rb.parser == "ai"
    assert rb.warnings == []
    assert [s.command for s in rb.steps] == [stored]  # the source's own text


def test_command_cut_out_of_a_longer_one_is_rejected() -> None:
    source = "# Clear a stuck pod\n\nTry it first: `kubectl delete pod web-0 --dry-run=client`\n"
    data = good()
    data["steps"] = [step("Delete the pod", "command", (3, 3), "kubectl delete pod web-0", "red")]
    data["variables"] = []
    rb = run(FakeAnthropicAPI().tool_use(data), source)
    assert steps_of(rb) == [("s1", "manual", None, None, None)]
    assert rb.warnings == ["truncated command rejected: kubectl delete pod web-0"]
    assert [(f.code, f.step_id, f.message) for f in rb.quality.flags] == [
        ("no_trigger", None, NO_TRIGGER),
        (
            "hallucinated_command",
            "s1",
            "command is only part of `kubectl delete pod web-0 --dry-run=client` in the runbook",
        ),
    ]


def test_html_commands_are_grounded_after_unescaping() -> None:
    html = (
        "<h1>Queue backlog</h1>\n<p>Check the consumers:</p>\n"
        "<pre><code>kubectl get pods -n queue &amp;&amp; kubectl top pods -n queue</code></pre>\n"
    )
    command = "kubectl get pods -n queue && kubectl top pods -n queue"
    data = good()
    data["steps"] = [step("Check the consumers", "command", (3, 5), command, "green")]
    fake = FakeAnthropicAPI().tool_use(data)
    rb = run(fake, html, "html")
    assert steps_of(rb) == [("s1", "command", command, "green", "rules: read-only")]
    assert fake.user_text().startswith("Format: html, converted to markdown\n")
    assert "&amp;" not in fake.user_text()


# --- risk ----------------------------------------------------------------------------------
RISKY = (
    "# Cache recovery\n\n"
    "1. Restart the cache: `systemctl restart memcached`\n"
    "2. Remove the stuck pod: `kubectl delete pod x`\n"
)


def test_ai_may_raise_risk_but_never_lower_it() -> None:
    data = good()
    data["steps"] = [
        step("Restart the cache", "command", (3, 3), "systemctl restart memcached", "red"),
        step("Remove the stuck pod", "command", (4, 4), "kubectl delete pod x", "green"),
        # Calling a shell command SQL must not route it to the lenient SQL rules.
        step("Remove it again", "command", (4, 4), "kubectl delete pod x", "green", language="sql"),
    ]
    data["steps"][0]["risk_reason"] = "a restart drops every cached session"
    rb = run(FakeAnthropicAPI().tool_use(data), RISKY)
    assert steps_of(rb) == [
        (
            "s1",
            "command",
            "systemctl restart memcached",
            "red",
            "AI: a restart drops every cached session (rules said yellow: changes state)",
        ),
        ("s2", "command", "kubectl delete pod x", "red", "rules: deletes"),
        ("s3", "command", "kubectl delete pod x", "red", "rules: deletes"),
    ]


# --- fallback ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(steps="kubectl get pods"), "steps: expected a list"),
        (lambda d: d.pop("title"), "title: expected a string"),
        (lambda d: d["steps"][0].update(kind="run"), "steps[0].kind: unknown value 'run'"),
        (lambda d: d["steps"][1].pop("source"), "steps[1].source: expected an object"),
        (lambda d: d["steps"][0].update(command=42), "steps[0].command: expected a string"),
        (
            lambda d: d["steps"][0]["source"].update(start_line="10"),
            "steps[0].source.start_line: expected an integer",
        ),
        (lambda d: d.update(triggers=["CheckoutLatencyHigh"]), "triggers: expected an object"),
    ],
)
def test_malformed_tool_input_falls_back(mutate: Any, reason: str) -> None:
    data = good()
    mutate(data)
    rb = run(FakeAnthropicAPI().tool_use(data))
    assert rb.parser == "deterministic"
    assert rb.to_dict() == fallback_expected(RUNBOOK, "markdown", f"invalid AI output: {reason}")


@pytest.mark.parametrize(
    ("status", "error_type", "reason", "attempts"),
    [
        (529, "overloaded_error", "HTTP 529 overloaded_error", 2),
        (500, "api_error", "HTTP 500 api_error", 2),
        (400, "invalid_request_error", "HTTP 400 invalid_request_error", 1),
    ],
)
def test_api_errors_fall_back(status: int, error_type: str, reason: str, attempts: int) -> None:
    fake = FakeAnthropicAPI().error(status, error_type, "Overloaded")
    rb = run(fake)
    assert len(fake.requests) == attempts  # max_retries=1: retryable errors are tried twice
    assert rb.to_dict() == fallback_expected(RUNBOOK, "markdown", reason)


def test_unauthorised_falls_back_without_leaking_the_key(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeAnthropicAPI().error(401, "authentication_error", f"invalid x-api-key {KEY}")
    with caplog.at_level(logging.DEBUG, logger="ddoc"):
        rb = run(fake)
    assert len(fake.requests) == 1
    assert rb.warnings == [
        "AI parser unavailable (HTTP 401 authentication_error); used the deterministic parser"
    ]
    assert KEY not in repr(rb.to_dict())
    assert KEY not in caplog.text
    assert caplog.messages == [
        "AI parser unavailable (HTTP 401 authentication_error); used the deterministic parser"
    ]
    assert KEY not in repr(AIParserConfig(api_key=KEY))


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (lambda f: f.text("I cannot parse this runbook."), NO_TOOL),
        (lambda f: f.tool_use(good(), name="other_tool"), NO_TOOL),
        (lambda f: f.tool_use(good(), stop_reason="max_tokens"), "answer cut off at max_tokens"),
        (lambda f: f.raw(200, "<html><body>Proxy login</body></html>"), "malformed API response"),
        (lambda f: f.raw(502, "<html>Bad gateway</html>"), "HTTP 502"),
        (lambda f: f.raise_(httpx2.ReadTimeout("read timed out")), "request timed out"),
        (lambda f: f.raise_(httpx2.ConnectError("connection refused")), "connection error"),
    ],
)
def test_unusable_answers_fall_back(script: Any, reason: str) -> None:
    fake = FakeAnthropicAPI()
    script(fake)
    rb = run(fake, max_retries=0)
    assert len(fake.requests) == 1
    assert rb.to_dict() == fallback_expected(RUNBOOK, "markdown", reason)


def test_timeout_is_retried_once_by_default() -> None:
    fake = FakeAnthropicAPI().raise_(httpx2.ReadTimeout("read timed out")).tool_use(good())
    rb = run(fake)
    assert len(fake.requests) == 2
    assert rb.parser == "ai"


def test_too_long_runbook_skips_the_api() -> None:
    fake = FakeAnthropicAPI().tool_use(good())
    rb = run(fake, max_input_chars=100)
    assert fake.requests == []
    reason = "runbook longer than 100 characters"
    assert rb.to_dict() == fallback_expected(RUNBOOK, "markdown", reason)


def test_parse_errors_propagate_before_any_request() -> None:
    fake = FakeAnthropicAPI().tool_use(good())
    with pytest.raises(ParseError, match="runbook is empty"):
        run(fake, "  \n\n")
    with pytest.raises(ParseError, match="unsupported format"):
        run(fake, RUNBOOK, "docx")
    assert fake.requests == []


# --- configuration -------------------------------------------------------------------------
def test_config_from_env() -> None:
    assert ai_config_from_env({}) is None
    assert ai_config_from_env({"DDOC_ANTHROPIC_API_KEY": "  "}) is None
    assert ai_config_from_env({"ANTHROPIC_API_KEY": "k1"}) == AIParserConfig(api_key="k1")
    env = {
        "DDOC_ANTHROPIC_API_KEY": "k2",
        "ANTHROPIC_API_KEY": "k1",
        "DDOC_ANTHROPIC_MODEL": "claude-haiku-4-5",
        "DDOC_ANTHROPIC_BASE_URL": "http://proxy.internal:8080",
    }
    assert ai_config_from_env(env) == AIParserConfig(
        api_key="k2", model="claude-haiku-4-5", base_url="http://proxy.internal:8080"
    )
    assert AIParserConfig(api_key="k").model == "claude-sonnet-4-6"


def test_prompt_file_replaces_the_system_prompt(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Parse runbooks for the ACME platform team.")
    config = ai_config_from_env(
        {"DDOC_ANTHROPIC_API_KEY": "k", "DDOC_ANTHROPIC_PROMPT_FILE": str(prompt)}
    )
    assert config is not None
    assert config.system_prompt == "Parse runbooks for the ACME platform team."


# --- prechecks and verifications ---------------------------------------------------------------
def test_checks_are_grounded_read_only_and_quoted_from_the_runbook() -> None:
    invented = "kubectl get deploy checkout -n checkout"
    data = good()
    restart = data["steps"][2]
    restart["precheck"] = {"command": invented}
    restart["verify"] = {
        "command": GET,
        "expect": {"output_pattern": "Terminating"},
        "within_seconds": 300,
        "interval_seconds": 30,
    }
    data["steps"][4]["verify"] = {"command": GET, "expect": {"output_pattern": "Running"}}
    data["steps"][0]["verify"] = {"command": DELETE}
    data["steps"][0]["precheck"] = {"command": GET, "expect": {"regex": ".*"}}
    rb = run(FakeAnthropicAPI().tool_use(data))
    assert rb.parser == "ai"
    get, _, restarted, _, delete, _ = rb.steps
    assert restarted.precheck is None
    assert restarted.verify is not None
    assert (restarted.verify.command, restarted.verify.expect) == (
        GET,
        {"output_pattern": "Terminating"},
    )
    assert (restarted.verify.within_seconds, restarted.verify.interval_seconds) == (300, 30)
    assert delete.verify is None  # "Running" is not in the runbook
    assert get.verify is None and get.precheck is None  # not read-only; an unknown expectation
    assert rb.warnings == [
        f"check dropped, it is not read-only (rules: deletes): {DELETE}",
        f"hallucinated command rejected (check dropped): {invented}",
        "check dropped, its expected output is not in the runbook: 'Running'",
    ]
    assert ParsedRunbook.from_dict(rb.to_dict()) == rb


def test_front_matter_mitigated_when_survives_the_ai_parse() -> None:
    content = RUNBOOK.replace(
        "alerts: [CheckoutLatencyHigh]",
        "alerts: [CheckoutLatencyHigh]\nmitigated_when:\n  within: 15m",
    )
    data = good()
    for s in data["steps"]:
        s["source"] = {k: v + 2 for k, v in s["source"].items()}
    rb = run(FakeAnthropicAPI().tool_use(data), content)
    assert rb.parser == "ai"
    assert rb.mitigated_when is not None and rb.mitigated_when.within_seconds == 900
