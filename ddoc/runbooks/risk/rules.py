"""The rule machinery and the tables for cluster and deploy tooling (kubectl, helm, git, …).

A tool's rules form a tree: the root is the tool, ``sub`` maps the next positional word to a
more specific rule (``"*"`` matches any word, ``"describe-*"`` a prefix), ``modes`` are
options that replace the rule they sit on (``iptables -L``), and ``flags`` escalate every
rule below them (``--force``, ``-auto-approve``). Every rule carries an id such as
``kubectl.delete`` that is shown to users and recorded in the audit trail.

Flag keys: ``--long`` matches ``--long`` and ``--long=…``; ``-x`` matches ``-x`` and short
clusters such as ``-rxf``; ``-word`` matches exactly; a bare ``word`` matches a positional.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk.options import is_system_path

_EMPTY: Mapping[str, Rule] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Rule:
    id: str
    level: RiskClass
    reason: str
    sub: Mapping[str, Rule] = field(default_factory=lambda: _EMPTY)
    flags: Mapping[str, Rule] = field(default_factory=lambda: _EMPTY)
    modes: Mapping[str, Rule] = field(default_factory=lambda: _EMPTY)
    paths: str = ""  # "any" / "last": a system path among the arguments makes it red
    scan: bool = False  # the verb may come after group words (gcloud, az)
    prefixes: tuple[tuple[str, Rule], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        pre = sorted(
            ((k[:-1], r) for k, r in self.sub.items() if k.endswith("*") and k != "*"),
            key=lambda kv: -len(kv[0]),
        )
        object.__setattr__(self, "prefixes", tuple(pre))


@dataclass(frozen=True)
class Tool:
    root: Rule
    value_opts: frozenset[str] = frozenset()  # options whose value is the next word
    upper: bool = False  # match subcommands case-insensitively (redis)


def _rule(level: RiskClass, rid: str, reason: str, kw: dict[str, Any]) -> Rule:
    for key in ("sub", "flags", "modes"):
        if key in kw:
            kw[key] = MappingProxyType(dict(kw[key]))
    return Rule(rid, level, reason, **kw)


def G(rid: str, reason: str, **kw: Any) -> Rule:
    return _rule(RiskClass.GREEN, rid, reason, kw)


def Y(rid: str, reason: str, **kw: Any) -> Rule:
    return _rule(RiskClass.YELLOW, rid, reason, kw)


def R(rid: str, reason: str, **kw: Any) -> Rule:
    return _rule(RiskClass.RED, rid, reason, kw)


def opts(text: str) -> frozenset[str]:
    return frozenset(text.split())


def label(rule_id: str) -> str:
    """``gitlab_ctl.repmgr`` -> ``gitlab-ctl repmgr``: a rule id as the command reads."""
    return rule_id.replace(".", " ").replace("gitlab_", "gitlab-")


def greens(prefix: str, names: str, what: str) -> dict[str, Rule]:
    """Many read-only verbs at once: ``{"get": G("kubectl.get", "kubectl get <what>")}``."""
    return {n: G(f"{prefix}.{n}", f"{label(prefix)} {n} {what}") for n in names.split()}


def yellows(prefix: str, names: str, what: str) -> dict[str, Rule]:
    return {n: Y(f"{prefix}.{n}", f"{label(prefix)} {n} {what}") for n in names.split()}


def reds(prefix: str, names: str, what: str) -> dict[str, Rule]:
    return {n: R(f"{prefix}.{n}", f"{label(prefix)} {n} {what}") for n in names.split()}


class _Flags:
    """The options present in an argument list, indexed for the key forms above."""

    __slots__ = ("exact", "letters", "longs", "words")

    def __init__(self, args: Sequence[str]) -> None:
        self.longs: set[str] = set()
        self.exact: set[str] = set()
        self.letters: set[str] = set()
        self.words: set[str] = set()
        for arg in args:
            if arg.startswith("--"):
                self.longs.add(arg.split("=", 1)[0])
            elif arg.startswith("-") and len(arg) > 1:
                self.exact.add(arg.split("=", 1)[0])
                if arg[1:].isalpha():
                    self.letters.update(arg[1:])
            else:
                self.words.add(arg)

    def has(self, key: str) -> bool:
        if key.startswith("--"):
            return key in self.longs
        if key.startswith("-"):
            if len(key) == 2 and key[1].isalpha():
                return key[1] in self.letters
            return key in self.exact
        return key in self.words


def positionals(args: Sequence[str], value_opts: frozenset[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--":
            out.extend(args[i + 1 :])
            break
        elif arg.startswith("-") and len(arg) > 1:
            skip = arg in value_opts
        else:
            out.append(arg)
    return out


def _child(rule: Rule, word: str, upper: bool) -> Rule | None:
    key = word.upper() if upper else word
    hit = rule.sub.get(key)
    if hit is not None:
        return hit
    for prefix, sub in rule.prefixes:
        if key.startswith(prefix):
            return sub
    return rule.sub.get("*")


def evaluate(tool: Tool, args: Sequence[str]) -> list[Rule]:
    """Every rule that applies to ``tool args…``; the caller takes the worst."""
    pos = positionals(args, tool.value_opts)
    flags = _Flags(args)
    node, idx = tool.root, 0
    path: list[Rule] = [node]
    extra: list[Rule] = []
    while node.sub and idx < len(pos):
        child = _child(node, pos[idx], tool.upper)
        if child is None and (node.scan or len(path) == 1):
            # An unrecognised leading word (an option's value we do not know, a group
            # name): look further for a verb, but stay at least as cautious as the tool.
            for j in range(idx + 1, len(pos)):
                child = _child(node, pos[j], tool.upper)
                if child is not None:
                    extra.extend(() if node.scan else (node,))
                    idx = j
                    break
        if child is None:
            break
        node, idx = child, idx + 1
        path.append(node)
    out = [r for key, r in node.modes.items() if flags.has(key)] or [node]
    out.extend(extra)
    for step in path:
        out.extend(r for key, r in step.flags.items() if flags.has(key))
    if node.paths:
        targets = pos[idx:] if node.paths == "any" else pos[-1:]
        hit = next((t for t in targets if is_system_path(t)), None)
        if hit is not None:
            what = node.reason.split(" (", 1)[0]  # drop "(reversible)": not here
            out.append(R(f"{node.id}.system", f"{what} on a system path ({hit})"))
    return out
