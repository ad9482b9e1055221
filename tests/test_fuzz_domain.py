"""Property-based robustness of the domain layer, without HTTP (tests/test_fuzz_http.py covers
the routes): the runbook parser with the real risk classifier, the risk classifier on arbitrary
and shell-shaped command lines, and every webhook body model and normaliser.

Each property is one the code documents (docs/RUNBOOK_SCHEMA.md, docs/RISK_RULES.md, the
docstrings of ddoc/runbooks/parsing and ddoc/alerts/sources); example counts keep the file well
under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ddoc.alerts import sources as alerts
from ddoc.alerts.sources import NormalizedAlert
from ddoc.runbooks.model import ParsedRunbook, RiskClass, RollbackOrigin, StepKind, VariableSource
from ddoc.runbooks.parsing import ParseError, runbook_parser
from ddoc.runbooks.parsing.html import html_to_markdown
from ddoc.runbooks.parsing.source import decode, split_front_matter
from ddoc.runbooks.parsing.variables import mask_placeholders
from ddoc.runbooks.risk import RiskAssessment, classify_command, classify_sql
from tests.alert_payloads import alertmanager_v4, am_alert
from tests.test_fuzz_http import mutate

R = RiskClass.RED

# Any character but NUL (the parser refuses NUL outright: that path is trivial) and lone
# surrogates (not representable in UTF-8 text that could reach the parser).
CHARS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
TEXT = st.text(CHARS, max_size=40)
WORD = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=10)

# --- shell-like command lines ------------------------------------------------------------------

# First words whose risk the classifier knows, plus a few it does not.
TOOLS = [
    "kubectl",
    "helm",
    "psql",
    "redis-cli",
    "curl",
    "aws",
    "terraform",
    "systemctl",
    "docker",
    "git",
    "rm",
    "cat",
    "grep",
    "echo",
    "find",
    "sed",
    "tee",
    "kill",
    "ls",
    "df",
    "journalctl",
    "mysql",
    "frobnicate",
    "./fix.sh",
    "/opt/app/bin/tool",
]
ARGS = [
    "get",
    "delete",
    "pods",
    "-n",
    "prod",
    "-rf",
    "/",
    "/etc/passwd",
    "/tmp/x",
    "--force",
    "-9",
    "stop",
    "restart",
    "status",
    "apply",
    "destroy",
    "-auto-approve",
    "FLUSHALL",
    "INFO",
    "-X",
    "DELETE",
    "-c",
    "'DROP TABLE t'",
    '"select 1"',
    "rollout",
    "-delete",
    "-exec",
    "{}",
    "+",
    "-i",
    "push",
    "--all",
    "$POD",
    "${NS}",
    "<pod>",
    "*",
    "s3://b",
    "rm",
    "--recursive",
]
OPERATORS = [" | ", " && ", " || ", "; ", " & ", "\n", " |& "]
REDIRECTS = ["> /tmp/out", ">> /var/log/x", "> /etc/hosts", "2>&1", "> /dev/null", "< in.txt"]

arg = st.one_of(
    st.sampled_from(ARGS),
    WORD,
    WORD.map(lambda w: f"'{w} {w}'"),
    WORD.map(lambda w: f'"{w} $HOME"'),
    WORD.map(lambda w: f"--{w}={w}"),
)
simple_command = st.builds(
    lambda tool, args, redirect: " ".join([tool, *args, *redirect]),
    st.sampled_from(TOOLS),
    st.lists(arg, max_size=5),
    st.lists(st.sampled_from(REDIRECTS), max_size=1),
)


def _heredoc(tool: str, body: str) -> str:
    return f"{tool} <<'EOF'\n{body}\nEOF"


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Command lines that *start* with a simple command (so prefix wrappers apply to it)."""
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}; ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} $({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} `{p[1]}`"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]} && {{ {p[1]}; }}"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}; if true; then {p[1]}; fi"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}; for x in a b; do {p[1]}; done"),
        inner.map(lambda c: f"FOO=bar {c}"),
        inner.map(lambda c: f"sudo {c}"),
        inner.map(lambda c: f"bash -c {shlex.quote(c)}"),
        inner.map(lambda c: f"echo x | xargs {c}"),
        inner.map(lambda c: f"ssh db1 {shlex.quote(c)}"),
        inner.map(lambda c: f"kubectl exec -it pod -- {c}"),
        inner.map(lambda c: _heredoc("bash", c)),
        inner.map(lambda c: _heredoc("cat", c)),
        inner.map(lambda c: f"{c}  # comment"),
    )


