"""The agent's local policy and redaction: load, deny, cap, inject, redact (real subprocesses)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from agent_worker.commands import CommandActivities, OutputLimits
from agent_worker.main import load_agent_policy
from agent_worker.policy import AgentPolicy, PolicyError, decide, load_policy
from ddoc.contracts.execution import CommandRequest
from ddoc.contracts.redact import Redactor

SECRET = "S3cr3tV4lu3!"


def request(command: str, **kwargs: object) -> CommandRequest:
    return CommandRequest(execution_id="ex", step_id="s1", command=command, **kwargs)  # type: ignore[arg-type]


def policy(**kwargs: object) -> AgentPolicy:
    for key in ("allow", "deny"):
        if key in kwargs:
            kwargs[key] = tuple(re.compile(p) for p in kwargs[key])  # type: ignore[attr-defined]
    return AgentPolicy(**kwargs)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


# --- load_policy ---------------------------------------------------------------------------


def test_loads_a_good_policy(tmp_path: Path) -> None:
    (tmp_path / "pgpass").write_text("pg-secret-1\n")
    path = write(
        tmp_path,
        """
allow: ["^kubectl (get|describe|logs) ", "^df "]
deny: ["rm -rf /", "(^|\\\\s)shutdown(\\\\s|$)"]
max_timeout_seconds: 600
inherit_env: false
env: {KUBECONFIG: /etc/ddoc/kubeconfig}
secrets:
  PGPASSWORD: {file: pgpass}
  API_TOKEN: {env: LOCAL_API_TOKEN}
