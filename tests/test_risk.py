"""ddoc.runbooks.risk: the command table, exact verdicts, tenant rules, robustness, properties."""

from __future__ import annotations

import random
import shlex
import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk import (
    PartAssessment,
    RiskAssessment,
    RiskRulesError,
    RuleSet,
    classify_command,
    classify_sql,
    load_tenant_rules,
)
from tests.risk_table import TABLE

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED

# --- the table -------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "expected"), TABLE, ids=[c[:60] for c, _ in TABLE])
def test_table(command: str, expected: str) -> None:
    assessment = classify_command(command)
    assert assessment.level.value == expected
    worst = [p for p in assessment.parts if p.level is assessment.level]
    assert assessment.reason == worst[0].reason


def test_table_is_big_and_has_the_required_rows() -> None:
    assert len(TABLE) >= 170
    rows = dict(TABLE)
    required = {
        "kubectl get pods -o name | xargs kubectl delete": "red",
        'psql -c "DELETE FROM sessions"': "red",
        "echo 1 > /proc/sys/vm/drop_caches": "red",
        "aws s3 rm s3://b --recursive": "red",
        "ssh db1 'sudo systemctl stop postgresql'": "red",
        "kubectl exec -it pod -- rm -rf /data": "red",
        'bash -c "kubectl get pods && kubectl delete ns x"': "red",
        'psql -c "DELETE FROM sessions WHERE expires_at < now()"': "yellow",
        "kubectl logs pod | grep error": "green",
        "curl -s http://localhost:9090/api/v1/alerts | jq .": "green",
        "sudo -u postgres psql -c 'select 1'": "green",
        "for p in $(kubectl get pods -o name); do kubectl delete $p; done": "red",
        "echo $(kubectl get pods -o name)": "green",
        "frobnicate --now": "yellow",
        "df -h > /tmp/report.txt": "yellow",
    }
    for command, expected in required.items():
        assert rows[command] == expected


# --- exact verdicts --------------------------------------------------------------------------


def _parts(command: str) -> list[tuple[str, RiskClass, str]]:
    return [(p.command, p.level, p.rule) for p in classify_command(command).parts]


def test_pipeline_parts_are_reported_per_simple_command() -> None:
    assessment = classify_command("kubectl get pods -o name | xargs kubectl delete")
    assert assessment == RiskAssessment(
        level=R,
        reason="kubectl delete removes resources",
        parts=(
            PartAssessment("kubectl get pods -o name", G, "kubectl get only reads", "kubectl.get"),
            PartAssessment(
                "kubectl delete", R, "kubectl delete removes resources", "kubectl.delete"
            ),
        ),
    )


def test_redirect_to_proc_is_red_and_names_the_rule() -> None:
    assert _parts("echo 1 > /proc/sys/vm/drop_caches") == [
        ("echo 1 > /proc/sys/vm/drop_caches", R, "shell.redirect.system"),
        ("echo 1", G, "host.echo"),
    ]


def test_harmless_redirects_add_nothing() -> None:
    assert _parts("ls -la /etc > /dev/null 2>&1") == [("ls -la /etc", G, "host.ls")]
    assert _parts("kubectl get pods 2>/dev/null < input.txt") == [
        ("kubectl get pods", G, "kubectl.get")
    ]


def test_wrappers_are_unwrapped_to_the_inner_command() -> None:
    assert _parts("ssh db1 'sudo systemctl stop postgresql'") == [
        ("systemctl stop postgresql", R, "systemctl.stop")
    ]
    assert _parts("env FOO=1 sudo -E nice -n 10 timeout 60 rm -rf /srv/cache") == [
        ("rm -rf /srv/cache", R, "host.rm")
    ]
    assert _parts("kubectl exec -it pod -- rm -rf /data") == [("rm -rf /data", R, "host.rm")]


def test_sql_inside_psql_is_classified_per_statement() -> None:
    assert _parts('psql -c "BEGIN; DELETE FROM sessions; COMMIT"') == [
        ("BEGIN", G, "sql.transaction"),
        ("DELETE FROM sessions", R, "sql.delete.no_where"),
        ("COMMIT", G, "sql.transaction"),
    ]
    assert _parts("psql -f fix.sql") == [("psql -f fix.sql", Y, "sql.file")]


def test_substitutions_and_loops_are_classified() -> None:
    assert _parts("for p in $(kubectl get pods -o name); do kubectl delete $p; done") == [
        ("kubectl delete $p", R, "kubectl.delete"),
        ("kubectl get pods -o name", G, "kubectl.get"),
    ]