def _nested(depth: int) -> st.SearchStrategy[str]:
    # Depth-bounded rather than st.recursive: nested `bash -c` quoting grows geometrically.
    lines = simple_command
    for _ in range(depth):
        lines = st.one_of(lines, _extend(lines))
    return lines


shell_line = st.deferred(lambda: _nested(3))
command_text = st.one_of(
    shell_line,
    # Near-shell junk: unbalanced quotes and parens, stray operators, any characters.
    st.lists(
        st.one_of(shell_line, st.sampled_from(["'", '"', "(", ")", "`", "$(", "\\", "#", "<<"])),
        min_size=1,
        max_size=5,
    ).map(" ".join),
    st.text(max_size=80),
)

# Wrappers and suffixes docs/RISK_RULES.md lists (unwrapping, splitting on `;`/`&&`/`|`/...,
# subshells, groups, `$( )`, control keywords): none of them may make a line less risky.
MONOTONE: dict[str, Callable[[str], str]] = {
    "sudo": lambda c: f"sudo {c}",
    "sudo -u": lambda c: f"sudo -u postgres {c}",
    "doas": lambda c: f"doas {c}",
    "env": lambda c: f"env FOO=1 {c}",
    "assignment": lambda c: f"FOO=1 {c}",
    "timeout": lambda c: f"timeout 30 {c}",
    "nohup": lambda c: f"nohup {c}",
    "nice": lambda c: f"nice -n 10 {c}",
    "time": lambda c: f"time {c}",
    "bash -c": lambda c: f"bash -c {shlex.quote(c)}",
    "sh -c": lambda c: f"sh -c {shlex.quote(c)}",
    "ssh": lambda c: f"ssh -t db1 {shlex.quote(c)}",
    "eval": lambda c: f"eval {shlex.quote(c)}",
    "&& echo ok": lambda c: f"{c} && echo ok",
    "; echo ok": lambda c: f"{c}; echo ok",
    "|| true": lambda c: f"{c} || true",
    "| cat": lambda c: f"{c} | cat",
    "echo first;": lambda c: f"echo first; {c}",
    "subshell": lambda c: f"({c})",
    "group": lambda c: f"{{ {c}; }}",
    "$()": lambda c: f"echo $({c})",
    "if": lambda c: f"if true; then {c}; fi",
}


def _check_assessment(assessment: RiskAssessment) -> None:
    assert isinstance(assessment.level, RiskClass)
    assert assessment.parts, "an assessment always has at least one part"
    worst = RiskClass.worst([p.level for p in assessment.parts])
    assert assessment.level is worst
    # "its reason is that of the first part at that level"
    assert assessment.reason == next(p for p in assessment.parts if p.level is worst).reason
    for part in assessment.parts:
        assert isinstance(part.level, RiskClass)
        assert isinstance(part.reason, str) and part.reason
        assert isinstance(part.rule, str) and part.rule


@settings(max_examples=600, deadline=None)
@given(command=command_text)
def test_classifier_never_raises_and_reports_the_worst_part(command: str) -> None:
    _check_assessment(classify_command(command))
    _check_assessment(classify_sql(command))


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(exclude_categories=()), max_size=200))
def test_classifier_takes_any_string_even_lone_surrogates(text: str) -> None:
    _check_assessment(classify_command(text))
    _check_assessment(classify_sql(text))


@settings(max_examples=600, deadline=None)
@given(command=shell_line, wrapper=st.sampled_from(sorted(MONOTONE)))
def test_wrapping_never_lowers_the_risk(command: str, wrapper: str) -> None:
    before = classify_command(command).level
    wrapped = MONOTONE[wrapper](command)
    after = classify_command(wrapped).level
    assert after.rank >= before.rank, (wrapper, command, wrapped, before, after)


