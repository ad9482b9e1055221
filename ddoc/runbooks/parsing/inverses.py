"""Suggested rollbacks: the inverse of a state-changing command, where one is certain
(`kubectl cordon` → `kubectl uncordon`, `systemctl stop` → `systemctl start`, a drain, a
`helm upgrade`, an appended iptables rule, …), and whether a written rollback undoes a command.

A suggestion is marked `suggested` (ddoc/runbooks/model.py `RollbackOrigin.SUGGESTED`): it was
derived by us, not written in the runbook, so a human approves it before it runs.
"""

from __future__ import annotations

import re

from ddoc.runbooks.model import Rollback, RollbackOrigin
from ddoc.runbooks.parsing.commands import (
    _ROOT_PROMPT,
    _SHELL_PROMPT,
    first_meaningful_line,
    program_of,
)

# Inverse pairs for suggested rollbacks: (pattern on one command, replacement builder).
_SUDO = r"(?P<pre>(?:sudo\s+(?:-\S+\s+(?:\S+\s+)?)*)?(?:\S*/)?)"
_OPTS = r"(?:\s+--?\S+(?:\s+[^-\s]\S*)?)*?"  # options (with values) before the verb
_SWAP_VERBS: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (
        re.compile(
            _SUDO + r"(?P<tool>kubectl|oc)(?P<mid>" + _OPTS + r")\s+(?P<verb>cordon|uncordon)\b"
        ),
        {"cordon": "uncordon", "uncordon": "cordon"},
    ),
    (
        re.compile(
            _SUDO
            + r"(?P<tool>kubectl|oc)(?P<mid>"
            + _OPTS
            + r"\s+rollout)\s+(?P<verb>pause|resume)\b"
        ),
        {"pause": "resume", "resume": "pause"},
    ),
    (
        re.compile(
            _SUDO
            + r"(?P<tool>(?:gitlab-)?patronictl)(?P<mid>"
            + _OPTS
            + r")\s+(?P<verb>pause|resume)\b"
        ),
        {"pause": "resume", "resume": "pause"},
    ),
    (
        re.compile(
            _SUDO
            + r"(?P<tool>systemctl)(?P<mid>(?:\s+-\S+)*)\s+"
            + r"(?P<verb>stop|start|disable|enable|mask|unmask)\b"
        ),
        {
            "stop": "start",
            "start": "stop",
            "disable": "enable",
            "enable": "disable",
            "mask": "unmask",
            "unmask": "mask",
        },
    ),
    (
        re.compile(_SUDO + r"(?P<tool>consul\s+maint)(?P<mid>)\s+(?P<verb>-enable|-disable)\b"),
        {"-enable": "-disable", "-disable": "-enable"},
    ),
]
_DRAIN = re.compile(
    _SUDO + r"(?P<tool>kubectl|oc)(?P<mid>" + _OPTS + r")\s+drain\s+(?P<node>[^-\s]\S*)"
)
_HELM_UPGRADE = re.compile(_SUDO + r"(?P<tool>helm)\s+upgrade\b(?P<args>.*)$")
_IPTABLES = re.compile(_SUDO + r"(?P<tool>ip6?tables)(?P<mid>(?:\s+-t\s+\S+)?)\s+(?:-A|--append)\b")
_HELM_VALUE_OPTS = frozenset(
    """-n --namespace -f --values --set --set-string --set-file --set-json --version --timeout
    --kube-context --kubeconfig --repo --post-renderer --description -o --output""".split()
)
_SEPARATORS = re.compile(r"\s*(?:&&|;)\s*")


def suggested_rollback(command: str) -> Rollback | None:
    """A suggested (not runbook-given) rollback for ``command``, when it has a known inverse."""
    inverse = suggest_inverse(command)
    if inverse is None:
        return None
    return Rollback(
        command=inverse,
        text="Suggested inverse of this step's command; review before running.",
        origin=RollbackOrigin.SUGGESTED,
    )


def suggest_inverse(command: str) -> str | None:
    """A command undoing ``command`` for well-known pairs, or None.

    Multi-command input (lines, ``&&``, ``;``) gets the inverses of the parts that have one,
    in reverse order.
    """
    parts = [p for line in _logical_lines(command) for p in _split_simple(line)]
    inverses = [inv for p in parts if (inv := _inverse_one(p)) is not None]
    if not inverses:
        return None
    return "\n".join(reversed(inverses))


