"""The classifier: split a command line, unwrap wrappers, apply tenant rules, then the built-in
rule tables, and take the worst verdict. Also loads tenant rules from YAML.

Nothing here raises on any input string: unknown commands are yellow (never green), and a
bug in a rule degrades to a yellow verdict rather than an exception.
"""

from __future__ import annotations

import gc
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk import sql as sqlmod
from ddoc.runbooks.risk.handlers import HANDLERS
from ddoc.runbooks.risk.model import PartAssessment, RiskAssessment, RiskRulesError
from ddoc.runbooks.risk.options import is_harmless_sink, is_system_path
from ddoc.runbooks.risk.rules import Tool, evaluate
from ddoc.runbooks.risk.rules_cloud import TOOLS as CLOUD_TOOLS
from ddoc.runbooks.risk.rules_data import TOOLS as DATA_TOOLS
from ddoc.runbooks.risk.rules_deploy import TOOLS as DEPLOY_TOOLS
from ddoc.runbooks.risk.rules_host import TOOLS as HOST_TOOLS
from ddoc.runbooks.risk.rules_services import TOOLS as SERVICE_TOOLS
from ddoc.runbooks.risk.shell import Redirect, SimpleCommand, repeats, split_commands
from ddoc.runbooks.risk.wrappers import FROM_FILE, WRAPPERS, Final, Shell, Sql, Step, Words

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED
MAX_DEPTH = 8  # nested wrappers / scripts; deeper is not proven read-only
_MAX_UNWRAP = 32
_CACHE_LIMIT = 4096  # only cache command lines shorter than this
_GC_PAUSE_LIMIT = 10_000

TOOLS: dict[str, Tool] = {
    **HOST_TOOLS,
    **SERVICE_TOOLS,
    **DATA_TOOLS,
    **DEPLOY_TOOLS,
    **CLOUD_TOOLS,
}
ALIASES = {
    "k": "kubectl",
    "oc": "kubectl",
    "podman": "docker",
    "nerdctl": "docker",
    "ip6tables": "iptables",
    "tofu": "terraform",
    "terragrunt": "terraform",
    "helm3": "helm",
    "sudoedit": "sudoedit",
    "mariadb-admin": "mysqladmin",
}
_KNOWN = frozenset(TOOLS) | frozenset(WRAPPERS) | frozenset(HANDLERS) | frozenset(ALIASES)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_SAFE_WORD = re.compile(r"[^\s'\"\\;&|<>()]+")
_SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".rb", ".pl", ".ps1", ".js")
_OUTPUT_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_RISK_NAMES = {"green": G, "yellow": Y, "red": R}


@dataclass(frozen=True)
class TenantRule:
    id: str
    pattern: re.Pattern[str]
    level: RiskClass
    reason: str


class RuleSet:
    """Built-in rules plus optional tenant rules (checked first, first match wins)."""

    __slots__ = ("programs", "tenant")

    def __init__(self, tenant: Iterable[TenantRule] = (), programs: Iterable[str] = ()) -> None:
        self.tenant: tuple[TenantRule, ...] = tuple(tenant)
        # The tenant's own programs: the parser recognises them as commands in prose.
        self.programs: frozenset[str] = frozenset(programs)

    @classmethod
    def builtin(cls) -> RuleSet:
        return _BUILTIN

    def match(self, command: str) -> TenantRule | None:
        return next((r for r in self.tenant if r.pattern.search(command)), None)

    def __repr__(self) -> str:
        return f"RuleSet(tenant={[r.id for r in self.tenant]})"


_BUILTIN = RuleSet()


@dataclass
class _Ctx:
    rules: RuleSet
    cache: dict[tuple[SimpleCommand, int], list[PartAssessment]] = field(default_factory=dict)


def display(words: Iterable[str]) -> str:
    """A readable command line: words quoted only where the shell would need it."""
    return " ".join(w if _SAFE_WORD.fullmatch(w) else shlex.quote(w) for w in words)


