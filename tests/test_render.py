"""Variable rendering: values reach the shell as data, in every quoting context."""

from __future__ import annotations

import subprocess

import pytest

from ddoc.contracts.execution import AlertContext, VariableSpec
from ddoc.contracts.render import env_name, render_command, resolve_values

POD = VariableSpec(name="pod", syntax="$POD", source="label", key="pod")
NS = VariableSpec(name="namespace", syntax="<namespace>", source="label", key="namespace")
SVC = VariableSpec(name="service", syntax="{{ service }}", source="ask")

HOSTILE = [
    "x; rm -rf /tmp/nothing",
    "$(id)",
    "`id`",
    "a'b",
    'a"b',
    "a\\'b",
    "'; echo owned; '",
    '"; echo owned; "',
    "with space",
    "*",
    "\n echo owned",
]


def run(command: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["/bin/bash", "-c", command], env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "template",
    [
        "printf '%s\\n' $POD",
        'printf "%s\\n" "$POD"',
        "printf '%s\\n' <namespace>",
        'printf "%s\\n" "<namespace>"',
        "printf '%s\\n' {{ service }}",
    ],
)
def test_value_is_one_literal_argument(template: str, value: str) -> None:
    values = {"pod": value, "namespace": value, "service": value}
    rendered = render_command(template, [POD, NS, SVC], values)
    assert rendered.missing == []
    assert run(rendered.command, rendered.env) == value + "\n"


@pytest.mark.parametrize("value", HOSTILE)
def test_value_inside_single_quotes_is_literal_for_the_inner_shell(value: str) -> None:
    # `bash -c '…'` stands for ssh/kubectl exec: a string parsed again by another shell.
    rendered = render_command("bash -c 'printf \"%s\\n\" <namespace>'", [NS], {"namespace": value})
    assert run(rendered.command, rendered.env) == value + "\n"


def test_missing_values_are_reported_and_left_in_place() -> None:
    rendered = render_command("kubectl -n <namespace> logs $POD", [NS, POD], {"pod": "p1"})
    assert rendered.missing == ["namespace"]
    assert "<namespace>" in rendered.command


def test_longer_shell_names_are_not_prefix_matched() -> None:
    rendered = render_command("echo $PODS $POD", [POD], {"pod": "p"})
    assert rendered.command == 'echo $PODS "${' + env_name("pod") + '}"'


def test_values_come_from_the_human_then_the_alert() -> None:
    alert = AlertContext(
        title="t",
        source="alertmanager",
        dedup_key="k",
        labels={"Pod": "from-label", "namespace": "prod"},
        annotations={"summary": "s"},
    )
    summary = VariableSpec(name="summary", syntax="$SUMMARY", source="annotation", key="summary")
    values = resolve_values([POD, NS, SVC, summary], alert, {"namespace": "given"})
    assert values == {"pod": "from-label", "namespace": "given", "summary": "s"}