@settings(max_examples=400, deadline=None)
@given(command=shell_line, red=st.sampled_from(["rm -rf /data", "kubectl delete ns prod"]))
def test_a_red_command_anywhere_in_a_line_makes_it_red(command: str, red: str) -> None:
    # Not after a here-document or a comment: there the shell itself (bash -c, as the agent
    # runs commands) reads the appended text as the document's body or the comment, and the
    # classifier rightly follows it (tests/test_risk.py leaves heredocs out for this reason).
    assume("<<" not in command and "#" not in command)
    for line in (f"{command}; {red}", f"{command}\n{red}", f"{red} && {command}"):
        assert classify_command(line).level is R, line


SQL_STATEMENTS = st.sampled_from(
    [
        "SELECT 1",
        "SELECT * FROM orders WHERE id = 4",
        "UPDATE t SET a = 1 WHERE id = 2",
        "UPDATE t SET a = 1",
        "DELETE FROM sessions",
        "DELETE FROM sessions WHERE expires_at < now()",
        "DROP TABLE t",
        "TRUNCATE t",
        "VACUUM orders",
        "SELECT pg_terminate_backend(42)",
        "EXPLAIN ANALYZE DELETE FROM t",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "INSERT INTO t VALUES (1)",
        "ALTER TABLE t DROP COLUMN c",
        "SELECT 'a;b', $$x; DROP TABLE y$$",
        "\\dt",
        "\\x",
        "-- DROP TABLE t",
        "SET statement_timeout = 0",
    ]
)


@settings(max_examples=150, deadline=None)
@given(statements=st.lists(SQL_STATEMENTS, min_size=1, max_size=4))
def test_sql_composition_and_psql_c_never_lower_the_risk(statements: list[str]) -> None:
    sql = ";\n".join(statements)
    whole = classify_sql(sql)
    _check_assessment(whole)
    # A statement alone is rated as it would be on its own; a comment alone is "empty SQL"
    # (yellow: nothing proven read-only), which says nothing about a script around it.
    alone = [classify_sql(s) for s in statements]
    levels = [a.level.rank for a in alone if a.parts[0].rule != "sql.empty"]
    assert whole.level.rank >= max(levels, default=0), (sql, whole)
    # `psql -c SQL` is classified statement by statement: no lower than the SQL itself.
    shell = classify_command(f"psql -h db -c {shlex.quote(sql)}")
    assert shell.level.rank >= whole.level.rank, (sql, whole.level, shell.level)


# --- the runbook parser --------------------------------------------------------------------------

KNOWN_COMMANDS = st.sampled_from(
    [
        "kubectl -n $NAMESPACE get pods",
        "kubectl delete pod $POD",
        "kubectl cordon <node>",
        "systemctl restart nginx",
        "sudo systemctl stop postgresql",
        "helm upgrade api ./chart -n prod",
        "psql -c 'select 1'",
        "rm -rf /var/lib/app/cache",
        "curl -s http://localhost:9090/metrics | jq .",
        "redis-cli FLUSHALL",
        "df -h",
        "aws s3 ls s3://bucket",
        "echo {{ $labels.instance }}",
        "./restart.sh --now",
    ]
)
COMMAND = st.one_of(KNOWN_COMMANDS, simple_command.filter(lambda c: "\n" not in c))
SQL = SQL_STATEMENTS.map(lambda s: s + ";")
INFO = st.sampled_from(
    ["bash", "sh", "console", "shell-session", "sql", "psql", "yaml", "json", "text", "", "redis"]
)


def _fence(info: str, lines: list[str], tilde: bool) -> str:
    fence = "~~~" if tilde else "```"
    return f"{fence}{info}\n" + "\n".join(lines) + f"\n{fence}"