def _tool_name(word: str) -> str:
    name = word.rsplit("/", 1)[-1] if "/" in word else word
    if "/" in word and name not in _KNOWN:
        return "/"  # a path to something we do not know: a script
    if name.startswith("mkfs."):
        return name if name in TOOLS else "mkfs"
    if name.endswith(".sh") and name[:-3] in _KNOWN:
        name = name[:-3]
    return ALIASES.get(name, name)


def _redirect_parts(cmd: SimpleCommand) -> list[PartAssessment]:
    parts: list[PartAssessment] = []
    shown = display(cmd.words)
    for r in dict.fromkeys(cmd.redirects):
        if not _writes(r) or is_harmless_sink(r.target):
            continue
        text = f"{shown} {r.fd}{r.op} {r.target}".strip()
        if is_system_path(r.target):
            reason = f"redirection writes to a system path ({r.target})"
            parts.append(PartAssessment(text, R, reason, "shell.redirect.system"))
        else:
            parts.append(PartAssessment(text, Y, "redirection writes a file", "shell.redirect"))
    return parts


def _writes(r: Redirect) -> bool:
    if r.op in _OUTPUT_OPS:
        return True
    # `>&file` writes a file; `2>&1` and `>&-` only move descriptors.
    return r.op == ">&" and not (r.target.isdigit() or r.target in ("-", ""))


# kubectl on every object, or every namespace, or whatever a label selector finds cluster-wide.
_KUBECTL_ALL = frozenset({"--all", "-A", "--all-namespaces", "--all-namespaces=true"})
_KUBECTL_SELECTOR = re.compile(r"^(?:-l|--selector)(?:=?.*)$")
_KUBECTL_NAMESPACE = re.compile(r"^(?:-n|--namespace)(?:=?.*)$")


def _kubectl_fan_out(args: tuple[str, ...]) -> str | None:
    """What makes a kubectl command line reach every match: `--all`, every namespace, or a
    label selector with no namespace."""
    for arg in args:
        if arg in _KUBECTL_ALL:
            return arg
    if any(_KUBECTL_SELECTOR.match(a) for a in args) and not any(
        _KUBECTL_NAMESPACE.match(a) for a in args
    ):
        return "a label selector without a namespace"
    return None


def _fanned_out(part: PartAssessment, how: str) -> PartAssessment:
    """A reversible change made to every target at once is red: it cannot be approved one
    target at a time, and undoing it is as wide as doing it. Yellow parts that are no known
    change to the targets stay yellow: the shell's own (an unknown program or a script, not
    proven read-only; a redirection), a tool writing its output to a local file, an interactive
    session."""
    local = part.rule.startswith("shell.") or part.rule.endswith((".output", ".interactive"))
    if part.level != Y or local:
        return part
    reason = f"{part.reason}, on every target at once (fan-out: {how})"
    return PartAssessment(part.command, R, reason, f"{part.rule}.fan_out")


def _classify_text(text: str, ctx: _Ctx, depth: int) -> list[PartAssessment]:
    if depth > MAX_DEPTH:
        return [PartAssessment(text[:200], Y, "nested too deeply to analyse", "shell.too_deep")]
    if not text.strip():
        return [PartAssessment(text, Y, "empty command", "shell.empty")]
    parts: list[PartAssessment] = []
    for cmd in split_commands(text):
        key = (cmd, depth)
        cached = ctx.cache.get(key)
        if cached is None:
            cached = _redirect_parts(cmd)
            if cmd.words:
                stdin = cmd.stdin
                if stdin is None and any(r.op == "<" for r in cmd.redirects):
                    stdin = FROM_FILE
                cached.extend(_classify_words(cmd.words, stdin, cmd.loose, ctx, depth))
            ctx.cache[key] = cached
        parts.extend(cached)
    how = repeats(text) if parts else None
    if how:  # a change repeated over a list is a change to every item of it at once
        tenant = {rule.id for rule in ctx.rules.tenant}  # a tenant rule has the last word
        parts = [p if p.rule in tenant else _fanned_out(p, how) for p in parts]
    return parts or [PartAssessment(text.strip()[:200], Y, "empty command", "shell.empty")]


