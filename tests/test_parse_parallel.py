"""Parallel step groups (Step.parallel): prose markers, front-matter `parallel:`, and every bad
declaration turning into a warning with its steps left in order."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ddoc.runbooks.model import ParsedRunbook, RiskClass
from ddoc.runbooks.parsing import parse_runbook
from ddoc.runbooks.parsing.ai import AIParserConfig, parse_with_ai
from tests.fakes_anthropic import BASE_URL, FakeAnthropicAPI


def classify(command: str, language: str | None) -> tuple[RiskClass, str]:
    """Keyword stand-in for ddoc.runbooks.risk, so each step's class is plain to see."""
    if re.search(r"\b(?:delete|drop|rm)\b", command):
        return RiskClass.RED, "destroys"
    if re.search(r"\b(?:restart|scale|cordon|flush)\b", command):
        return RiskClass.YELLOW, "changes state"
    return RiskClass.GREEN, "read-only"


def parse(content: str, fmt: str = "markdown") -> ParsedRunbook:
    return parse_runbook(content, fmt, classify=classify)


def groups(rb: ParsedRunbook) -> list[tuple[str, str | None]]:
    return [(s.id, s.parallel) for s in rb.steps]


def parallel_warnings(rb: ParsedRunbook) -> list[str]:
    return [w for w in rb.warnings if w.startswith("parallel:")]


# --- prose markers ------------------------------------------------------------------------------

LIST = """\
# Queue backlog

1. Check the consumer lag: `kafka-consumer-groups --describe --group billing`
2. Meanwhile, look at the broker disk: `df -h /var/lib/kafka`
3. In the meantime tail the consumer logs: `kubectl logs deploy/billing-consumer -n billing`
4. Restart the consumers: `kubectl rollout restart deploy/billing-consumer -n billing`
5. Watch them come back: `kubectl get pods -n billing -w`
6. At the same time, check the lag again: `kafka-consumer-groups --describe --group billing`
"""


def test_markers_in_a_markdown_list_join_the_previous_step() -> None:
    rb = parse(LIST)
    assert groups(rb) == [
        ("s1", "p1"),
        ("s2", "p1"),
        ("s3", "p1"),
        ("s4", None),
        ("s5", "p2"),
        ("s6", "p2"),
    ]
    assert parallel_warnings(rb) == []


def test_markers_in_plain_text_lines() -> None:
    rb = parse(
        "Cache misses\n"
        "Check the hit rate with redis-cli info stats\n"
        "While that runs, look at the app errors with kubectl logs deploy/web -n shop --tail=50\n"
        "Then check memory with redis-cli info memory\n"
        "Simultaneously check the slow log with redis-cli slowlog get 10\n",
        "text",
    )
    assert [s.command for s in rb.steps] == [
        "redis-cli info stats",
        "kubectl logs deploy/web -n shop --tail=50",
        "redis-cli info memory",
        "redis-cli slowlog get 10",
    ]
    assert groups(rb) == [("s1", "p1"), ("s2", "p1"), ("s3", "p2"), ("s4", "p2")]


@pytest.mark.parametrize(
    "marker",
    [
        "Meanwhile,",
        "MEANWHILE",
        "In the meantime,",
        "In parallel,",
        "At the same time,",
        "Simultaneously,",
        "Concurrently,",
        "While that runs,",
        "While this is running,",
        "While it\u2019s running,",
    ],
)
def test_each_marker_is_read_case_insensitively(marker: str) -> None:
    rb = parse(f"# T\n\n- Check: `df -h`\n- {marker} check `free -m`\n")
    assert groups(rb) == [("s1", "p1"), ("s2", "p1")]


@pytest.mark.parametrize("word", ["Meanwhilex", "parallelism", "unconcurrently"])
def test_markers_need_word_boundaries(word: str) -> None:
    rb = parse(f"# T\n\n- Check: `df -h`\n- Check the {word} setting: `free -m`\n")
    assert groups(rb) == [("s1", None), ("s2", None)]