FRAGMENT = st.one_of(
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 6), TEXT),
    st.sampled_from(
        [
            "## Diagnosis",
            "## Mitigation",
            "## Rollback",
            "## Prerequisites",
            "## References",
            "### If the pod is Pending",
            "### If the pod is Running",
            "Escalate to the DBA team.",
            "Check the dashboard.",
            "Otherwise, page the on-call.",
            "---",
            "",
            "",
        ]
    ),
    st.builds(lambda n, t, c: f"{n}. {t} `{c}`", st.integers(0, 12), TEXT, COMMAND),
    st.builds(lambda t, c: f"- {t} `{c}`", TEXT, COMMAND),
    st.builds(lambda t, c: f"  - nested {t}: `{c}`", TEXT, COMMAND),
    st.builds(lambda t: f"* {t}", TEXT),
    st.builds(_fence, INFO, st.lists(st.one_of(COMMAND, SQL, TEXT), max_size=4), st.booleans()),
    st.builds(lambda c: _fence("console", [f"$ {c}", "output line", f"# {c}"], False), COMMAND),
    st.builds(lambda c: f"$ {c}", COMMAND),
    st.builds(lambda c: f"Run: {c}", COMMAND),
    st.builds(lambda c: f"    {c}", COMMAND),
    st.builds(lambda c: f"\t{c}", COMMAND),
    st.builds(lambda t, c: f"| {t} | `{c}` |\n|---|---|\n| a | `{c}` |", TEXT, COMMAND),
    st.builds(lambda t, c: f"> {t} `{c}`", TEXT, COMMAND),
    st.builds(
        lambda c, d, t: f"If the output contains `{t}`, run `{c}`; otherwise run `{d}`.",
        COMMAND,
        COMMAND,
        WORD,
    ),
    st.builds(lambda c: f"To undo, run `{c}`.", COMMAND),
    st.builds(lambda c: f"If `{c}` returns non-zero, go to step 2.", COMMAND),
    st.builds(lambda t: f"---\ntitle: {t}\nalerts: [{t}]\nlabels: {{a: b}}\n---", WORD),
    st.builds(lambda t: f"``{t}``", TEXT),
    st.builds(lambda c: f"<p>Run <code>{c}</code></p>", COMMAND),
    st.builds(lambda c: f"<pre>{c}</pre>", COMMAND),
    st.builds(lambda t, c: f"<ol><li>{t} <code>{c}</code></li></ol>", TEXT, COMMAND),
    st.builds(
        lambda c: (
            '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash'
            f"</ac:parameter><ac:plain-text-body><![CDATA[{c}]]></ac:plain-text-body>"
            "</ac:structured-macro>"
        ),
        COMMAND,
    ),
    st.sampled_from(["<h2>", "</h2>", "<table><tr><td>", "<br>", "<![CDATA[", "]]>", "&amp;"]),
    # Code inside containers: list items, blockquotes, tab indentation.
    st.builds(lambda t, c: f"1. {t}:\n\n   ```bash\n   {c}\n   ```", TEXT, COMMAND),
    st.builds(lambda c: f"- Restart it\n\n      {c}", COMMAND),
    st.builds(lambda c: f"> ```sh\n> {c}\n> ```", COMMAND),
    st.builds(lambda c: f"-\tRun\n\t```\n\t{c}\n\t```", COMMAND),
    # Transcripts, prompts of other tools, continuations, heredocs, numbered script comments.
    st.builds(
        lambda c, d: _fence("", [f"user@host:~$ {c} \\", "  --flag", "out", f"$ {d}"], False),
        COMMAND,
        COMMAND,
    ),
    st.builds(lambda q: _fence("", [f"db=# {q}", "db-# LIMIT 1;", "(1 row)"], False), SQL),
    st.builds(lambda k: _fence("", [f"127.0.0.1:6379> GET {k}", '"v"'], False), WORD),
    st.builds(lambda c: _fence("bash", [f"{c} <<'EOF'", "body $X", "EOF"], False), COMMAND),
    st.builds(
        lambda c, d: _fence("bash", ["# 1. First", c, "# 2. Then", d], False), COMMAND, COMMAND
    ),
    # Characters Python (not markdown) treats as line breaks, and other oddities.
    st.builds(
        lambda sep, c: f"Run `{c}`{sep}then `{c}`",
        st.sampled_from(["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\r", "\t"]),
        COMMAND,
    ),
    st.builds(lambda c: f"Run `\u200b{c}\u200d` \u202eevil\u202c", COMMAND),
    st.builds(lambda n, c: "x" * n + f" `{c}`", st.integers(500, 5000), COMMAND),
    st.text(CHARS, min_size=200, max_size=1500),
    TEXT,
)
DOCUMENT = st.one_of(
    st.lists(FRAGMENT, max_size=20).map("\n".join),
    st.lists(FRAGMENT, max_size=12).map("\r\n".join),
    st.text(CHARS, max_size=300),
)

