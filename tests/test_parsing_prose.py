"""Commands in running prose, messy document shapes, rollbacks, placeholders and warnings.

The messy dev set (tests/test_messy_parsing.py) measures recall and risk over whole documents;
these tests pin each rule the parser follows, one case a row.
"""

from __future__ import annotations

import pytest

from ddoc.runbooks.model import ParsedRunbook, RiskClass, RollbackOrigin, StepKind, VariableSource
from ddoc.runbooks.parsing import ParseError, parse_runbook, runbook_parser
from ddoc.runbooks.parsing.bare import find_commands
from ddoc.runbooks.risk import load_tenant_rules


def commands_in(text: str) -> list[str]:
    return [text[a:b] for a, b in find_commands(text)]


@pytest.mark.parametrize(
    ("prose", "expected"),
    [
        # Where the prose resumes, from the issue's own examples.
        (
            "Mei 01:42 — 1) drain it first: kubectl drain <node> --ignore-daemonsets",
            ["kubectl drain <node> --ignore-daemonsets"],
        ),
        (
            "… journalctl -u nginx --since -1h | grep -c 502 and compare it with the graph",
            ["journalctl -u nginx --since -1h | grep -c 502"],
        ),
        (
            "then systemctl restart pgbouncer (it drops idle clients, warn #payments)",
            ["systemctl restart pgbouncer"],
        ),
        ("docker image prune -f - safe, images are re-pulled", ["docker image prune -f"]),
        (
            "sudo systemctl restart kubelet; if that still fails, reboot the node",
            ["sudo systemctl restart kubelet"],
        ),
        ("check it with kubectl get nodes -o wide .", ["kubectl get nodes -o wide"]),
        ("Check disk with df -h /var/lib/postgresql.", ["df -h /var/lib/postgresql"]),
        (
            "then kubectl rollout restart deploy/api -n web, wait two minutes",
            ["kubectl rollout restart deploy/api -n web"],
        ),
        (
            "./scripts/failover.sh --region eu-west-1 -> takes ~2 min",
            ["./scripts/failover.sh --region eu-west-1"],
        ),
        ("(run kubectl get nodes)", ["kubectl get nodes"]),
        # Quotes keep prose-looking words inside the command.
        (
            "count them: psql -c \"select count(*) from jobs where state = 'stuck' and age > 1\""
            " to see the backlog",
            ["psql -c \"select count(*) from jobs where state = 'stuck' and age > 1\""],
        ),
        # Wrappers, assignments and chains.
        (
            "KAFKA_OPTS=-Xmx1g kafka-consumer-groups.sh --bootstrap-server k:9092 --describe"
            " --group billing",
            [
                "KAFKA_OPTS=-Xmx1g kafka-consumer-groups.sh --bootstrap-server k:9092 --describe"
                " --group billing"
            ],
        ),
        (
            "curl -s localhost:8080/health | jq .status && echo ok then move on",
            ["curl -s localhost:8080/health | jq .status && echo ok"],
        ),
        ("service nginx restart", ["service nginx restart"]),
        (
            "Primero revisa con kubectl get pods -n pagos y luego reinicia",
            ["kubectl get pods -n pagos"],
        ),
        (
            "Prüfe mit kubectl describe pod <pod> um die Ursache zu sehen",
            ["kubectl describe pod <pod>"],
        ),
        ("ログを kubectl logs deploy/api -n web で確認する", ["kubectl logs deploy/api -n web"]),
        ("To roll back: unbump.sh", ["unbump.sh"]),
        # Names of programs in prose are not commands.
        ("kubectl is slow today", []),
        ("ask in #dba before touching psql", []),
        ("the helm chart lives in infra/", []),
        ("kill the process and make sure the pods are up", []),
        ("the top 10 keys by size", []),
        ("pgbouncer fleet is saturated", []),
        ("see more than 90% of connections", []),
    ],
)
def test_commands_are_cut_where_the_prose_resumes(prose: str, expected: list[str]) -> None:
    assert commands_in(prose) == expected


def parse(text: str, fmt: str = "text") -> ParsedRunbook:
    return parse_runbook(text, fmt, source_path="notes.txt")


def commands_of(rb: ParsedRunbook) -> list[str]:
    return [s.command for s in rb.steps if s.command is not None]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_slack_thread_gives_each_command_and_its_rollback(fmt: str) -> None:
    rb = parse(
        "Mei 01:42\n"
        "1) drain it first: kubectl drain <node> --ignore-daemonsets\n"
        "2) then restart kubelet with sudo systemctl restart kubelet\n"
        ":+1: 2\n"
        "Jordan Lee  01:45 AM\n"
        "if it's still NotReady, check journalctl -u kubelet -n 200\n"
        "to roll back: kubectl uncordon <node>\n",
        fmt,
    )
    assert commands_of(rb) == [
        "kubectl drain <node> --ignore-daemonsets",
        "sudo systemctl restart kubelet",
        "journalctl -u kubelet -n 200",
    ]
    drain = rb.steps[0]
    assert drain.rollback is not None
    assert drain.rollback.origin == RollbackOrigin.RUNBOOK
    assert drain.rollback.command == "kubectl uncordon <node>"
    assert [s.kind for s in rb.steps if s.kind == StepKind.DECISION] == [StepKind.DECISION]
    assert not any("01:45" in s.text for s in rb.steps)


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_confluence_paste_with_run_in_section_names(fmt: str) -> None:
    rb = parse(
        "Pages / SRE / Runbooks\n"
        "PgBouncer saturation\n"
        "Overview  This fires when pgbouncer has more than 90% of client slots in use.\n"
        'Diagnosis  Start with psql -h pgb-01 -p 6432 pgbouncer -c "SHOW POOLS;" and compare'
        " cl_waiting with the dashboard.\n"
        "Mitigation  Restart with systemctl restart pgbouncer (it drops idle clients).\n"
        "Rollback  kubectl -n payments scale deploy/checkout --replicas=6\n",
        fmt,
    )
    assert commands_of(rb) == [
        'psql -h pgb-01 -p 6432 pgbouncer -c "SHOW POOLS;"',
        "systemctl restart pgbouncer",
    ]
    restart = rb.steps[1]
    assert restart.risk == RiskClass.YELLOW
    assert restart.rollback is not None
    assert restart.rollback.command == "kubectl -n payments scale deploy/checkout --replicas=6"