@pytest.mark.parametrize(
    "second",
    [
        "Check `free -m` in parallel.",
        "Check `free -m` at the same time as the previous step.",
        "Check `free -m` (concurrently)",
        "Then, simultaneously, check `free -m`",
    ],
)
def test_a_marker_can_close_the_sentence(second: str) -> None:
    rb = parse(f"# T\n\n- Check: `df -h`\n- {second}\n")
    assert groups(rb) == [("s1", "p1"), ("s2", "p1")]


@pytest.mark.parametrize(
    "second",
    [
        # the words describe the tool or the system, not when the step runs
        "Analyse with `vacuumdb --analyze-only`, which can run in parallel, with options.",
        "Look at the pool, clients may queue meanwhile: `psql -c 'SHOW POOLS'`",
        "Count the jobs that run concurrently on the node: `ps aux`",
        "Rebuild the index with CONCURRENTLY: `psql -c 'SELECT 1'`",
        "Check `psql -c 'SELECT 1'` (see https://docs.example.test/reindex#concurrently).",
        "Check `psql -c 'SELECT 1 AS meanwhile'`",
    ],
)
def test_marker_words_that_say_something_else_group_nothing(second: str) -> None:
    rb = parse(f"# T\n\n- Check: `df -h`\n- {second}\n")
    assert [s.kind.value for s in rb.steps] == ["command", "command"]
    assert groups(rb) == [("s1", None), ("s2", None)]
    assert parallel_warnings(rb) == []


def test_one_sentence_with_two_commands_groups_the_one_after_the_marker() -> None:
    # A pasted wiki page: both commands come from one sentence; the marker sits between them.
    rb = parse(
        "Pages / Platform / Runbooks\n"
        "Search latency\n"
        "Created by Sam, last updated 3 days ago\n"
        "Diagnosis  Start with curl -s localhost:9200/_cat/health and, at the same time, check "
        "curl -s localhost:9200/_cat/pending_tasks for a long queue.\n"
        "Simultaneously grep the logs: journalctl -u elasticsearch -n 200 "
        "Then restart it with systemctl restart elasticsearch\n",
        "text",
    )
    assert [s.command for s in rb.steps] == [
        "curl -s localhost:9200/_cat/health",
        "curl -s localhost:9200/_cat/pending_tasks",
        "journalctl -u elasticsearch -n 200",
        "systemctl restart elasticsearch",
    ]
    # s3's words ("Simultaneously grep the logs: …") join it to s2's group; s4's words are
    # "Then restart it with …", no marker.
    assert groups(rb) == [("s1", "p1"), ("s2", "p1"), ("s3", "p1"), ("s4", None)]


def test_a_confluence_html_paste() -> None:
    rb = parse(
        "<h1>DNS failures</h1>"
        "<ol>"
        "<li><p>Check the resolver: <code>dig @10.0.0.2 api.internal</code></p></li>"
        "<li><p>Meanwhile, check CoreDNS: <code>kubectl get pods -n kube-system "
        "-l k8s-app=kube-dns</code></p></li>"
        "<li><p>Restart CoreDNS: <code>kubectl rollout restart deploy/coredns -n kube-system"
        "</code></p></li>"
        "</ol>",
        "html",
    )
    assert [s.command for s in rb.steps] == [
        "dig @10.0.0.2 api.internal",
        "kubectl get pods -n kube-system -l k8s-app=kube-dns",
        "kubectl rollout restart deploy/coredns -n kube-system",
    ]
    assert groups(rb) == [("s1", "p1"), ("s2", "p1"), ("s3", None)]


def test_a_yellow_step_saying_meanwhile_keeps_its_order() -> None:
    rb = parse(
        "# T\n\n"
        "1. Check the pods: `kubectl get pods -n web`\n"
        "2. Meanwhile, restart the cache: `kubectl rollout restart deploy/cache -n web`\n"
    )
    assert groups(rb) == [("s1", None), ("s2", None)]
    assert parallel_warnings(rb) == [
        "parallel: s2 says it runs alongside s1, but it changes state (yellow); it keeps its "
        "order (front-matter `parallel:` can group it)"
    ]