PARSE = runbook_parser(None)
LANGUAGES = {"kubectl", "helm", "sql", "http", "aws", "gcloud", "az", "terraform", "redis", "shell"}
FLAG_CODES = {
    "no_actionable_step",
    "no_trigger",
    "red_without_rollback",
    "vague_step",
    "undefined_variable",
}


def occurs_verbatim(command: str, source: str) -> bool:
    """docs/RUNBOOK_SCHEMA.md, "Commands are verbatim": a one-line command sits inside a source
    line; each line of a longer one is the tail of consecutive source lines (after prompts and
    container indentation), trailing whitespace aside."""
    src = source.split("\n")
    lines = command.split("\n")
    if len(lines) == 1:
        return any(command in line for line in src)
    return any(
        all(src[k + i].rstrip().endswith(line.rstrip()) for i, line in enumerate(lines))
        for k in range(len(src) - len(lines) + 1)
    )


def grounding_text(document: str, fmt: str) -> str:
    """The text that step spans and commands refer to: the decoded document with front-matter
    blanked, or for HTML the markdown it is converted to."""
    text = decode(document, 2_000_000)
    if fmt == "html":
        return html_to_markdown(text)[0]
    return split_front_matter(text).body


def check_runbook(rb: ParsedRunbook, source: str) -> None:
    assert rb.parser == "deterministic" and rb.schema_version == 1
    assert isinstance(rb.title, str) and rb.title.strip() and len(rb.title) <= 200
    assert isinstance(rb.summary, str) and len(rb.summary) <= 501
    ids = [s.id for s in rb.steps]
    assert ids == [f"s{i}" for i in range(1, len(ids) + 1)], ids  # unique, in document order
    n_lines = source.count("\n") + 1
    for step in rb.steps:
        assert isinstance(step.kind, StepKind)
        assert step.text.strip(), step
        assert 1 <= step.source.start_line <= step.source.end_line <= n_lines, (step, n_lines)
        if step.command is None:
            assert step.risk is None and step.risk_reason is None and step.language is None
        else:
            assert step.kind is StepKind.COMMAND, step
            assert isinstance(step.risk, RiskClass) and step.risk_reason, step
            assert step.language in LANGUAGES, step
            assert occurs_verbatim(step.command, source), (step.command, source)
            # The default classifier is ddoc.runbooks.risk: classify_sql for SQL, else
            # classify_command,
            # with placeholders read as plain words.
            opaque = mask_placeholders(step.command)
            expected = classify_sql(opaque) if step.language == "sql" else classify_command(opaque)
            # A remark in the runbook ("this wipes the queue") may raise a step, never lower it.
            warned = step.risk is RiskClass.RED and step.risk_reason.startswith(
                "the runbook warns: "
            )
            assert step.risk is expected.level or warned, (step.command, step.risk, expected)
        if step.rollback is not None:
            assert isinstance(step.rollback.origin, RollbackOrigin)
        if step.branches:
            assert step.kind is StepKind.DECISION, step
        for branch in step.branches:
            assert branch.goto is None or branch.goto in ids, (branch, ids)
    names = [v.name for v in rb.variables]
    assert len(names) == len(set(names)), names
    for variable in rb.variables:
        assert isinstance(variable.source, VariableSource)
        assert (variable.key is None) == (variable.source is VariableSource.ASK), variable
    assert 0 <= rb.quality.score <= 100
    for flag in rb.quality.flags:
        assert flag.code in FLAG_CODES, flag
        assert flag.step_id is None or flag.step_id in ids, flag
    data = rb.to_dict()
    json.dumps(data, allow_nan=False)  # stored as JSON
    assert ParsedRunbook.from_dict(data).to_dict() == data  # "from_dict() reads it back"


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=DOCUMENT)
def test_parser_refuses_only_with_parse_error_and_stays_grounded(document: str) -> None:
    for fmt in ("markdown", "text", "html"):
        try:
            rb = PARSE(document, fmt, "runbooks/fuzz.md", None)
        except ParseError:
            continue
        check_runbook(rb, grounding_text(document, fmt))
        assert PARSE(document, fmt, "runbooks/fuzz.md", None).to_dict() == rb.to_dict()