def _classify_words(
    words: tuple[str, ...], stdin: str | None, loose: bool, ctx: _Ctx, depth: int
) -> list[PartAssessment]:
    name, original = "", words
    for _ in range(_MAX_UNWRAP):
        while words and _ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words:
            return [PartAssessment(display(original), G, "sets a shell variable", "shell.assign")]
        name = _tool_name(words[0])
        wrapper = WRAPPERS.get(name)
        steps = wrapper(words, stdin, loose) if wrapper is not None else None
        if steps is None:
            break
        if len(steps) == 1 and isinstance(steps[0], Final):
            # The wrapper cannot see inside (`sh check.sh`): the tenant, who can, decides.
            tenant = ctx.rules.match(display(words))
            if tenant is not None:
                return [PartAssessment(display(words), tenant.level, tenant.reason, tenant.id)]
        if len(steps) == 1 and isinstance(steps[0], Words):
            words = steps[0].words
            continue
        return _run(steps, words, stdin, loose, ctx, depth)
    text = display(words)
    tenant = ctx.rules.match(text)
    if tenant is not None:
        return [PartAssessment(text, tenant.level, tenant.reason, tenant.id)]
    handler = HANDLERS.get(name)
    if handler is not None:
        steps = handler(words, stdin, loose)
        if steps is not None:
            return _run(steps, words, stdin, loose, ctx, depth)
    tool = TOOLS.get(name)
    if tool is not None:
        rule = max(evaluate(tool, words[1:]), key=lambda r: r.level.rank)
        part = PartAssessment(text, rule.level, rule.reason, rule.id)
        how = _kubectl_fan_out(words[1:]) if name == "kubectl" else None
        return [_fanned_out(part, how) if how else part]
    if name == "/" or name.endswith(_SCRIPT_SUFFIXES):
        return [PartAssessment(text, Y, "runs a script whose effect is unknown", "shell.script")]
    return [PartAssessment(text, Y, "unknown command: not proven read-only", "shell.unknown")]


def _run(
    steps: list[Step], words: tuple[str, ...], stdin: str | None, loose: bool, ctx: _Ctx, depth: int
) -> list[PartAssessment]:
    parts: list[PartAssessment] = []
    text = display(words)
    for step in steps:
        if isinstance(step, Final):
            parts.append(PartAssessment(text, step.level, step.reason, step.rule))
        elif isinstance(step, Words):
            parts.extend(
                _classify_words(step.words, stdin, loose, ctx, depth + 1)
                if depth < MAX_DEPTH
                else _classify_text("", ctx, MAX_DEPTH + 1)
            )
        elif isinstance(step, Shell):
            parts.extend(_classify_text(step.text, ctx, depth + 1))
        elif isinstance(step, Sql):
            parts.extend(sqlmod.classify(step.text, shell=_shell_for(ctx, depth + 1)).parts)
    return parts


def _shell_for(ctx: _Ctx, depth: int) -> sqlmod.ShellClassifier:
    """For psql's ``\\!``: shell commands inside SQL, classified in the same context."""

    def classify(text: str) -> RiskAssessment:
        return RiskAssessment.of(_classify_text(text, ctx, depth))

    return classify


@lru_cache(maxsize=4096)
def _cached(command: str, rules: RuleSet) -> RiskAssessment:
    return _assess(command, rules)


def _assess(command: str, rules: RuleSet) -> RiskAssessment:
    # A long input allocates many short-lived tokens; a full garbage collection in the middle
    # would cost more than the work itself, so hold collections off until we are done.
    pause_gc = len(command) > _GC_PAUSE_LIMIT and gc.isenabled()
    if pause_gc:
        gc.disable()
    try:
        parts = _classify_text(command, _Ctx(rules), 0)
        return RiskAssessment.of(list(dict.fromkeys(parts)))  # drop repeats, keep order
    except Exception:  # the contract is "never raises": fail closed, not open
        part = PartAssessment(
            command[:200], Y, "could not be analysed: not proven read-only", "shell.error"
        )
        return RiskAssessment.of([part])
    finally:
        if pause_gc:
            gc.enable()