def test_unknown_and_empty_commands_are_yellow() -> None:
    unknown = classify_command("frobnicate --now")
    assert (unknown.level, unknown.reason) == (Y, "unknown command: not proven read-only")
    for empty in ("", "   ", "\n\n", "# just a comment"):
        assessment = classify_command(empty)
        assert (assessment.level, assessment.reason) == (Y, "empty command")
    script = classify_command("./fix.sh --now")
    assert (script.level, script.reason) == (Y, "runs a script whose effect is unknown")


def test_unbalanced_quotes_fall_back_without_hiding_commands() -> None:
    assert _parts('echo "unbalanced; rm -rf /') == [
        ("echo unbalanced", G, "host.echo"),
        ("rm -rf /", R, "host.rm"),
    ]
    assert classify_command("echo 'it''s fine").level is G
    assert classify_command("kubectl get pods '").level is G


def test_repeated_parts_are_reported_once() -> None:
    assert _parts("uptime; uptime && uptime") == [("uptime", G, "host.uptime")]


@pytest.mark.parametrize(
    ("sql", "level", "rule"),
    [
        ("SELECT * FROM orders LIMIT 10", G, "sql.select"),
        ("EXPLAIN SELECT 1", G, "sql.explain"),
        ("EXPLAIN ANALYZE DELETE FROM t", R, "sql.delete.no_where"),
        ("EXPLAIN (ANALYZE, BUFFERS) SELECT 1", G, "sql.explain"),
        ("\\d+ users", G, "sql.meta.read"),
        ("SHOW max_connections", G, "sql.show"),
        ("UPDATE t SET a = 1 WHERE 1=1", R, "sql.where_true"),
        ("UPDATE t SET a = 1 WHERE id = 7", Y, "sql.update"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT count(*) FROM d", R, "sql.delete.no_where"),
        ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2", Y, "sql.insert"),
        ("VACUUM FULL orders", Y, "sql.vacuum_full"),
        ("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", Y, "sql.alter"),
        ("ALTER TABLE t DROP CONSTRAINT t_fk", R, "sql.alter.drop"),
        ("SELECT pg_reload_conf()", Y, "sql.func.pg_reload_conf"),
        ("SELECT 'DROP TABLE x' AS harmless", G, "sql.select"),
        ("COPY (SELECT * FROM t) TO STDOUT", G, "sql.copy_to_stdout"),
        ("COPY t FROM '/tmp/t.csv'", Y, "sql.copy_from"),
        ("DROP DATABASE app", R, "sql.drop"),
        ("RESET MASTER", R, "sql.reset_replication"),
        ("SELECT * FROM t FOR UPDATE", Y, "sql.select_for_update"),
        ("frobnicate the database", Y, "sql.unknown"),
    ],
)
def test_classify_sql(sql: str, level: RiskClass, rule: str) -> None:
    assessment = classify_sql(sql)
    assert assessment.level is level
    assert next(p.rule for p in assessment.parts if p.level is level) == rule


def test_parser_default_classifier_uses_ddoc_risk() -> None:
    from ddoc.runbooks.parsing.parser import default_classifier

    classify = default_classifier()
    assert classify("kubectl delete pod x", None) == (R, "kubectl delete removes resources")
    assert classify("DELETE FROM t WHERE id = 1", "sql") == (
        Y,
        "DELETE with WHERE changes selected rows",
    )


# --- tenant rules ----------------------------------------------------------------------------

TENANT_YAML = """
rules:
  - id: acme.restart-is-green
    match: "^systemctl restart acme-cache$"
    risk: green
    reason: "acme-cache is stateless; restart is routine"
  - id: acme.scripts-red
    match: "^/opt/acme/bin/"
    risk: red
    reason: "acme scripts touch billing"
  - id: acme.any-acme-yellow
    match: "acme"
    risk: yellow
    reason: "anything else acme is reviewed"
"""


def test_tenant_rule_lowers_with_a_reason() -> None:
    rules = load_tenant_rules(TENANT_YAML)
    assessment = classify_command("sudo systemctl restart acme-cache", rules)
    assert assessment.parts == (
        PartAssessment(
            "systemctl restart acme-cache",
            G,
            "acme-cache is stateless; restart is routine",
            "acme.restart-is-green",
        ),
    )
    # Without tenant rules the built-in class applies.
    assert classify_command("sudo systemctl restart acme-cache").level is Y


def test_tenant_rule_raises_and_first_match_wins() -> None:
    rules = load_tenant_rules(TENANT_YAML)
    raised = classify_command("/opt/acme/bin/rotate --dry-run", rules)
    assert (raised.level, raised.reason, raised.parts[0].rule) == (
        R,
        "acme scripts touch billing",
        "acme.scripts-red",
    )
    # Both later rules match "/opt/acme/bin/…" too; the first one listed decides.
    assert classify_command("ls /opt/acme", rules).parts[0].rule == "acme.any-acme-yellow"
    assert classify_command("ls /opt/acme", rules).level is Y


def test_tenant_rules_apply_per_simple_command() -> None:
    rules = load_tenant_rules(TENANT_YAML)
    assessment = classify_command("systemctl restart acme-cache && rm -rf /tmp/x", rules)
    assert [(p.rule, p.level) for p in assessment.parts] == [
        ("acme.restart-is-green", G),
        ("host.rm", R),
    ]
    # Redirections are judged separately and cannot be lowered by a command rule.
    redirected = classify_command("systemctl restart acme-cache > /etc/motd", rules)
    assert redirected.level is R


def test_a_tenant_rule_decides_a_script_a_shell_runs() -> None:
    rules = load_tenant_rules(
        "rules:\n  - {id: acme.check, match: 'acme/check\\.sh$', risk: green, reason: reads}\n"
    )
    for command in ("sh /opt/acme/check.sh", "bash /opt/acme/check.sh", "/opt/acme/check.sh"):
        assert classify_command(command, rules).parts[0].rule == "acme.check", command
    assert classify_command("sh /opt/other/fix.sh", rules).level is Y


def test_tenant_red_rule_needs_no_reason() -> None:
    rules = load_tenant_rules("rules:\n  - {id: t.red, match: '^uptime', risk: red}\n")
    assessment = classify_command("uptime", rules)
    assert (assessment.level, assessment.reason) == (R, "tenant rule t.red")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rules:\n  - {id: x, match: '^ls', risk: green}\n",
            "rule #1 ('x'): risk 'green' can lower",
        ),
        ("rules:\n  - {id: x, match: '^ls', risk: yellow, reason: ' '}\n", "'reason' is required"),
        (
            "rules:\n  - {id: bad, match: '(unclosed', risk: red}\n",
            "rule #1 ('bad'): invalid regular expression",
        ),
        (
            "rules:\n  - {id: x, match: 'a', risk: purple, reason: r}\n",
            "must be green, yellow or red",
        ),
        ("rules:\n  - {match: 'a', risk: red}\n", "rule #1: 'id' is required"),
        ("rules:\n  - {id: x, risk: red}\n", "rule #1 ('x'): 'match' is required"),
        ("rules:\n  - just a string\n", "rule #1: must be a mapping"),
        ("rules: {id: x}\n", "'rules' must be a list"),
        ("- id: x\n", "must be a mapping with the keys 'rules' and/or 'programs'"),
        ("rules: [\n", "not valid YAML"),
        (
            "rules:\n  - {id: x, match: a, risk: red}\n  - {id: x, match: b, risk: red}\n",
            "rule #2 ('x'): duplicate rule id",
        ),
        ("rules:\n  - {id: x, match: a, risk: red, when: always}\n", "unknown field(s) ['when']"),
    ],
)
def test_bad_tenant_rules_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(RiskRulesError) as info:
        load_tenant_rules(text)
    assert message in str(info.value)