def test_a_green_step_does_not_join_a_state_changing_one() -> None:
    rb = parse(
        "# T\n\n"
        "1. Restart the cache: `kubectl rollout restart deploy/cache -n web`\n"
        "2. Meanwhile, watch the pods: `kubectl get pods -n web`\n"
    )
    assert groups(rb) == [("s1", None), ("s2", None)]
    assert parallel_warnings(rb) == [
        "parallel: s2 says it runs alongside s1, but s1 changes state (yellow); it keeps its order"
    ]


def test_a_step_whose_output_a_decision_reads_is_never_grouped() -> None:
    rb = parse(
        "# T\n\n"
        "1. Check the node: `kubectl get nodes`\n"
        "2. Meanwhile, check the pods: `kubectl get pods -A`\n"
        "3. If any pod is Pending, go to step 5.\n"
        "4. Concurrently check events: `kubectl get events -A`\n"
        "5. Check quotas: `kubectl describe quota -A`\n"
    )
    assert [s.kind.value for s in rb.steps] == [
        "command",
        "command",
        "decision",
        "command",
        "command",
    ]
    assert groups(rb) == [("s1", None), ("s2", None), ("s3", None), ("s4", None), ("s5", None)]
    assert parallel_warnings(rb) == [
        "parallel: s2 says it runs alongside s1, but decision s3 reads its output; it keeps "
        "its order",
        "parallel: s4 says it runs alongside s3, but s3 cannot run alongside anything (it is a "
        "decision); it keeps its order",
    ]


def test_manual_steps_are_silently_not_grouped_from_prose() -> None:
    rb = parse(
        "# T\n\n"
        "1. Check the pods: `kubectl get pods -n web`\n"
        "2. Meanwhile, tell the #web channel what is going on.\n"
    )
    assert [s.kind.value for s in rb.steps] == ["command", "manual"]
    assert groups(rb) == [("s1", None), ("s2", None)]
    assert parallel_warnings(rb) == []


def test_a_marker_on_the_first_step_is_ignored() -> None:
    rb = parse("# T\n\n1. In parallel, check `df -h`\n2. Check `free -m`\n")
    assert groups(rb) == [("s1", None), ("s2", None)]
    assert parallel_warnings(rb) == []


# --- front-matter -------------------------------------------------------------------------------

BODY = """\
# Payments degraded

1. Check the API pods: `kubectl get pods -n payments`
2. Check the workers: `kubectl get pods -n payments-workers`
3. Check the database: `psql -h db-1 -c "SELECT 1"`
4. Restart the API: `kubectl rollout restart deploy/api -n payments`
5. Restart the workers: `kubectl rollout restart deploy/workers -n payments-workers`
6. Check the API again: `kubectl get pods -n payments`
7. Page the payments on-call.
8. If the error rate is still high, go to step 7.
"""


def with_front(front: str, body: str = BODY) -> ParsedRunbook:
    return parse(f"---\n{front}---\n{body}")


def test_front_matter_groups_by_number_and_by_id() -> None:
    rb = with_front("parallel:\n  - [s4, s5]\n  - [1, 2, 3]\n")
    assert groups(rb) == [
        ("s1", "p1"),
        ("s2", "p1"),
        ("s3", "p1"),
        ("s4", "p2"),
        ("s5", "p2"),
        ("s6", None),
        ("s7", None),
        ("s8", None),
    ]
    assert rb.warnings == []


def test_a_front_matter_group_with_yellow_steps_is_the_authors_word() -> None:
    rb = with_front("parallel:\n  - {steps: [4, 5], after: [1, s3]}\n")
    assert [rb.steps[3].risk, rb.steps[4].risk] == [RiskClass.YELLOW, RiskClass.YELLOW]
    assert groups(rb)[3:5] == [("s4", "p1"), ("s5", "p1")]
    assert rb.warnings == []


def test_front_matter_and_prose_groups_are_numbered_in_document_order() -> None:
    body = BODY.replace("3. Check the database", "3. Meanwhile, check the database")
    rb = with_front("parallel: [[4, 5]]\n", body)
    assert groups(rb)[:5] == [
        ("s1", None),
        ("s2", "p1"),
        ("s3", "p1"),
        ("s4", "p2"),
        ("s5", "p2"),
    ]