def classify_command(command: str, rules: RuleSet | None = None) -> RiskAssessment:
    """Rate a shell command line; the worst simple command decides. Never raises."""
    if not isinstance(command, str):
        command = str(command)
    ruleset = rules if rules is not None else _BUILTIN
    if len(command) < _CACHE_LIMIT:
        return _cached(command, ruleset)
    return _assess(command, ruleset)


def classify_sql(sql: str) -> RiskAssessment:
    """Rate SQL text (statements separated by ``;``, psql meta-commands). Never raises."""
    try:
        return sqlmod.classify(sql, shell=lambda t: classify_command(t))
    except Exception:  # see classify_command
        part = PartAssessment(
            sql[:200], Y, "could not be analysed: not proven read-only", "sql.error"
        )
        return RiskAssessment.of([part])


def load_tenant_rules(yaml_text: str) -> RuleSet:
    """Parse tenant rules (see docs/RISK_RULES.md); raises RiskRulesError naming the rule."""
    try:
        data: Any = yaml.safe_load(yaml_text) if yaml_text.strip() else None
    except yaml.YAMLError as exc:
        raise RiskRulesError(f"tenant risk rules are not valid YAML: {exc}") from exc
    if data is None:
        return RuleSet()
    if not isinstance(data, dict) or not data or set(data) - {"rules", "programs"}:
        raise RiskRulesError(
            "tenant risk rules must be a mapping with the keys 'rules' and/or 'programs'"
        )
    programs = data.get("programs") or []
    if not isinstance(programs, list) or not all(
        isinstance(p, str) and _PROGRAM_NAME.fullmatch(p) for p in programs
    ):
        raise RiskRulesError(
            "'programs' must be a list of program names (letters, digits, . _ + -), "
            "e.g. [deployctl, ./bin/failover.sh]"
        )
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise RiskRulesError("'rules' must be a list of rule mappings")
    seen: set[str] = set()
    return RuleSet((_tenant_rule(i, item, seen) for i, item in enumerate(items)), programs)


_PROGRAM_NAME = re.compile(r"[A-Za-z0-9][\w.+-]{0,63}")


def _tenant_rule(index: int, item: Any, seen: set[str]) -> TenantRule:
    label = f"rule #{index + 1}"
    if not isinstance(item, dict):
        raise RiskRulesError(f"{label}: must be a mapping with 'id', 'match' and 'risk'")
    rid = item.get("id")
    if isinstance(rid, str) and rid.strip():
        label = f"rule #{index + 1} ({rid!r})"
    unknown = set(item) - {"id", "match", "risk", "reason"}
    if unknown:
        raise RiskRulesError(f"{label}: unknown field(s) {sorted(map(str, unknown))}")
    for key in ("id", "match", "risk"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise RiskRulesError(f"{label}: '{key}' is required and must be a non-empty string")
    rid = str(item["id"]).strip()
    if rid in seen:
        raise RiskRulesError(f"{label}: duplicate rule id")
    seen.add(rid)
    try:
        pattern = re.compile(item["match"])
    except re.error as exc:
        raise RiskRulesError(f"{label}: invalid regular expression in 'match': {exc}") from exc
    level = _RISK_NAMES.get(item["risk"].strip().lower())
    if level is None:
        raise RiskRulesError(f"{label}: 'risk' must be green, yellow or red, not {item['risk']!r}")
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise RiskRulesError(f"{label}: 'reason' must be a string")
    reason = (reason or "").strip()
    if level is not R and not reason:
        # Any rule below red can lower a built-in class, so it must say why.
        raise RiskRulesError(
            f"{label}: risk {level.value!r} can lower the built-in class, "
            "so a non-empty 'reason' is required"
        )
    return TenantRule(rid, pattern, level, reason or f"tenant rule {rid}")