def test_a_title_that_mentions_rollback_is_no_rollback_section() -> None:
    rb = parse(
        "# search-indexer rollback\n\n"
        "1. Stop the indexer: `systemctl stop search-indexer`\n"
        "2. Bump: `bump.sh --to v41`\n"
        "   To roll back: `unbump.sh`\n"
        "3. check health: curl -s localhost:9200/_cluster/health\n",
        "markdown",
    )
    assert rb.title == "search-indexer rollback"
    assert commands_of(rb) == [
        "systemctl stop search-indexer",
        "bump.sh --to v41",
        "curl -s localhost:9200/_cluster/health",
    ]
    bump = rb.steps[1]
    assert bump.rollback is not None
    assert (bump.rollback.command, bump.rollback.origin) == ("unbump.sh", RollbackOrigin.RUNBOOK)


def test_a_rollback_heading_still_makes_a_rollback_section() -> None:
    rb = parse(
        "# Deploy\n\n1. `helm upgrade api ./chart -n web`\n\n## Rollback\n\n"
        "1. `helm rollback api -n web`\n",
        "markdown",
    )
    assert commands_of(rb) == ["helm upgrade api ./chart -n web"]
    rollback = rb.steps[0].rollback
    assert rollback is not None
    assert rollback.command == "helm rollback api -n web"


def test_a_rollback_in_the_same_sentence_attaches_to_its_step() -> None:
    rb = parse("Scale it up with kubectl scale deploy/api --replicas=6 (revert: ./revert.sh api)")
    assert commands_of(rb) == ["kubectl scale deploy/api --replicas=6"]
    rollback = rb.steps[0].rollback
    assert rollback is not None
    assert rollback.command == "./revert.sh api"


def test_placeholders_are_variables_with_a_prompt_and_never_redirections() -> None:
    rb = parse(
        "list them: kubectl -n <namespace> get pod -l app=api\n\n"
        "then open the console with vault login -method=oidc role=YOUR_ROLE_HERE\n"
    )
    get = rb.steps[0]
    assert get.command == "kubectl -n <namespace> get pod -l app=api"
    assert get.risk == RiskClass.GREEN, get.risk_reason
    variables = {v.name: v for v in rb.variables}
    assert variables["namespace"].source == VariableSource.LABEL
    role = variables["role"]
    assert (role.syntax, role.source) == ("YOUR_ROLE_HERE", VariableSource.ASK)
    assert role.prompt is not None
    assert "open the console" in role.prompt


def test_a_warning_after_a_step_makes_it_red() -> None:
    rb = parse(
        "4. stop the consumers with kubectl -n jobs scale deploy/consumer --replicas=0\n"
        "   this wipes the in-flight queue, there is no undo\n"
    )
    step = rb.steps[0]
    assert step.command == "kubectl -n jobs scale deploy/consumer --replicas=0"
    assert step.risk == RiskClass.RED
    assert step.risk_reason is not None
    assert step.risk_reason == "the runbook warns: this wipes the in-flight queue, there is no undo"


def test_two_actions_joined_by_and_are_two_steps() -> None:
    rb = parse("Run systemctl stop worker and systemctl start worker-v2 on the box.")
    assert commands_of(rb) == ["systemctl stop worker", "systemctl start worker-v2"]


def test_a_tenant_extends_the_vocabulary_of_programs() -> None:
    text = "first shipit freeze --env prod, then page the owner"
    assert commands_of(parse(text)) == []
    rules = load_tenant_rules("programs: [shipit]\n")
    rb = runbook_parser()(text, "text", "notes.txt", rules)
    assert commands_of(rb) == ["shipit freeze --env prod"]


def test_tenant_programs_must_be_names() -> None:
    with pytest.raises(Exception, match="'programs' must be a list of program names"):
        load_tenant_rules("programs: ['rm -rf /']\n")


def test_ten_thousand_lines_of_pasted_log_output_are_bounded() -> None:
    log = "\n".join(
        f"2026-12-03T01:02:{i % 60:02d}Z api-{i} upstream reset; curl -s http://10.0.0.{i % 250}/x"
        for i in range(10_000)
    )
    rb = parse(log)
    assert len(rb.steps) == 10_000
    assert all(len(s.text) <= 4000 for s in rb.steps)


def test_the_parser_is_time_boxed() -> None:
    with pytest.raises(ParseError, match="took too long to parse"):
        parse_runbook("run kubectl get pods -n web\n" * 50, "text", time_budget=0.0)