# --- webhook bodies and their normalisers --------------------------------------------------------

NORMALISERS: dict[str, tuple[type[BaseModel], Callable[[Any], list[NormalizedAlert]]]] = {
    "alertmanager": (alerts.AlertmanagerWebhook, alerts.normalize_alertmanager),
    "grafana": (alerts.GrafanaWebhook, alerts.normalize_grafana),
    "pagerduty": (alerts.PagerDutyWebhook, alerts.normalize_pagerduty),
    "opsgenie": (alerts.OpsgenieWebhook, alerts.normalize_opsgenie),
    "generic": (alerts.GenericAlert, alerts.normalize_generic),
}
VALID: dict[str, Any] = {
    "alertmanager": alertmanager_v4(
        am_alert("DiskFull", fingerprint="f0", service="db", severity="critical"),
        am_alert("DiskFull", fingerprint="", status="resolved", instance="db-2"),
    ),
    "grafana": {
        **alertmanager_v4(am_alert("HighLatency", fingerprint="f1", env="prod")),
        "version": "1",
        "orgId": 1,
        "title": "[FIRING:1] HighLatency",
        "state": "alerting",
    },
    "pagerduty": {
        "event": {
            "id": "E1",
            "event_type": "incident.triggered",
            "resource_type": "incident",
            "occurred_at": "2026-11-25T03:00:00Z",
            "data": {
                "id": "Q1",
                "title": "checkout down",
                "incident_key": "k1",
                "urgency": "high",
                "service": {"id": "S1", "summary": "checkout"},
                "priority": {"summary": "P1"},
                "created_at": "2026-11-25T03:00:00Z",
                "html_url": "https://pd.example/incidents/Q1",
            },
        }
    },
    "opsgenie": {
        "action": "Create",
        "alert": {
            "alertId": "a1",
            "message": "queue backlog",
            "alias": "backlog",
            "tags": ["service:queue", "prod"],
            "details": {"env": "prod"},
            "priority": "P2",
        },
    },
    "generic": {
        "title": "fuzz",
        "service": "api",
        "labels": {"alertname": "Fuzz", "n": 3, "ok": True},
        "status": "firing",
    },
}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


# Paths into the valid bodies: their own keys (so mutations reach nested fields), list
# indexes, and arbitrary names.
PATH = st.lists(
    st.sampled_from(sorted(_keys(VALID))) | st.integers(0, 3) | st.text(max_size=10),
    max_size=5,
)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and +-inf too: Python's json writes them, pydantic reads them
    | st.text(max_size=20)
    | st.sampled_from(["firing", "resolved", "incident.triggered", "Create", "Close", ""])
    | st.sampled_from(["2026-11-25T03:00:00Z", "0001-01-01T00:00:00Z", "1e308", "-1"])
    # Edge values worth trying often: non-finite numbers, NUL, huge integers, blank strings.
    | st.sampled_from([math.nan, math.inf, -math.inf, "\x00", "a\x00b", " ", 2**70, -(2**63)])
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["alerts", "status", "labels", "annotations", "event", "data", "alert", "title"]
            )
            | st.text(max_size=10),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def normalise(source: str, raw: bytes) -> list[NormalizedAlert] | None:
    """The route's pipeline (api/routes/webhooks.py parse_body) without HTTP: validate the
    JSON into the source's model, then normalise. `None` when the body is refused with
    pydantic's ValidationError, the one documented refusal ("a wrong shape is a 422")."""
    model, normalize = NORMALISERS[source]
    try:
        return normalize(model.model_validate_json(raw))
    except ValidationError:
        return None


