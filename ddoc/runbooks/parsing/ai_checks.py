"""Checks on the AI parser's answer: shape validation and grounding in the source text.

``validate`` turns the ``record_runbook`` tool input into runbook objects or raises
``InvalidOutput`` (the caller then falls back to the deterministic parser). ``Source``
decides whether a command the model returned really occurs in the runbook.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from ddoc.runbooks.model import (
    Branch,
    Check,
    Prerequisite,
    RiskClass,
    Rollback,
    RollbackOrigin,
    SourceSpan,
    Step,
    StepKind,
    Triggers,
    Variable,
    VariableSource,
)
from ddoc.runbooks.parsing.variables import normalise

_TITLE_LIMIT = 200
_SUMMARY_LIMIT = 500
_WS = re.compile(r"\s+")
# Per line: indentation, blockquote markers and a `$ ` / `# ` shell prompt.
_LINE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:[$#][ \t]+)?", re.M)
_DOLLAR_PROMPT = re.compile(r"^[ \t]*\$[ \t]+", re.M)
_GOTO = re.compile(r"^\s*s?(\d+)\s*$", re.I)
_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


class InvalidOutput(ValueError):
    """The tool input does not have the shape of a runbook; the message names the field."""


@dataclass
class AIStep:
    step: Step  # id is the model's positional id (s1, s2, ...) until renumbered
    risk: RiskClass | None
    risk_reason: str | None


@dataclass
class AIRunbook:
    title: str
    summary: str
    steps: list[AIStep]
    triggers: Triggers = field(default_factory=Triggers)
    prerequisites: list[Prerequisite] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)


# --- validation --------------------------------------------------------------------------
def validate(raw: Any, n_lines: int) -> AIRunbook:
    data = _obj(raw, "input")
    triggers = _obj(data.get("triggers") or {}, "triggers")
    labels = _obj(triggers.get("labels") or {}, "triggers.labels")
    return AIRunbook(
        title=_squash(_str(data.get("title"), "title"), _TITLE_LIMIT),
        summary=_squash(_str(data.get("summary"), "summary"), _SUMMARY_LIMIT),
        steps=_items(data, "steps", lambda v, p: _step(v, p, n_lines), required=True),
        triggers=Triggers(
            alerts=_items(triggers, "alerts", _nonempty, prefix="triggers."),
            services=_items(triggers, "services", _nonempty, prefix="triggers."),
            labels={k: _str(v, f"triggers.labels.{k}") for k, v in labels.items()},
        ),
        prerequisites=_items(data, "prerequisites", _prerequisite),
        variables=[v for v in _items(data, "variables", _variable) if v is not None],
    )


def _step(value: Any, path: str, n_lines: int) -> AIStep:
    data = _obj(value, path)
    command = _command(_opt_str(data.get("command"), f"{path}.command"))
    span = _obj(data.get("source"), f"{path}.source")
    start = min(max(1, _int(span.get("start_line"), f"{path}.source.start_line")), n_lines)
    end = min(max(start, _int(span.get("end_line"), f"{path}.source.end_line")), n_lines)
    rollback_raw = data.get("rollback")
    rollback = None if rollback_raw is None else _rollback(rollback_raw, f"{path}.rollback")
    text = _str(data.get("text"), f"{path}.text").strip()
    step = Step(
        id="",
        text=text,
        kind=_enum(data.get("kind"), f"{path}.kind", StepKind),
        source=SourceSpan(start, end),
        command=command,
        language=_opt_str(data.get("language"), f"{path}.language") or None,
        rollback=rollback,
        branches=_items(data, "branches", _branch, prefix=f"{path}."),
        precheck=_check(data.get("precheck"), f"{path}.precheck"),
        verify=_check(data.get("verify"), f"{path}.verify"),
    )
    risk_raw = data.get("risk")
    risk = None if risk_raw is None else _enum(risk_raw, f"{path}.risk", RiskClass)
    return AIStep(step, risk, _opt_str(data.get("risk_reason"), f"{path}.risk_reason") or None)


def _rollback(value: Any, path: str) -> Rollback:
    data = _obj(value, path)
    return Rollback(
        command=_command(_opt_str(data.get("command"), f"{path}.command")),
        text=_str(data.get("text", ""), f"{path}.text").strip(),
        origin=_enum(data.get("origin", "runbook"), f"{path}.origin", RollbackOrigin),
    )


def _branch(value: Any, path: str) -> Branch:
    data = _obj(value, path)
    raw_check = data.get("check")
    check: dict[str, Any] | None = None
    if isinstance(raw_check, dict):
        # Keep only the checks the executor understands, with the right types.
        check = {}
        if type(raw_check.get("exit_code")) is int:
            check["exit_code"] = raw_check["exit_code"]
        if raw_check.get("exit_code_nonzero") is True:
            check["exit_code_nonzero"] = True
        pattern = raw_check.get("output_pattern")
        if isinstance(pattern, str) and pattern.strip():
            check["output_pattern"] = pattern
    return Branch(
        condition=_str(data.get("condition"), f"{path}.condition"),
        text=_str(data.get("text"), f"{path}.text"),
        goto=_opt_str(data.get("goto"), f"{path}.goto"),
        check=check or None,
    )


def _check(value: Any, path: str) -> Check | None:
    """A step's precheck or verify; one whose expectation the executor does not know is none,
    as a branch's unknown check is (the step itself stays)."""
    if value is None:
        return None
    data = _obj(value, path)
    command = _command(_str(data.get("command"), f"{path}.command"))
    if command is None:
        return None
    expect = _expect(data.get("expect"))
    if expect is None:
        return None
    check = Check(command=command, expect=expect, text=command)
    for key in ("within_seconds", "interval_seconds"):
        if data.get(key) is not None:
            setattr(check, key, max(0, _int(data[key], f"{path}.{key}")))
    return check