def test_builtin_ruleset_and_empty_tenant_rules() -> None:
    assert RuleSet.builtin().tenant == ()
    assert load_tenant_rules("").tenant == ()
    assert load_tenant_rules("rules: []").tenant == ()


# --- robustness and speed --------------------------------------------------------------------


def _best_of(runs: int, command: str) -> float:
    from ddoc.runbooks.risk.engine import _assess  # uncached, to time the real work

    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        _assess(command, RuleSet.builtin())
        best = min(best, time.perf_counter() - start)
    return best


def test_large_inputs_classify_quickly() -> None:
    rnd = random.Random(7)
    inputs = {
        "printable": "".join(rnd.choices(string.printable, k=100_000)),
        "binary": bytes(rnd.randrange(256) for _ in range(100_000)).decode("latin-1"),
        "script": "kubectl get pods -n prod | grep -v Running\n" * 2400,
        "quotes": "'" * 100_000,
        "substitutions": "$(" * 50_000,
        "nesting": "$(echo " * 10_000 + ")" * 10_000,
        "sql": 'psql -c "' + "SELECT 1; " * 10_000 + '"',
        "pipes": "a|" * 50_000,
        "parens": "(" * 100_000,
    }
    for name, text in inputs.items():
        assert len(text) >= 80_000, name
        # A guard against pathological (exponential) inputs, not a speed measurement: the
        # speed is in bench/risk_speed.py. Typical 100 KB inputs take 20-100 ms.
        assert _best_of(2, text) < 2.0, name


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_text(text: str) -> None:
    assessment = classify_command(text)
    assert assessment.parts
    assert assessment.level is RiskClass.worst([p.level for p in assessment.parts])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_never_raises_on_binary_junk(data: bytes) -> None:
    assert classify_command(data.decode("latin-1")).parts
    assert classify_sql(data.decode("latin-1")).parts


