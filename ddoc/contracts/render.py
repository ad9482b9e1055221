"""Render a runbook command with variable values, so that a value can only ever be data.

Values never become shell syntax:
- outside quotes and inside double quotes, a placeholder becomes a reference to an environment
  variable (`"${DDOC_VAR_NAME}"`) that the agent sets; the shell does not re-parse expansions;
- inside single quotes (usually a string another shell parses again: `ssh host '…'`,
  `bash -c '…'`), the value is inserted already shell-quoted for that inner shell.

Stdlib only: runs inside the workflow sandbox.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ddoc.contracts.execution import AlertContext, VariableSpec


@dataclass
class RenderedCommand:
    command: str
    env: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def env_name(variable: str) -> str:
    return "DDOC_VAR_" + re.sub(r"[^A-Za-z0-9]", "_", variable).upper()


def resolve_values(
    variables: Sequence[VariableSpec],
    alert: AlertContext | None,
    given: Mapping[str, str],
) -> dict[str, str]:
    """Values for each variable: given by a human first, then the alert field it maps to."""
    values: dict[str, str] = {}
    labels = {k.lower(): v for k, v in (alert.labels if alert else {}).items()}
    annotations = {k.lower(): v for k, v in (alert.annotations if alert else {}).items()}
    for var in variables:
        if var.name in given:
            values[var.name] = given[var.name]
            continue
        key = (var.key or var.name).lower()
        if var.source == "annotation" and key in annotations:
            values[var.name] = annotations[key]
        elif key in labels:
            values[var.name] = labels[key]
        elif var.name.lower() in labels:
            values[var.name] = labels[var.name.lower()]
    return values


def render_command(
    command: str, variables: Sequence[VariableSpec], values: Mapping[str, str]
) -> RenderedCommand:
    present = [v for v in variables if v.syntax and v.syntax in command]
    if not present:
        return RenderedCommand(command=command)
    # Longest syntax first, so `$NAMESPACE_ID` is never consumed as `$NAMESPACE` + `_ID`.
    present.sort(key=lambda v: len(v.syntax), reverse=True)
    rendered = RenderedCommand(command="")
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(command):
        var = _placeholder_at(command, i, present)
        if var is not None:
            if var.name not in values:
                if var.name not in rendered.missing:
                    rendered.missing.append(var.name)
                out.append(var.syntax)
            else:
                out.append(_substitute(var, values[var.name], quote, rendered.env))
            i += len(var.syntax)
            continue
        char = command[i]
        if char == "\\" and quote != "'" and i + 1 < len(command):
            out.append(command[i : i + 2])
            i += 2
            continue
        if quote is None and char in "'\"":
            quote = char
        elif quote == char:
            quote = None
        out.append(char)
        i += 1
    rendered.command = "".join(out)
    return rendered


def _placeholder_at(command: str, i: int, present: Sequence[VariableSpec]) -> VariableSpec | None:
    for var in present:
        if not command.startswith(var.syntax, i):
            continue
        end = i + len(var.syntax)
        # `$NAME` must not be the prefix of a longer shell word such as `$NAMESPACE`.
        if (
            var.syntax.startswith("$")
            and not var.syntax.startswith("${")
            and end < len(command)
            and (command[end].isalnum() or command[end] == "_")
        ):
            continue
        return var
    return None


def _substitute(var: VariableSpec, value: str, quote: str | None, env: dict[str, str]) -> str:
    if quote == "'":
        # Literal for the inner shell: quote the value for it, then escape for the outer quotes.
        return shlex.quote(value).replace("'", "'\\''")
    name = env_name(var.name)
    env[name] = value
    return "${" + name + "}" if quote == '"' else '"${' + name + '}"'