def _expect(raw: Any) -> dict[str, Any] | None:
    if raw is None or raw == {}:
        return {"exit_code": 0}
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    if type(raw.get("exit_code")) is int:
        return {"exit_code": raw["exit_code"]}
    pattern = raw.get("output_pattern")
    if isinstance(pattern, str) and pattern.strip():
        return {"output_pattern": pattern}
    threshold = raw.get("threshold")
    if (
        isinstance(threshold, dict)
        and threshold.get("op") in ("<", "<=", ">", ">=", "==", "!=")
        and type(threshold.get("value")) in (int, float)
    ):
        return {"threshold": {"op": threshold["op"], "value": threshold["value"]}}
    return None


def _prerequisite(value: Any, path: str) -> Prerequisite:
    data = _obj(value, path)
    kind = _str(data.get("kind"), f"{path}.kind")
    if kind not in ("access", "vpn", "tool", "other"):
        raise InvalidOutput(f"{path}.kind: unknown kind {kind!r}")
    return Prerequisite(text=_str(data.get("text"), f"{path}.text"), kind=kind)


def _variable(value: Any, path: str) -> Variable | None:
    data = _obj(value, path)
    name = normalise(_str(data.get("name"), f"{path}.name"))
    syntax = _str(data.get("syntax"), f"{path}.syntax")
    source = _enum(data.get("source"), f"{path}.source", VariableSource)
    key = _opt_str(data.get("key"), f"{path}.key")
    if not name or not syntax.strip():
        return None
    # A label or annotation is looked up by its key; the normalised name is the usual key.
    key = None if source == VariableSource.ASK else (key or "").strip() or name
    return Variable(name=name, syntax=syntax, source=source, key=key)


def _command(command: str | None) -> str | None:
    """The command as it would run: common indentation and `$ ` prompts removed."""
    if command is None:
        return None
    command = textwrap.dedent(command).strip("\n").rstrip()
    first = next((ln for ln in command.split("\n") if ln.strip()), "")
    if _DOLLAR_PROMPT.match(first):
        command = _DOLLAR_PROMPT.sub("", command)
    return command if command.strip() else None