""",
    )
    loaded = load_policy(path, {"LOCAL_API_TOKEN": "tok-12345"})
    assert [p.pattern for p in loaded.allow] == ["^kubectl (get|describe|logs) ", "^df "]
    assert [p.pattern for p in loaded.deny] == ["rm -rf /", "(^|\\s)shutdown(\\s|$)"]
    assert loaded.max_timeout_seconds == 600
    assert loaded.inherit_env is False
    assert loaded.env == {"KUBECONFIG": "/etc/ddoc/kubeconfig"}
    assert loaded.secrets == {"PGPASSWORD": "pg-secret-1", "API_TOKEN": "tok-12345"}


def test_an_empty_mapping_allows_everything(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "{}\n"), {}) == AgentPolicy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('deny: ["ok", "(unclosed"]\n', "deny[1] is not a valid regular expression '(unclosed'"),
        ("secrets: {PGPASSWORD: hunter22}\n", "secrets.PGPASSWORD: inline values are not allowed"),
        ("secrets: {PGPASSWORD: {file: /nonexistent/pgpass}}\n", "secrets.PGPASSWORD: cannot read"),
        ("secrets: {API_TOKEN: {env: NOT_SET_ANYWHERE}}\n", "NOT_SET_ANYWHERE is not set"),
        ("secrets: {X: {file: a, env: b}}\n", "secrets.X must be exactly one of"),
        ("allow: [1]\n", "allow[0] must be a non-empty string"),
        ("deny: 'rm'\n", "deny must be a list"),
        ("max_timeout_seconds: '10'\n", "max_timeout_seconds must be a positive integer"),
        ("max_timeout_seconds: 0\n", "max_timeout_seconds must be a positive integer"),
        ("inherit_env: 'yes'\n", "inherit_env must be true or false"),
        ("env: {PORT: 5432}\n", "env.PORT must be a string"),
        ("env: {'BAD NAME': x}\n", "'BAD NAME' is not a valid environment variable name"),
        ("alow: ['^df ']\n", "unknown key(s) alow"),
        ("- a\n", "the top level must be a mapping"),
        ("", "the file is empty"),
        ("deny: [\n", "not valid YAML"),
    ],
)
def test_bad_policies_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path, {})
    assert str(err.value).startswith(f"agent policy {path}: ")
    assert message in str(err.value)


def test_a_too_short_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "secrets: {PIN: {env: PIN}}\n")
    with pytest.raises(PolicyError, match=r"secrets\.PIN: the value is shorter than 4"):
        load_policy(path, {"PIN": "123"})


def test_agent_reads_the_policy_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "max_timeout_seconds: 5\n")
    assert load_agent_policy({}) is None
    loaded = load_agent_policy({"DDOC_AGENT_POLICY": str(path)})
    assert loaded == AgentPolicy(max_timeout_seconds=5)


# --- decide --------------------------------------------------------------------------------


def test_decide_reasons() -> None:
    p = policy(allow=["^kubectl get ", "^df "], deny=["rm -rf /", "--all-namespaces"])
    assert decide(p, "df -h") is None
    assert decide(p, "kubectl get pods --all-namespaces") == (
        "command matches deny pattern '--all-namespaces'"
    )
    assert decide(p, "reboot") == "command matches no allow pattern"
    assert decide(policy(), "anything at all") is None


def test_decide_checks_substituted_variable_values() -> None:
    p = policy(deny=["rm -rf /"])
    env = {"DDOC_VAR_X": "rm -rf /"}
    expected = "command with its variable values substituted matches deny pattern 'rm -rf /'"
    for command in ('sh -c "${DDOC_VAR_X}"', "eval ${DDOC_VAR_X}", "eval $DDOC_VAR_X"):
        assert decide(p, command, env) == expected
    assert decide(p, 'rm -rf "${DDOC_VAR_DIR}"', {"DDOC_VAR_DIR": "/"}) == expected
    assert decide(p, 'ls "${DDOC_VAR_X}"', {"DDOC_VAR_X": "/tmp"}) is None


# --- the activity under a policy -----------------------------------------------------------


async def test_a_denied_command_does_not_run(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    commands = CommandActivities(policy=policy(deny=["^touch "]))
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(commands.run_command, request(f"touch {sentinel}"))
    assert err.value.type == "PolicyDenied"
    assert err.value.non_retryable is True
    assert err.value.message == (
        "denied by the agent's local policy: command matches deny pattern '^touch '"
    )
    assert not sentinel.exists()


async def test_a_command_matching_no_allow_pattern_is_denied(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    commands = CommandActivities(policy=policy(allow=["^echo "]))
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(commands.run_command, request(f"touch {sentinel}"))
    assert err.value.type == "PolicyDenied" and err.value.non_retryable is True
    assert (
        err.value.message == "denied by the agent's local policy: command matches no allow pattern"
    )
    assert not sentinel.exists()
    result = await ActivityEnvironment().run(commands.run_command, request("echo fine"))
    assert (result.exit_code, result.output) == (0, "fine\n")


async def test_a_value_cannot_smuggle_a_denied_command(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    commands = CommandActivities(policy=policy(deny=["rm -rf /"]))
    value = f"rm -rf /nonexistent-ddoc-dir; touch {sentinel}"
    req = request('eval "${DDOC_VAR_X}"', env={"DDOC_VAR_X": value})
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(commands.run_command, req)
    assert err.value.type == "PolicyDenied"
    assert err.value.message == (
        "denied by the agent's local policy: command with its variable values substituted "
        "matches deny pattern 'rm -rf /'"
    )
    assert not sentinel.exists()


async def test_the_policy_caps_the_timeout() -> None:
    commands = CommandActivities(policy=policy(max_timeout_seconds=1))
    started = time.monotonic()
    result = await ActivityEnvironment().run(
        commands.run_command, request("sleep 30", timeout_seconds=30)
    )
    assert result.timed_out is True and result.exit_code == 124
    assert time.monotonic() - started < 10


async def test_secrets_are_injected_and_redacted() -> None:
    commands = CommandActivities(policy=policy(secrets={"PGPASSWORD": SECRET}))
    result = await ActivityEnvironment().run(
        commands.run_command,
        request('echo "$PGPASSWORD"; echo "again:$PGPASSWORD."', env={"PGPASSWORD": "x"}),
    )
    assert result.exit_code == 0
    assert result.output == "[REDACTED:PGPASSWORD]\nagain:[REDACTED:PGPASSWORD].\n"


async def test_policy_env_wins_and_only_variables_pass_from_the_request() -> None:
    commands = CommandActivities(policy=policy(env={"KUBECONFIG": "/etc/kc"}))
    req = request(
        'echo "$KUBECONFIG|$DDOC_VAR_NS|${LD_PRELOAD:-unset}"',
        env={"KUBECONFIG": "/tmp/evil", "DDOC_VAR_NS": "prod", "LD_PRELOAD": "/tmp/x.so"},
    )
    result = await ActivityEnvironment().run(commands.run_command, req)
    assert result.output == "/etc/kc|prod|unset\n"


async def test_a_secret_split_across_the_truncation_boundary_never_leaks() -> None:
    commands = CommandActivities(
        limits=OutputLimits(head_bytes=8, tail_bytes=8),
        policy=policy(secrets={"PGPASSWORD": SECRET}),
    )
    command = (
        "printf 'abcde%s' \"$PGPASSWORD\"; head -c 100 /dev/zero | tr '\\0' x; "
        "printf '%sZZ' \"$PGPASSWORD\""
    )
    result = await ActivityEnvironment().run(commands.run_command, request(command))
    # Head: "abcdeS3c" (a cut prefix); tail: "V4lu3!ZZ" (a cut suffix); 131 - 16 dropped.
    assert result.truncated is True
    assert result.output == (
        "abcde[REDACTED:PGPASSWORD]\n[… 115 bytes of output dropped …]\n[REDACTED:PGPASSWORD]ZZ"
    )


async def test_a_secret_across_head_and_tail_without_truncation_is_redacted_whole() -> None:
    commands = CommandActivities(
        limits=OutputLimits(head_bytes=8, tail_bytes=64),
        policy=policy(secrets={"PGPASSWORD": SECRET}),
    )
    result = await ActivityEnvironment().run(
        commands.run_command, request("printf 'abcde%s!' \"$PGPASSWORD\"")
    )
    assert result.truncated is False
    assert result.output == "abcde[REDACTED:PGPASSWORD]!"


async def test_heartbeats_are_redacted() -> None:
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.extend(details)
    commands = CommandActivities(policy=policy(secrets={"PGPASSWORD": SECRET}))
    await env.run(commands.run_command, request('echo "$PGPASSWORD"; sleep 2.5'))
    assert "[REDACTED:PGPASSWORD]\n" in beats
    assert not any(SECRET in str(b) for b in beats)


async def test_without_inherit_env_the_agent_environment_stays_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_ONLY_VAR", "agent-value")
    command = request('echo "${AGENT_ONLY_VAR:-unset}"; test -n "$PATH" && echo has-path')
    private = CommandActivities(policy=policy(inherit_env=False))
    result = await ActivityEnvironment().run(private.run_command, command)
    assert result.output == "unset\nhas-path\n"
    inherited = CommandActivities(policy=policy(inherit_env=True))
    result = await ActivityEnvironment().run(inherited.run_command, command)
    assert result.output == "agent-value\nhas-path\n"


# --- Redactor ------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
        ('-H "Authorization: Basic Zm9vOmJhcg=="', '-H "Authorization: Basic [REDACTED]"'),
        ("authorization=opaque123 next", "authorization=[REDACTED] next"),
        ("curl -H 'bearer abcdef'", "curl -H 'bearer [REDACTED]'"),
        ("password=hunter2 user=bob", "password=[REDACTED] user=bob"),
        ('{"password": "a b c"}', '{"password": "[REDACTED]"}'),
        ("passwd: xyz", "passwd: [REDACTED]"),
        ("PGPASSWORD=pgpw psql", "PGPASSWORD=[REDACTED] psql"),
        ("key AKIAIOSFODNN7EXAMPLE end", "key [REDACTED] end"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [REDACTED]"),
        ("gh: ghp_" + "a1" * 18 + " done", "gh: [REDACTED] done"),
        ("slack xoxb-123456789012-abcdefABCDEF ok", "slack [REDACTED] ok"),
        (f"jwt {JWT} ok", "jwt [REDACTED] ok"),
        (
            "token=abc&api_key=def secret: s3",
            "token=[REDACTED]&api_key=[REDACTED] secret: [REDACTED]",
        ),
        ("postgres://app:pw123@db:5432/x", "postgres://app:[REDACTED]@db:5432/x"),
        (
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbC=\n-----END RSA PRIVATE KEY-----\nb",
            "a\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\nb",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEow (cut off)",
            "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
        ),
        ("tokens: 5, 3 passed: fine, secretName: x", "tokens: 5, 3 passed: fine, secretName: x"),
        ("password:\nnext line", "password:\nnext line"),
    ],
)
def test_redactor_patterns(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_redactor_secret_values() -> None:
    named = Redactor({"PGPASSWORD": "hunter22", "SHORT": "abc"})
    assert named.redact("x hunter22 y abc") == "x [REDACTED:PGPASSWORD] y abc"
    assert named.redact("PGPASSWORD=hunter22") == "PGPASSWORD=[REDACTED:PGPASSWORD]"
    assert named.redact("Authorization: Bearer hunter22") == (
        "Authorization: Bearer [REDACTED:PGPASSWORD]"
    )
    assert Redactor(["hunter22"]).redact("hunter22hunter22") == "[REDACTED][REDACTED]"
    assert Redactor({"A": "long-secret", "B": "secret"}).redact("long-secret secret") == (
        "[REDACTED:A] [REDACTED:B]"
    )


def test_redactor_cut_edges() -> None:
    r = Redactor({"PG": "hunter22"})
    assert r.redact_fragment("abc hun", cut_end=True) == "abc [REDACTED:PG]"
    assert r.redact_fragment("ter22 ok", cut_start=True) == "[REDACTED:PG] ok"
    assert r.redact_fragment("abc hu", cut_end=True) == "abc hu"  # below MIN_PARTIAL
    assert r.redact("abc hun") == "abc hun"  # an uncut edge is left alone


def test_a_secret_inside_a_marker_is_still_removed() -> None:
    assert Redactor({"NAME": "DACT"}).redact("DACT") == "[REED:NAME]"


secret_values = st.text(min_size=4, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.dictionaries(st.from_regex(r"[A-Z_]{1,8}", fullmatch=True), secret_values),
    filler=st.lists(st.text(max_size=20), max_size=8),
    cut_start=st.booleans(),
    cut_end=st.booleans(),
)
def test_redact_never_raises_and_never_leaks(
    secrets: dict[str, str], filler: list[str], cut_start: bool, cut_end: bool
) -> None:
    # Every secret appears at least once, between arbitrary text (markers' text included).
    values = list(secrets.values())
    text = "".join(f + (values[i % len(values)] if values else "") for i, f in enumerate(filler))
    text += "".join(values) + "[REDACTED:X] password=" + "".join(values)
    out = Redactor(secrets).redact_fragment(text, cut_start=cut_start, cut_end=cut_end)
    assert isinstance(out, str)
    for value in values:
        assert value not in out


@pytest.mark.parametrize("unit", ["a.", "a-", "eyJ.", "a://b:", "password=", "bearer ", "x"])
def test_redact_is_fast_on_adversarial_output(unit: str) -> None:
    text = unit * (65536 // len(unit))
    redactor = Redactor({"PGPASSWORD": SECRET})
    started = time.monotonic()
    redactor.redact_fragment(text, cut_start=True, cut_end=True)
    assert time.monotonic() - started < 2