def test_parallel_false_turns_prose_markers_off() -> None:
    rb = parse("---\nparallel: false\n---\n" + LIST)
    assert all(s.parallel is None for s in rb.steps)
    assert parallel_warnings(rb) == []


@pytest.mark.parametrize(
    ("front", "warning"),
    [
        (
            "parallel: [2, 3]\n",
            "parallel: front-matter `parallel` is a list of steps ([2, 3]), not of groups; one "
            "group is written `parallel: [[2, 3]]`; ignored, steps run in order",
        ),
        (
            "parallel: [[1, 9]]\n",
            "parallel: group 1 names unknown step 9 (the runbook has steps 1-8, s1-s8); those "
            "steps run in order",
        ),
        (
            "parallel: [[s1, s99, x]]\n",
            "parallel: group 1 names unknown steps 's99', 'x' (the runbook has steps 1-8, s1-s8); "
            "those steps run in order",
        ),
        ("parallel: [[0, 1]]\n", "parallel: group 1 names unknown step 0"),
        ("parallel: [[true, 2]]\n", "parallel: group 1 names unknown step True"),
        (
            "parallel: [[2]]\n",
            "parallel: group 1 (s2) has fewer than 2 steps; nothing runs alongside it, it runs "
            "in order",
        ),
        ("parallel: [[2, s2]]\n", "parallel: group 1 (s2) has fewer than 2 steps"),
        (
            "parallel: [[1, 3]]\n",
            "parallel: group 1 (s1, s3) is not consecutive steps; only steps next to each other "
            "can run together, so they run in order",
        ),
        (
            "parallel: 2-3\n",
            "parallel: front-matter `parallel` should be a list of groups such as [[2, 3]] or "
            "[{steps: [2, 3], after: [1]}], not '2-3'; ignored, steps run in order",
        ),
        (
            "parallel: {steps: [1, 2]}\n",
            "parallel: front-matter `parallel` should be a list of groups",
        ),
        (
            "parallel: [{after: [1]}]\n",
            "parallel: group 1 has no `steps` list; it is ignored, its steps run in order",
        ),
        (
            "parallel: [{steps: 2}]\n",
            "parallel: group 1's `steps` should be a list of step numbers or ids, not 2; it is "
            "ignored, its steps run in order",
        ),
        (
            "parallel: [{steps: [1, 2], after: {x: 1}}]\n",
            "parallel: group 1 (s1, s2) `after` should be a list of step numbers or ids, not "
            "{'x': 1}; those steps run in order",
        ),
        (
            "parallel: [{steps: [2, 3], after: [12]}]\n",
            "parallel: group 1 (s2, s3) `after` names unknown step 12",
        ),
    ],
)
def test_a_bad_declaration_is_a_warning_and_its_steps_run_in_order(
    front: str, warning: str
) -> None:
    rb = with_front(front)
    assert all(s.parallel is None for s in rb.steps), groups(rb)
    assert len(parallel_warnings(rb)) == 1, rb.warnings
    assert parallel_warnings(rb)[0].startswith(warning)


def test_a_bad_group_is_ignored_and_the_good_ones_kept() -> None:
    rb = with_front("parallel: [[1, 2], 3, [4, 5]]\n")
    assert groups(rb)[:6] == [
        ("s1", "p1"),
        ("s2", "p1"),
        ("s3", None),
        ("s4", "p2"),
        ("s5", "p2"),
        ("s6", None),
    ]
    assert parallel_warnings(rb) == [
        "parallel: group 2 is 3, not a list of steps or a mapping with `steps`; it is "
        "ignored, its steps run in order"
    ]