def _items(
    data: dict[str, Any],
    key: str,
    parse: Callable[[Any, str], _T],
    *,
    required: bool = False,
    prefix: str = "",
) -> list[_T]:
    value = data.get(key)
    if value is None and not required:
        return []
    path = f"{prefix}{key}"
    if not isinstance(value, list):
        raise InvalidOutput(f"{path}: expected a list")
    return [parse(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidOutput(f"{path}: expected an object")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidOutput(f"{path}: expected a string")
    return value


def _nonempty(value: Any, path: str) -> str:
    return _str(value, path).strip()


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _int(value: Any, path: str) -> int:
    if type(value) is not int:  # bool is an int subclass; it is not a line number
        raise InvalidOutput(f"{path}: expected an integer")
    return value


def _enum(value: Any, path: str, enum: type[_E]) -> _E:
    try:
        return enum(_str(value, path))
    except ValueError:
        raise InvalidOutput(f"{path}: unknown value {value!r}") from None


def _squash(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- grounding ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rejection:
    warning: str  # start of the warning line; the command follows
    message: str  # the quality flag's message


def _forms(text: str) -> set[str]:
    """Whitespace-normalised forms: as written, and with `\\`-newline continuations joined."""
    return {_WS.sub(" ", text).strip(), _WS.sub(" ", text.replace("\\\n", " ")).strip()} - {""}


@dataclass
class _Known:
    command: str  # as the deterministic parser extracted it (verbatim, prompts removed)
    joined: str
    starts: frozenset[int]
    ends: frozenset[int]


class Source:
    """The runbook's text(s) and the deterministic parser's commands, for grounding."""

    def __init__(self, texts: list[str], known_commands: list[str]) -> None:
        self._texts = texts
        self._variants = {f for t in texts for v in (t, _LINE_PREFIX.sub("", t)) for f in _forms(v)}
        self._known = [_known(c) for c in known_commands]

    def occurs(self, text: str) -> bool:
        if any(text in t for t in self._texts):
            return True
        forms = _forms(text)
        return bool(forms) and any(f in v for f in forms for v in self._variants)

    def check(self, command: str) -> Rejection | None:
        """None when ``command`` is grounded; else why it is rejected."""
        if not self.occurs(command):
            return Rejection(
                "hallucinated command rejected", "command does not occur in the runbook"
            )
        # A command cut out of a longer one (`kubectl delete pod x` from `... --dry-run=client`,
        # `rm -rf *` from `cd /tmp && rm -rf *`) occurs verbatim but does something else.
        canon = _WS.sub(" ", command.replace("\\\n", " ")).strip()
        containing = [k for k in self._known if canon in k.joined]
        if not containing or any(_aligned(canon, k) for k in containing):
            return None
        return Rejection(
            "truncated command rejected",
            f"command is only part of `{_cap(containing[0].joined)}` in the runbook",
        )

    def verbatim(self, command: str) -> str:
        """The source's own text for a grounded command that differs only in whitespace."""
        canon = _WS.sub(" ", command.replace("\\\n", " ")).strip()
        return next((k.command for k in self._known if k.joined == canon), command)


def _known(command: str) -> _Known:
    lines = [_WS.sub(" ", ln).strip() for ln in command.replace("\\\n", " ").split("\n")]
    lines = [ln for ln in lines if ln]
    starts: set[int] = set()
    ends: set[int] = set()
    offset = 0
    for ln in lines:
        starts.add(offset)
        ends.add(offset + len(ln))
        offset += len(ln) + 1
    return _Known(command, " ".join(lines), frozenset(starts), frozenset(ends))


def _aligned(canon: str, known: _Known) -> bool:
    """Does ``canon`` occur in ``known`` as whole lines (a legitimate split of a block)?"""
    at = known.joined.find(canon)
    while at != -1:
        if at in known.starts and at + len(canon) in known.ends:
            return True
        at = known.joined.find(canon, at + 1)
    return False


def _cap(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def goto_position(goto: str | None) -> int | None:
    """The 1-based step position a model's ``goto`` ("s3") names, if any."""
    m = _GOTO.match(goto) if goto else None
    return int(m.group(1)) if m else None