def check_alerts(source: str, raw: bytes, result: list[NormalizedAlert]) -> None:
    body = json.loads(raw)
    if source in ("alertmanager", "grafana"):
        assert len(result) == len(body["alerts"])
    else:
        assert len(result) <= 1
    for alert in result:
        assert isinstance(alert, NormalizedAlert)
        assert alert.source == source
        assert alert.status in ("firing", "resolved"), alert.status
        assert isinstance(alert.dedup_key, str)
        assert isinstance(alert.title, str)
        for name in ("description", "service", "severity", "environment", "alert_name"):
            assert _optional_str(getattr(alert, name)), (name, alert)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.annotations.items())
        assert all(isinstance(link, str) and link for link in alert.links)
        assert alert.starts_at is None or isinstance(alert.starts_at, datetime)
        assert isinstance(alert.raw, dict) and isinstance(alert.extra, dict)
        # `raw`, labels and annotations are stored as JSON (jsonb): they must be plain JSON.
        json.dumps([alert.raw, alert.labels, alert.annotations], allow_nan=False)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(NORMALISERS)), value=JSON)
def test_normalisers_take_any_json(source: str, value: Any) -> None:
    raw = json.dumps(value).encode()
    result = normalise(source, raw)
    if result is not None:
        check_alerts(source, raw, result)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path into `value`, containers and leaves."""
    out = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            out += _paths(inner, (*prefix, index))
    return out


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid body of some source with one to three of its fields (or new ones) replaced by
    arbitrary JSON."""
    source = draw(st.sampled_from(sorted(NORMALISERS)))
    body = VALID[source]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(VALID[source])[1:]).map(list) | PATH)
        body = mutate(body, path, draw(st.one_of(SCALAR, SCALAR, JSON)))
    return source, body


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_bodies())
def test_normalisers_take_mutated_valid_bodies(case: tuple[str, Any]) -> None:
    source, body = case
    raw = json.dumps(body).encode()
    result = normalise(source, raw)
    if result is not None:
        check_alerts(source, raw, result)


@settings(max_examples=200, deadline=None)
@given(source=st.sampled_from(sorted(NORMALISERS)), raw=st.binary(max_size=200))
def test_normalisers_take_any_bytes(source: str, raw: bytes) -> None:
    model, normalize = NORMALISERS[source]
    with contextlib.suppress(ValidationError):
        normalize(model.model_validate_json(raw))


EDGE_VALUES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    2**70,
    -(2**63),
    0,
    True,
    None,
    "",
    " ",
    "\x00",
    "x" * 10_000,
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "2026-13-45T25:61:00Z",
    [],
    {},
    [None],
    {"": None},
]


@pytest.mark.parametrize("source", sorted(VALID))
def test_normalisers_take_an_edge_value_in_every_field(source: str) -> None:
    """Systematically: each field of a valid body (and the body itself) replaced by each edge
    value. Random mutations reach these combinations too rarely."""
    problems = []
    for path in _paths(VALID[source]):
        for value in EDGE_VALUES:
            raw = json.dumps(mutate(VALID[source], list(path), value)).encode()
            try:
                result = normalise(source, raw)
                if result is not None:
                    check_alerts(source, raw, result)
            except Exception as exc:  # collect them all: one report per field and value
                problems.append(f"{list(path)} = {value!r:.40}: {type(exc).__name__}: {exc}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_valid_bodies_normalise() -> None:
    """The seeds of the mutations above are accepted (else the mutations test little)."""
    for source, body in VALID.items():
        raw = json.dumps(body).encode()
        result = normalise(source, raw)
        assert result, source
        check_alerts(source, raw, result)


def test_every_webhook_source_is_fuzzed() -> None:
    from api.routes.webhooks import SOURCES

    assert set(SOURCES) == set(NORMALISERS)
    for name, source in SOURCES.items():
        assert (source.model, source.normalize) == NORMALISERS[name]