@pytest.mark.parametrize(
    "front",
    [
        "parallel: true\n",
        "parallel: 2024-01-01\n",
        "parallel: [[]]\n",
        "parallel: [null, [null, null]]\n",
        "parallel: [[1.5, 2]]\n",
        "parallel: [[99999999999999999999999, 1]]\n",
        "parallel: [{steps: null}, {steps: [[1, 2]]}, {1: 2}]\n",
        "parallel: [{steps: [1, 2], after: [[1]]}]\n",
        "parallel: [[' 2 ', '3']]\n",
    ],
)
def test_odd_front_matter_never_raises(front: str) -> None:
    rb = with_front(front)
    assert len(rb.steps) == 8
    if front.startswith("parallel: [[' 2 '"):
        assert groups(rb)[1:3] == [("s2", "p1"), ("s3", "p1")]  # numbers written as strings
    else:
        assert all(s.parallel is None for s in rb.steps), groups(rb)
        assert parallel_warnings(rb), rb.warnings


def test_a_step_in_two_groups_keeps_the_first_group() -> None:
    rb = with_front("parallel:\n  - [1, 2]\n  - [2, 3]\n")
    assert groups(rb)[:3] == [("s1", "p1"), ("s2", "p1"), ("s3", None)]
    assert parallel_warnings(rb) == [
        "parallel: group 2 (s2, s3) repeats a step of an earlier group: s2 (group 1); a step is "
        "in one group at most, so this group is ignored and its steps run in order"
    ]


def test_decision_and_manual_steps_are_left_out_of_a_front_matter_group() -> None:
    # s7 is manual (and right before decision s8), s8 a decision.
    rb = with_front("parallel:\n  - [5, 6, 7]\n  - [7, 8]\n")
    assert groups(rb)[4:] == [("s5", "p1"), ("s6", "p1"), ("s7", None), ("s8", None)]
    assert parallel_warnings(rb) == [
        "parallel: group 1 (s5, s6, s7): s7 is left out of the group (it has no command); it "
        "runs in order",
        "parallel: group 2 (s7, s8): s7 is left out of the group (it has no command); it runs "
        "in order",
        "parallel: group 2 (s7, s8): s8 is left out of the group (it is a decision); it runs "
        "in order",
        "parallel: group 2 (s7, s8): without the steps left out, it is not 2 or more "
        "consecutive steps; its steps run in order",
    ]


def test_a_step_right_before_a_decision_is_left_out_of_a_front_matter_group() -> None:
    body = (
        "# T\n\n"
        "1. Check A: `uptime -p`\n"
        "2. Check B: `free -m`\n"
        "3. Check C: `df -h`\n"
        "4. If the disk is full, go to step 6.\n"
        "5. Check D: `vmstat 1 3`\n"
        "6. Clean up: `journalctl --vacuum-size=500M`\n"
    )
    rb = with_front("parallel: [[1, 2, 3]]\n", body)
    assert groups(rb)[:4] == [("s1", "p1"), ("s2", "p1"), ("s3", None), ("s4", None)]
    assert parallel_warnings(rb) == [
        "parallel: group 1 (s1, s2, s3): s3 is left out of the group (decision s4 reads its "
        "output); it runs in order"
    ]
    # A branch's target may start a group but not join one in the middle.
    rb = with_front("parallel: [[5, 6]]\n", body)
    assert rb.steps[3].branches[0].goto == "s6"
    assert groups(rb)[4:] == [("s5", None), ("s6", None)]
    assert parallel_warnings(rb)[0] == (
        "parallel: group 1 (s5, s6): s6 is left out of the group (a decision's branch leads to "
        "it, so it can only start a group); it runs in order"
    )


@pytest.mark.parametrize(
    ("front", "bad"),
    [
        # `after` a step of its own group
        ("parallel:\n  - {steps: [2, 3], after: [3]}\n", "group 1 (s2, s3) runs after s3"),
        # `after` a later step
        ("parallel:\n  - {steps: [2, 3], after: [s6]}\n", "group 1 (s2, s3) runs after s6"),
        # `after` a step of a later group
        (
            "parallel:\n  - {steps: [1, 2], after: [4]}\n  - [4, 5]\n",
            "group 1 (s1, s2) runs after s4",
        ),
    ],
)
def test_an_after_cycle_is_a_warning_and_its_group_runs_in_order(front: str, bad: str) -> None:
    rb = with_front(front)
    cycle = [w for w in parallel_warnings(rb) if "cycle" in w]
    assert cycle == [
        f"parallel: {bad}, which is in the same group or comes later: a dependency cycle; "
        "those steps run in order"
    ]
    assert groups(rb)[:3] == [("s1", None), ("s2", None), ("s3", None)]


