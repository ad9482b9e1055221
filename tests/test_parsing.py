"""ddoc.runbooks.parsing: exact results on our own fixtures, bad input, properties, corpus."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddoc.runbooks.model import (
    ParsedRunbook,
    RiskClass,
    RollbackOrigin,
    Step,
    StepKind,
    VariableSource,
)
from ddoc.runbooks.parsing import ParseError, parse_runbook
from ddoc.runbooks.parsing.source import decode, split_front_matter

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runbooks"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

_RED = re.compile(r"\b(?:delete|drop|rm|truncate|kill|prune)\b", re.I)
_YELLOW = re.compile(
    r"\b(?:restart|cordon|uncordon|drain|scale|upgrade|apply|stop|start|pause|resume|alter|insert"
    r"|reroute|vacuum)\b|-XPOST",
    re.I,
)


def fake_classify(command: str, language: str | None) -> tuple[RiskClass, str]:
    """Stand-in for ddoc.runbooks.risk: keyword based, so expectations below are easy to read."""
    if _RED.search(command):
        return RiskClass.RED, f"destructive ({language})"
    if _YELLOW.search(command):
        return RiskClass.YELLOW, f"changes state ({language})"
    return RiskClass.GREEN, f"read-only ({language})"


def parse(name: str, fmt: str = "markdown", **kwargs: Any) -> ParsedRunbook:
    data = (FIXTURES / name).read_bytes()
    return parse_runbook(data, fmt, source_path=name, classify=fake_classify, **kwargs)


def summary_of(steps: list[Step]) -> list[tuple[str, str, int, int, str | None, str | None]]:
    return [
        (s.id, s.kind.value, s.source.start_line, s.source.end_line, s.command, s.language)
        for s in steps
    ]


def flags(rb: ParsedRunbook) -> list[tuple[str, str | None]]:
    return [(f.code, f.step_id) for f in rb.quality.flags]


def occurs_verbatim(command: str, source: str) -> bool:
    """A command is verbatim when it sits inside one source line, or when each of its lines
    is the tail of consecutive source lines (prompts and container indentation stripped)."""
    src = source.split("\n")
    lines = command.split("\n")
    if len(lines) == 1:
        return any(command in line for line in src)
    for k in range(len(src) - len(lines) + 1):
        if all(src[k + i].rstrip().endswith(line.rstrip()) for i, line in enumerate(lines)):
            return True
    return False


# --- fixtures: exact results -----------------------------------------------------------------


def test_markdown_with_front_matter() -> None:
    rb = parse("frontmatter.md")
    assert rb.title == "Checkout API pods restarting"
    assert rb.summary == "The checkout API pods keep restarting and customers see failed payments."
    assert rb.triggers.alerts == ["CheckoutPodRestarts", "CheckoutHighErrorRate"]
    assert rb.triggers.labels == {"team": "payments", "severity": "critical"}
    assert rb.triggers.services == ["checkout-api"]
    assert summary_of(rb.steps) == [
        (
            "s1",
            "command",
            22,
            22,
            "kubectl -n $NAMESPACE get events --sort-by=.lastTimestamp",
            "kubectl",
        ),
        ("s2", "command", 23, 23, "kubectl -n $NAMESPACE describe pod $POD", "kubectl"),
        ("s3", "manual", 24, 24, None, None),
        (
            "s4",
            "command",
            28,
            32,
            "kubectl -n $NAMESPACE rollout restart deployment/checkout-api",
            "kubectl",
        ),
        (
            "s5",
            "command",
            34,
            35,
            "kubectl -n $NAMESPACE rollout status deployment/checkout-api --timeout=5m",
            "kubectl",
        ),
        ("s6", "manual", 36, 36, None, None),
        ("s7", "decision", 37, 37, None, None),
        ("s8", "escalate", 37, 37, None, None),
    ]
    steps = rb.steps
    assert steps[0].text == (
        "Look at recent events with `kubectl -n $NAMESPACE get events --sort-by=.lastTimestamp`."
    )
    assert steps[3].text == "Restart the deployment:"
    assert steps[5].text == (
        "Verify the error rate in the Checkout dashboard (https://grafana.example.com/d/checkout)."
    )
    assert [(s.risk, s.risk_reason) for s in steps[:2]] == [
        (RiskClass.GREEN, "read-only (kubectl)"),
        (RiskClass.GREEN, "read-only (kubectl)"),
    ]
    assert steps[3].risk == RiskClass.YELLOW
    assert all(s.risk is None for s in steps if s.command is None)
    assert steps[6].branches[0].condition == "errors continue"
    assert steps[6].branches[0].goto == "s8"
    assert [(v.name, v.syntax, v.source, v.key) for v in rb.variables] == [
        ("namespace", "$NAMESPACE", VariableSource.LABEL, "namespace"),
        ("pod", "$POD", VariableSource.LABEL, "pod"),
    ]
    assert flags(rb) == [("vague_step", "s3")]
    assert rb.quality.score == 95
    assert rb.warnings == []
    assert rb.parser == "deterministic"


def test_confluence_html() -> None:
    rb = parse("confluence.html", "html")
    assert rb.title == "Search cluster yellow"
    assert rb.summary == "The search cluster reports yellow health: replicas are unassigned."
    # Spans refer to the markdown the page was converted to.
    assert summary_of(rb.steps) == [
        (
            "s1",
            "command",
            7,
            7,
            "curl -s http://$ES_HOST:9200/_cluster/health?pretty",
            "http",
        ),
        (
            "s2",
            "command",
            8,
            12,
            'curl -s "http://$ES_HOST:9200/_cat/shards?h=index,shard,state" | grep UNASSIGNED',
            "http",
        ),
        ("s3", "manual", 16, 16, None, None),
        (
            "s4",
            "command",
            20,
            20,
            "curl -s -XPOST http://$ES_HOST:9200/_cluster/reroute?retry_failed=true",
            "http",
        ),
        (
            "s5",
            "command",
            26,
            26,
            "INSERT INTO es_audit (checked_at, unassigned) VALUES (now(), <unassigned>);",
            "sql",
        ),
    ]
    assert rb.steps[1].text == "List unassigned shards:"
    assert rb.steps[2].text == "Retry allocation only after disk usage is below 85%."
    assert rb.steps[3].text.startswith("Retry failed allocation | ")
    assert rb.steps[4].risk_reason == "changes state (sql)"
    assert [(v.name, v.source) for v in rb.variables] == [
        ("es_host", VariableSource.ASK),
        ("unassigned", VariableSource.ASK),
    ]
    assert rb.warnings == []


def test_plain_text_procedure() -> None:
    rb = parse("procedure.txt", "text")
    assert rb.title == "Restart the report generator"
    assert summary_of(rb.steps) == [
        ("s1", "command", 7, 8, "systemctl status report-gen", "shell"),
        ("s2", "command", 9, 10, "sudo systemctl stop report-gen", "shell"),
        ("s3", "command", 11, 12, "rm -f /var/run/report-gen.lock", "shell"),
        ("s4", "command", 13, 13, "sudo systemctl start report-gen", "shell"),
        ("s5", "manual", 14, 14, None, None),
    ]
    assert rb.steps[0].text == "Check whether the generator is running."
    stop = rb.steps[1].rollback
    assert stop is not None and stop.origin == RollbackOrigin.RUNBOOK
    assert stop.command == "sudo systemctl start report-gen"
    start = rb.steps[3].rollback
    assert start is not None and start.origin == RollbackOrigin.SUGGESTED
    assert start.command == "sudo systemctl stop report-gen"
    assert [(p.text, p.kind) for p in rb.prerequisites] == [
        ("You need shell access to the report host.", "access")
    ]
    assert flags(rb) == [("no_trigger", None), ("red_without_rollback", "s3")]
    assert rb.quality.score == 75


def test_german_runbook() -> None:
    rb = parse("german.md")
    assert rb.title == "Speicherplatz auf dem Knoten knapp"
    assert summary_of(rb.steps) == [
        ("s1", "command", 9, 9, "df -h /var/lib/docker", "shell"),
        (
            "s2",
            "command",
            10,
            14,
            "sudo du -xh /var/lib/docker --max-depth=1 | sort -h | tail -n 5",
            "shell",
        ),
        ("s3", "command", 18, 18, "docker image prune -af", "shell"),
        ("s4", "decision", 19, 19, None, None),
        ("s5", "escalate", 19, 19, None, None),
    ]
    assert rb.steps[1].text == "Die größten Verzeichnisse finden:"
    assert rb.steps[3].branches[0].condition == "der Speicher weiterhin knapp ist"
    assert rb.steps[3].branches[0].goto == "s5"
    assert [(p.text, p.kind) for p in rb.prerequisites] == [
        ("Sie benötigen SSH-Zugriff auf den Knoten.", "access")
    ]


def test_japanese_runbook() -> None:
    rb = parse("japanese.md")
    assert rb.title == "ディスク使用率が高い"
    assert rb.summary == "ノードのディスク使用率が 90% を超えています。"
    assert summary_of(rb.steps) == [
        ("s1", "command", 9, 9, "df -h /", "shell"),
        ("s2", "command", 10, 14, "sudo find /var/log -size +500M -type f", "shell"),
        ("s3", "command", 18, 18, "sudo journalctl --vacuum-time=3d", "shell"),
        ("s4", "decision", 19, 19, None, None),
        ("s5", "escalate", 19, 19, None, None),
    ]
    assert rb.steps[1].text == "大きなファイルを探します。"
    branch = rb.steps[3].branches[0]
    assert (branch.condition, branch.goto) == ("改善しない", "s5")


def test_conditionals() -> None:
    rb = parse("conditionals.md")
    kinds = [(s.id, s.kind) for s in rb.steps]
    assert kinds == [
        ("s1", StepKind.COMMAND),
        ("s2", StepKind.DECISION),
        ("s3", StepKind.COMMAND),
        ("s4", StepKind.DECISION),
        ("s5", StepKind.ESCALATE),
        ("s6", StepKind.COMMAND),
        ("s7", StepKind.DECISION),
        ("s8", StepKind.COMMAND),
        ("s9", StepKind.MANUAL),
    ]
    exit_check = rb.steps[1].branches
    assert [(b.condition, b.text, b.goto, b.check) for b in exit_check] == [
        ("the command exits 0", "go to step 4", "s6", {"exit_code": 0}),
        (
            "otherwise",
            "run `sudo systemctl start queue-consumer`.",
            "s3",
            {"exit_code_nonzero": True},
        ),
    ]
    assert rb.steps[2].command == "sudo systemctl start queue-consumer"
    output = rb.steps[3].branches
    assert [(b.goto, b.check) for b in output] == [
        ("s5", {"output_pattern": "Unit queue-consumer.service not found"})
    ]
    cases = rb.steps[6]
    assert cases.source.start_line == 17
    assert [(b.condition, b.goto, b.check) for b in cases.branches] == [
        ("the backlog is growing", "s8", None),
        ("the backlog is stable", "s9", None),
    ]
    assert rb.steps[7].command == "kubectl -n queues scale deployment/consumer --replicas=6"


def test_rollback_section_and_suggestions() -> None:
    rb = parse("rollback.md")
    got = [
        (
            s.id,
            s.command,
            s.rollback.command if s.rollback else None,
            s.rollback.origin if s.rollback else None,
        )
        for s in rb.steps
    ]
    assert got == [
        ("s1", "kubectl cordon $NODE", "kubectl uncordon $NODE", RollbackOrigin.RUNBOOK),
        (
            "s2",
            "helm upgrade ingress charts/ingress -n edge --reuse-values",
            "helm rollback ingress -n edge",
            RollbackOrigin.SUGGESTED,
        ),
        (
            "s3",
            "sudo systemctl stop log-shipper",
            "sudo systemctl start log-shipper",
            RollbackOrigin.SUGGESTED,
        ),
        (
            "s4",
            "iptables -A INPUT -s 203.0.113.7 -j DROP",
            "iptables -D INPUT -s 203.0.113.7 -j DROP",
            RollbackOrigin.SUGGESTED,
        ),
        ("s5", "patronictl pause --wait", "patronictl resume --wait", RollbackOrigin.RUNBOOK),
        (
            "s6",
            "kubectl -n $NAMESPACE delete pod $POD --grace-period=0",
            "kubectl -n $NAMESPACE rollout restart deployment/$DEPLOYMENT",
            RollbackOrigin.RUNBOOK,
        ),
    ]
    first = rb.steps[0].rollback
    assert first is not None
    assert first.text == "Put the node back into service: `kubectl uncordon $NODE`"
    # Rollback instructions are attached, never forward steps.
    assert len(rb.steps) == 6
    assert ("red_without_rollback", "s6") not in flags(rb)
    assert rb.warnings == []


def test_rollback_section_without_a_match_attaches_to_last_state_change() -> None:
    text = (
        "# Rotate\n\n## Steps\n\n1. Restart the API: `kubectl rollout restart deploy/api`\n"
        "2. Check it: `kubectl get pods`\n\n## Rollback\n\nRestore the old secret from the vault.\n"
    )
    rb = parse_runbook(text, classify=fake_classify)
    assert rb.steps[0].rollback is not None
    assert rb.steps[0].rollback.command is None
    assert rb.steps[0].rollback.text == "Restore the old secret from the vault."
    assert rb.steps[1].rollback is None
    assert rb.warnings == [
        "line 10: rollback instructions could not be tied to a specific step; attached to s1"
    ]


def test_placeholders_of_every_syntax() -> None:
    rb = parse("placeholders.md")
    assert [(v.name, v.syntax, v.source, v.key) for v in rb.variables] == [
        ("service_name", "<service-name>", VariableSource.ASK, None),
        ("namespace", "${NAMESPACE}", VariableSource.LABEL, "namespace"),
        ("pod", "<POD>", VariableSource.LABEL, "pod"),
        ("instance", "{{ $labels.instance }}", VariableSource.LABEL, "instance"),
        ("deployment", "{{ deployment }}", VariableSource.LABEL, "deployment"),
        ("runbook_url", "{{ $annotations.runbook_url }}", VariableSource.ANNOTATION, "runbook_url"),
        ("cluster", "{cluster}", VariableSource.LABEL, "cluster"),
        ("mountpoint", "$MOUNTPOINT", VariableSource.LABEL, "mountpoint"),
        ("ticket_id", "$TICKET_ID", VariableSource.ASK, None),
    ]
    script = rb.steps[6]
    assert script.command == (
        'for i in 1 2 3; do echo "$i $HOME"; done\n'
        "TARGET=/srv/data\n"
        "du -sh $TARGET $MOUNTPOINT\n"
        "awk '{print $NF}' /var/log/app.log"
    )
    assert (script.source.start_line, script.source.end_line) == (11, 18)
    assert flags(rb) == [
        ("no_trigger", None),
        ("undefined_variable", "s1"),
        ("undefined_variable", "s8"),
    ]


def test_prerequisites() -> None:
    rb = parse("prerequisites.md")
    assert [
        (p.text, p.kind, p.source.start_line if p.source else None) for p in rb.prerequisites
    ] == [
        ("You need admin access to the production vault.", "access", 5),
        ("Make sure you are connected to the corporate VPN.", "vpn", 6),
        ("Ensure you have `psql` installed.", "tool", 7),
        ("A maintenance window has been announced.", "other", 8),
        ("Requires the `db-operator` role in the cloud console.", "access", 12),
    ]
    assert summary_of(rb.steps) == [
        ("s1", "manual", 14, 14, None, None),
        (
            "s2",
            "command",
            15,
            15,
            "psql -h $DB_HOST -c \"ALTER ROLE app PASSWORD '<new-password>'\"",
            "shell",
        ),
    ]


def test_document_without_steps() -> None:
    rb = parse("no_steps.md")
    assert rb.steps == []
    assert rb.title == "About the billing pipeline"
    assert rb.summary.startswith("The billing pipeline turns usage events into invoices")
    assert flags(rb) == [("no_actionable_step", None), ("no_trigger", None)]
    assert rb.quality.score == 50


def test_malformed_front_matter_is_a_warning() -> None:
    rb = parse("malformed_frontmatter.md")
    assert rb.warnings == ["front-matter is not valid YAML at line 3; it was ignored"]
    assert rb.title == "Disk full"
    assert rb.triggers.alerts == []
    assert [s.command for s in rb.steps] == ["sudo journalctl --vacuum-size=500M"]
    assert rb.steps[0].source.start_line == 10


def test_title_fallbacks() -> None:
    def title(text: str, path: str | None = None) -> str:
        return parse_runbook(text, source_path=path, classify=fake_classify).title

    assert title("## Only a section\n\ntext\n") == "Only a section"
    assert title("just a line of text\n\nmore\n", "runbooks/disk-full.md") == "disk-full"
    assert title("just a line of text\n\nmore\n") == "just a line of text"
    assert title("---\ntitle: From FM\n---\n# H1 here\n") == "From FM"


def test_alert_inferred_from_alert_named_title() -> None:
    rb = parse_runbook(
        "# KubeJobStuck\n\n## Mitigation\n\n- Check `kubectl get jobs -A`\n",
        source_path="kubernetes/KubeJobStuck.md",
        classify=fake_classify,
    )
    assert rb.triggers.alerts == ["KubeJobStuck"]
    assert "no_trigger" not in [f.code for f in rb.quality.flags]


def test_a_pasted_wiki_pages_title_is_not_its_chrome() -> None:
    def title_of(text: str) -> str:
        return parse_runbook(text, "text", classify=fake_classify).title

    byline = "Created by Kim Lee, last updated on Mar 3, 2026  4 minute read"
    assert title_of(f"Space shortcuts\nData Platform\nKafka lag on billing\n{byline}\n") == (
        "Kafka lag on billing"
    )
    assert title_of(f"Pages / Payments / Runbooks\n{byline}\nCheckout slow\nStatus: OK\n") == (
        "Checkout slow"
    )
    assert title_of("Security / Platform / TLS\nCert expiring\nNote\nRenew it.\n") == (
        "Cert expiring"
    )
    # A plain note keeps its first line; markdown keeps its heading.
    assert title_of("disk full on build-04 again\n\ndf -h\n") == "disk full on build-04 again"
    assert parse_runbook("# Pages / Runbooks\n\n1. `df -h`\n").title == "Pages / Runbooks"


def test_alerts_named_on_a_line_of_the_text() -> None:
    """Wiki pages and notes name their alert in the text, not in front-matter."""

    def alerts(text: str, fmt: str = "markdown") -> list[str]:
        return parse_runbook(text, fmt, classify=fake_classify).triggers.alerts

    assert alerts("# Disk\n\nAlert: PostgresDiskUsageHigh, instance db-1 / db-2.\n") == [
        "PostgresDiskUsageHigh"
    ]
    assert alerts("# Q\n\n**Alert:** `WorkerQueueBacklog`\n\n- `rabbitmqctl list_queues`\n") == [
        "WorkerQueueBacklog"
    ]
    assert alerts(
        "Space: SRE\nAlerts: `KubeNodeNotReady`, `KubeletDown` and node_filesystem_full\n", "text"
    ) == ["KubeNodeNotReady", "KubeletDown", "node_filesystem_full"]
    assert alerts("Triggered by: `Watchdog`\n", "text") == ["Watchdog"]  # one word, as code
    # Prose after the colon, a plain word, or a severity is not an alert's name.
    assert alerts("# T\n\nAlert: this pages everyone, be careful\n") == []
    assert alerts("# T\n\nAlert: Critical\n\nAlerting: see the dashboard\n") == []
    # Front-matter wins.
    assert alerts("---\nalerts: [FromFrontMatter]\n---\nAlert: FromTheText\n") == [
        "FromFrontMatter"
    ]
    rb = parse_runbook("# Disk\n\nAlert: PostgresDiskUsageHigh\n", classify=fake_classify)
    assert "no_trigger" not in [f.code for f in rb.quality.flags]


def test_transcript_block_one_step_per_prompt() -> None:
    text = (
        "# Debug\n\n## Diagnosis\n\nOpen a debug shell:\n\n```console\n"
        "$ kubectl -n default debug node/$NODE -it --image=busybox\n"
        "Creating debugging pod node-debugger-x\n"
        "$ chroot /host\n"
        "# journalctl -u kubelet --since '10 min ago'\n"
        "```\n"
    )
    rb = parse_runbook(text, classify=fake_classify)
    assert summary_of(rb.steps) == [
        (
            "s1",
            "command",
            8,
            8,
            "kubectl -n default debug node/$NODE -it --image=busybox",
            "kubectl",
        ),
        ("s2", "command", 10, 10, "chroot /host", "shell"),
        ("s3", "command", 11, 11, "journalctl -u kubelet --since '10 min ago'", "shell"),
    ]
    assert all(s.text == "Open a debug shell:" for s in rb.steps)


def test_numbered_comments_split_a_block_and_comments_stay_comments() -> None:
    text = (
        "# Restore\n\n## Mitigation\n\n```bash\n"
        "# 1. Take a snapshot\n"
        "pg_dump -Fc app > /tmp/app.dump\n"
        "# 2. Restore it on the replica\n"
        "pg_restore -d app /tmp/app.dump\n"
        "```\n\n"
        "```bash\n"
        "# check the service\n"
        "systemctl status app\n"
        "journalctl -u app -n 50\n"
        "```\n"
    )
    rb = parse_runbook(text, classify=fake_classify)
    assert [(s.text, s.command, s.source.start_line) for s in rb.steps] == [
        ("Take a snapshot", "pg_dump -Fc app > /tmp/app.dump", 7),
        ("Restore it on the replica", "pg_restore -d app /tmp/app.dump", 9),
        ("Mitigation", "# check the service\nsystemctl status app\njournalctl -u app -n 50", 13),
    ]


def test_inline_code_that_is_not_a_command() -> None:
    text = (
        "# X\n\n## Diagnosis\n\n"
        "- Open `config.yaml` and set `replicas` to `true`.\n"
        '- Graph `rate(http_requests_total[5m])` and `{job="api"}`.\n'
        "- Watch `node_filesystem_avail_bytes`.\n"
        "- Make sure `psql` is on your PATH.\n"
    )
    rb = parse_runbook(text, classify=fake_classify)
    assert [s.command for s in rb.steps] == [None, None, None]
    assert [s.kind for s in rb.steps] == [StepKind.MANUAL] * 3


def test_sql_block_uses_sql_language() -> None:
    calls: list[tuple[str, str | None]] = []

    def spy(command: str, language: str | None) -> tuple[RiskClass, str]:
        calls.append((command, language))
        return RiskClass.GREEN, "ok"

    text = "# Q\n\n## Diagnosis\n\n```sql\nSELECT pid, state\nFROM pg_stat_activity;\n```\n"
    rb = parse_runbook(text, classify=spy)
    assert calls == [("SELECT pid, state\nFROM pg_stat_activity;", "sql")]
    assert rb.steps[0].language == "sql"


def test_classifier_failure_is_contained() -> None:
    def broken(command: str, language: str | None) -> tuple[RiskClass, str]:
        raise RuntimeError("boom")

    rb = parse_runbook("# X\n\n## Steps\n\n1. `kubectl get pods`\n", classify=broken)
    assert rb.steps[0].risk == RiskClass.RED
    assert rb.warnings and "boom" in rb.warnings[0]


def test_json_round_trip() -> None:
    for name, fmt in [("frontmatter.md", "markdown"), ("conditionals.md", "markdown")]:
        rb = parse(name, fmt)
        data = json.loads(json.dumps(rb.to_dict()))
        assert ParsedRunbook.from_dict(data) == rb


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ("", "markdown", "runbook is empty"),
        (b"", "markdown", "runbook is empty"),
        ("  \n\t\n ", "text", "runbook is empty"),
        (b"\xef\xbb\xbf  \n", "markdown", "runbook is empty"),
        (b"# T\x00\x01\x02", "markdown", "content looks binary"),
        ("# T\n\x00", "markdown", "content looks binary"),
        ("\x01\x02\x03\x04\x05 abc", "markdown", "content looks binary"),
        (b"# Titel \xe4\xf6\xfc\n", "markdown", "not valid UTF-8"),
        ("# T", "pdf", "unsupported format 'pdf'; use markdown, text or html"),
        ("# T", "", "unsupported format ''; use markdown, text or html"),
    ],
)
def test_bad_input(content: str | bytes, fmt: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_runbook(content, fmt, classify=fake_classify)
    assert message in str(info.value)


def test_too_large() -> None:
    big = ("- Check `kubectl get pods`\n" * 400_000).encode()
    assert len(big) > 10_000_000
    with pytest.raises(ParseError, match="limit is 2000000 bytes"):
        parse_runbook(big, classify=fake_classify)
    with pytest.raises(ParseError, match="limit is 2000000 bytes"):
        parse_runbook(big.decode(), classify=fake_classify)
    with pytest.raises(ParseError, match="limit is 100 bytes"):
        parse_runbook("x" * 101, classify=fake_classify, max_bytes=100)


def test_bom_and_crlf_are_accepted() -> None:
    data = "\ufeff# T\r\n\r\n## Steps\r\n\r\n1. Run `kubectl get pods`\r\n".encode()
    rb = parse_runbook(data, classify=fake_classify)
    assert rb.title == "T"
    assert rb.steps[0].command == "kubectl get pods"
    assert rb.steps[0].source.start_line == 5


@pytest.mark.parametrize(
    "html",
    [
        "<h1>Broken<h2>Steps<ol><li>Run <code>kubectl get pods</code><li><pre>kubectl describe",
        '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[kubectl get nodes',
        "<table><tr><td><code>systemctl status x</code><tr><td>",
        "<<<>>><!-- <p> </ul></li></ol>",
        "<div><p>Only text, no structure</div>",
    ],
)
def test_malformed_html_does_not_crash(html: str) -> None:
    rb = parse_runbook(html, "html", classify=fake_classify)
    assert isinstance(rb, ParsedRunbook)


def test_malformed_html_warns_and_keeps_commands() -> None:
    html = (
        "<h1>Broken</h1><h2>Steps</h2><ol><li>Run <code>kubectl get pods</code>"
        "<li><pre>kubectl describe pod x"
    )
    rb = parse_runbook(html, "html", classify=fake_classify)
    assert rb.warnings == ["HTML looks malformed (unclosed pre, ol); parsed best effort"]
    assert [s.command for s in rb.steps] == ["kubectl get pods", "kubectl describe pod x"]


# --- properties --------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "# Title\n",
        "## Diagnosis\n",
        "## Rollback\n",
        "### If the pod is Pending\n",
        "- Check `kubectl get pods -n $NS`\n",
        "1. Restart: `systemctl restart <svc>`\n",
        "  - nested `ls -la /tmp`\n",
        "```bash\nkubectl delete pod $POD\n```\n",
        "```\n$ helm upgrade x y\noutput\n```\n",
        "    indented code\n",
        "If the command exits 0, go to step 2; otherwise run `df -h`.\n",
        "To undo, run `kubectl uncordon $NODE`.\n",
        "| a | `curl -s http://x` |\n|---|---|\n",
        "> quote `rm -rf /x`\n",
        "---\ntitle: x\n---\n",
        "\t\ttab `a -b`\n",
        "\n",
        "Step 1: run it\n",
        "$ echo {{ $labels.pod }}\n",
    ]
)
_DOCS = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(_FRAGMENTS, st.text(max_size=30)), max_size=25).map("".join),
)


def _check_commands(rb: ParsedRunbook, source: str) -> None:
    for step in rb.steps:
        assert step.id == f"s{rb.steps.index(step) + 1}"
        if step.command is not None:
            assert step.risk is not None
            assert occurs_verbatim(step.command, source), step.command
        else:
            assert step.risk is None


@settings(
    max_examples=int(__import__("os").environ.get("HYP_N", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(doc=_DOCS, fmt=st.sampled_from(["markdown", "text"]))
def test_property_only_parse_errors_and_verbatim_commands(doc: str, fmt: str) -> None:
    try:
        rb = parse_runbook(doc, fmt, classify=fake_classify)
    except ParseError:
        return
    source = split_front_matter(decode(doc, 2_000_000)).body
    _check_commands(rb, source)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<p>",
                    "</p>",
                    "<ol>",
                    "<li>",
                    "<code>",
                    "</code>",
                    "<pre>",
                    "<table><tr><td>",
                    '<ac:structured-macro ac:name="code">',
                    "<![CDATA[",
                    "]]>",
                    "<h2>",
                    "</h2>",
                ]
            ),
            st.text(max_size=20),
        ),
        max_size=30,
    ).map("".join)
)
def test_property_html_never_crashes(doc: str) -> None:
    with contextlib.suppress(ParseError):
        parse_runbook(doc, "html", classify=fake_classify)


# --- the real classifier and the public corpus --------------------------------------------


def _risk_available() -> bool:
    try:
        risk = importlib.import_module("ddoc.runbooks.risk")
    except ImportError:
        return False
    return hasattr(risk, "classify_command") and hasattr(risk, "classify_sql")


_HAS_RISK = _risk_available()


@pytest.mark.skipif(not _HAS_RISK, reason="ddoc.runbooks.risk is not available")
def test_default_classifier_is_ddoc_risk() -> None:
    rb = parse_runbook((FIXTURES / "rollback.md").read_text())
    assert all(s.risk is not None and s.risk_reason for s in rb.steps if s.command)
    delete = next(s for s in rb.steps if s.command and " delete " in s.command)
    assert delete.risk == RiskClass.RED
    sql = parse_runbook((FIXTURES / "confluence.html").read_text(), "html")
    assert sql.steps[-1].language == "sql" and sql.steps[-1].risk is not None


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus is not present")
def test_corpus_parses_and_commands_are_verbatim() -> None:
    files = sorted(CORPUS.rglob("*.md"))
    assert len(files) > 100
    classify = None if _HAS_RISK else fake_classify
    for path in files:
        text = path.read_text(encoding="utf-8")
        rb = parse_runbook(text, source_path=str(path), classify=classify)
        source = split_front_matter(decode(text, 2_000_000)).body
        for step in rb.steps:
            if step.command is not None:
                assert occurs_verbatim(step.command, source), (path, step.command)