def _logical_lines(command: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in command.split("\n"):
        prompt = _SHELL_PROMPT.match(line)
        if prompt and not buf:
            line = line[prompt.end() :]
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip() and not buf.lstrip().startswith("#"):
            out.append(buf.strip())
        buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _split_simple(line: str) -> list[str]:
    if "'" in line or '"' in line:
        return [line]  # separators inside quotes: leave it whole
    return [p for p in _SEPARATORS.split(line) if p]


def _inverse_one(cmd: str) -> str | None:
    for pattern, swap in _SWAP_VERBS:
        m = pattern.match(cmd)
        if m:
            verb = m.group("verb")
            return cmd[: m.start("verb")] + swap[verb] + cmd[m.end("verb") :]
    m = _DRAIN.match(cmd)
    if m:
        return f"{m.group('pre')}{m.group('tool')}{m.group('mid')} uncordon {m.group('node')}"
    m = _HELM_UPGRADE.match(cmd)
    if m:
        toks = m.group("args").split()
        release = None
        namespace = None
        i = 0
        while i < len(toks):
            tok = toks[i]
            if tok in ("-n", "--namespace") and i + 1 < len(toks):
                namespace = toks[i + 1]
            if tok.startswith("--namespace="):
                namespace = tok.split("=", 1)[1]
            if tok.startswith("-"):
                i += 2 if tok in _HELM_VALUE_OPTS else 1
                continue
            release = release or tok
            i += 1
        if release is None:
            return None
        ns = f" -n {namespace}" if namespace else ""
        return f"{m.group('pre')}{m.group('tool')} rollback {release}{ns}"
    m = _IPTABLES.match(cmd)
    if m:
        rest = cmd[m.end() :]
        return f"{m.group('pre')}{m.group('tool')}{m.group('mid')} -D{rest}"
    return None


_VERB_PAIRS = {
    ("kubectl", "cordon"): {("kubectl", "uncordon")},
    ("kubectl", "drain"): {("kubectl", "uncordon")},
    ("kubectl", "scale"): {("kubectl", "scale")},
    ("kubectl", "set"): {("kubectl", "rollout")},
    ("kubectl", "apply"): {("kubectl", "rollout"), ("kubectl", "apply"), ("kubectl", "delete")},
    ("kubectl", "patch"): {("kubectl", "rollout"), ("kubectl", "patch")},
    ("kubectl", "edit"): {("kubectl", "rollout"), ("kubectl", "edit")},
    ("kubectl", "rollout"): {("kubectl", "rollout")},
    ("kubectl", "create"): {("kubectl", "delete")},
    ("kubectl", "label"): {("kubectl", "label")},
    ("kubectl", "taint"): {("kubectl", "taint")},
    ("kubectl", "annotate"): {("kubectl", "annotate")},
    ("helm", "upgrade"): {("helm", "rollback")},
    ("helm", "install"): {("helm", "uninstall"), ("helm", "delete")},
    ("systemctl", "stop"): {("systemctl", "start")},
    ("systemctl", "start"): {("systemctl", "stop")},
    ("systemctl", "disable"): {("systemctl", "enable")},
    ("systemctl", "enable"): {("systemctl", "disable")},
    ("patronictl", "pause"): {("patronictl", "resume")},
    ("consul", "maint"): {("consul", "maint")},
    ("iptables", "-A"): {("iptables", "-D")},
}


def signature(command: str) -> tuple[str, str, frozenset[str]]:
    """(program, sub-command, other plain args) of a command's first line, for matching."""
    line = first_meaningful_line(command)
    for pattern in (_SHELL_PROMPT, _ROOT_PROMPT):
        m = pattern.match(line)
        if m:
            line = line[m.end() :]
    prog, args = program_of(line)
    prog = "patronictl" if prog.endswith("patronictl") else prog
    prog = "kubectl" if prog == "oc" else prog
    verb = ""
    rest: list[str] = []
    for a in args:
        if not verb and (not a.startswith("-") or prog.startswith("ip")):
            verb = a
        elif not a.startswith("-"):
            rest.append(a.strip("'\""))
    return prog, verb, frozenset(rest)


def undoes(rollback: str, forward: str) -> bool:
    """Is ``rollback`` plausibly the undo of ``forward`` (known pair, shared target)?"""
    inverse = suggest_inverse(forward)
    if inverse and " ".join(inverse.split()) == " ".join(rollback.split()):
        return True
    fprog, fverb, fargs = signature(forward)
    rprog, rverb, rargs = signature(rollback)
    if not fprog or (rprog, rverb) not in _VERB_PAIRS.get((fprog, fverb), set()):
        return False
    return bool(fargs & rargs) or (not fargs and not rargs)