def test_only_the_group_in_a_cycle_is_dropped() -> None:
    rb = with_front("parallel:\n  - {steps: [1, 2], after: [4]}\n  - {steps: [4, 5], after: [1]}\n")
    assert groups(rb)[:5] == [
        ("s1", None),
        ("s2", None),
        ("s3", None),
        ("s4", "p1"),
        ("s5", "p1"),
    ]
    assert len(parallel_warnings(rb)) == 1
    assert "group 1 (s1, s2) runs after s4" in parallel_warnings(rb)[0]


def test_unknown_keys_of_a_group_are_warned_and_the_group_kept() -> None:
    rb = with_front("parallel:\n  - {steps: [1, 2], afterr: [1]}\n")
    assert groups(rb)[:2] == [("s1", "p1"), ("s2", "p1")]
    assert parallel_warnings(rb) == [
        "parallel: group 1 has unknown key(s) afterr (only `steps` and `after`); they are ignored"
    ]


def test_a_bug_in_the_grouping_costs_the_groups_not_the_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ddoc.runbooks.parsing import parallel

    def broken(*args: Any) -> list[list[int]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(parallel, "_prose_groups", broken)
    rb = parse(LIST)
    assert len(rb.steps) == 6
    assert all(s.parallel is None for s in rb.steps)
    assert parallel_warnings(rb) == [
        "parallel: the parallel groups could not be worked out; steps run in order"
    ]


def test_groups_survive_the_stored_json() -> None:
    rb = with_front("parallel: [[1, 2]]\n")
    again = ParsedRunbook.from_dict(rb.to_dict())
    assert groups(again)[:3] == [("s1", "p1"), ("s2", "p1"), ("s3", None)]


# --- the AI parser ------------------------------------------------------------------------------

AI_RUNBOOK = """\
---
parallel: [[2, 3]]
---
# Checkout slow

1. List the pods: `kubectl get pods -n checkout`
2. Check the nodes: `kubectl top nodes`
3. Restart the deployment: `kubectl rollout restart deploy/checkout -n checkout`
"""


def ai_step(text: str, line: int, command: str) -> dict[str, Any]:
    return {
        "text": text,
        "kind": "command",
        "command": command,
        "language": "kubectl",
        "risk": None,
        "risk_reason": None,
        "rollback": None,
        "branches": [],
        "source": {"start_line": line, "end_line": line},
    }


def test_the_ai_parser_applies_front_matter_and_prose_groups_to_its_own_steps() -> None:
    answer = {
        "title": "Checkout slow",
        "summary": "",
        "triggers": {"alerts": [], "services": [], "labels": {}},
        "prerequisites": [],
        "variables": [],
        "steps": [
            ai_step("List the pods", 6, "kubectl get pods -n checkout"),
            ai_step("Check the nodes", 7, "kubectl top nodes"),
            ai_step(
                "Restart the deployment", 8, "kubectl rollout restart deploy/checkout -n checkout"
            ),
            ai_step("Meanwhile, list the pods again", 6, "kubectl get pods -n checkout"),
        ],
    }
    fake = FakeAnthropicAPI().tool_use(answer)
    config = AIParserConfig(api_key="sk-ant-test-0123456789abcdef", base_url=BASE_URL, model="m")
    rb = parse_with_ai(
        AI_RUNBOOK, "markdown", config=config, classify=classify, http_client=fake.client()
    )
    assert rb.parser == "ai"
    # Front-matter groups s2 with the yellow s3; the prose "Meanwhile" on s4 is refused, since
    # s3 (the step before it) is in a front-matter group already.
    assert groups(rb) == [("s1", None), ("s2", "p1"), ("s3", "p1"), ("s4", None)]
    assert parallel_warnings(rb) == [
        "parallel: s4 says it runs alongside s3, but front-matter `parallel` groups s3 "
        "already; it keeps its order"
    ]