# --- property tests: composing commands never hides the worst part ---------------------------

POOLS = {
    G: [
        "kubectl get pods -n prod",
        "df -h",
        "grep -c ERROR /var/log/app.log",
        "psql -c 'select 1'",
        "curl -s http://localhost:9090/metrics",
        "systemctl status nginx",
        "redis-cli INFO",
        "aws s3 ls s3://b",
        "git status",
        "echo ok",
        "journalctl -u api -n 50",
    ],
    Y: [
        "kubectl rollout restart deploy/api",
        "systemctl restart nginx",
        "frobnicate --now",
        "docker restart api",
        "psql -c 'VACUUM orders'",
        "touch /tmp/marker",
        "kill -HUP 1",
        "helm rollback api 3",
        "df -h > /tmp/report.txt",
    ],
    R: [
        "kubectl delete pod x",
        "rm -rf /data",
        "psql -c 'DROP TABLE t'",
        "redis-cli FLUSHALL",
        "systemctl stop postgresql",
        "terraform destroy",
        "echo 1 > /proc/sys/vm/drop_caches",
        "aws s3 rm s3://b --recursive",
        "git push --force",
    ],
}
SEPARATORS = [" | ", " && ", "; ", " || ", "\n"]
WRAPPERS = [
    lambda c: c,
    lambda c: f"sudo {c}",
    lambda c: f"bash -c {shlex.quote(c)}",
    lambda c: f"ssh db1 {shlex.quote(c)}",
    lambda c: f"xargs {c}",
    lambda c: f"timeout 30 {c}",
]

XARGS = 4  # the wrapper that repeats its command over a list: a fan-out
part = st.sampled_from([(level, cmd) for level, cmds in POOLS.items() for cmd in cmds])


def _known_change(command: str) -> bool:
    """Yellow for a change a tool's rules know (not for an unknown program or a local file)."""
    return any(
        p.level is Y and not p.rule.startswith("shell.") and not p.rule.endswith(".output")
        for p in classify_command(command).parts
    )


wrapped = st.tuples(part, st.sampled_from(range(len(WRAPPERS)))).map(
    lambda pw: (pw[0][0], WRAPPERS[pw[1]](pw[0][1]), pw[1] == XARGS, _known_change(pw[0][1]))
)


@st.composite
def composed(draw: st.DrawFn) -> tuple[RiskClass, str]:
    items = draw(st.lists(wrapped, min_size=1, max_size=5))
    text = items[0][1]
    for _, cmd, _, _ in items[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + cmd
    if draw(st.booleans()):
        text = draw(st.sampled_from(WRAPPERS[2:4]))(text)
    # A command line that repeats commands over a list (xargs) makes each of its known
    # reversible changes one to every target at once: red (blast radius).
    fans_out = any(fan for _, _, fan, _ in items)
    levels = [R if fans_out and known else level for level, _, _, known in items]
    return RiskClass.worst(levels), text


@settings(max_examples=300, deadline=None)
@given(composed())
def test_composed_commands_get_the_worst_class(case: tuple[RiskClass, str]) -> None:
    expected, command = case
    assert classify_command(command).level is expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        composed().map(lambda c: c[1]), st.sampled_from([c for c, _ in TABLE if "<<" not in c])
    ),
    st.sampled_from(POOLS[R]),
)
def test_appending_a_red_part_makes_it_red(command: str, red: str) -> None:
    before = classify_command(command).level
    after = classify_command(f"{command}; {red}").level
    assert after is R
    assert after.rank >= before.rank


def test_a_fan_out_names_itself_and_a_tenant_rule_has_the_last_word() -> None:
    wide = classify_command("kubectl rollout restart deploy -l app=web")
    assert wide.level is R and wide.parts[0].rule == "kubectl.rollout.restart.fan_out"
    assert "fan-out: a label selector without a namespace" in wide.reason
    loop = classify_command("for h in a b; do ssh $h sudo systemctl restart nginx; done")
    assert loop.level is R and "fan-out: a loop" in loop.reason
    rules = load_tenant_rules(
        "rules:\n"
        "  - id: web-restarts\n"
        "    match: '^kubectl rollout restart deploy -l app=web$'\n"
        "    risk: yellow\n"
        "    reason: web pods restart one at a time (maxUnavailable 1)\n"
    )
    assert classify_command("kubectl rollout restart deploy -l app=web", rules).level is Y
    looped = "for n in a b; do kubectl rollout restart deploy -l app=web; done"
    assert classify_command(looped, rules).level is Y
