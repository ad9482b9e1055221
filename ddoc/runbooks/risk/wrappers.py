"""Wrappers: commands that run another command (sudo, env, timeout, xargs, bash -c, ssh,
kubectl exec, …). Each returns what to classify instead, so the verdict is about the command
that actually does something.

A wrapper returns ``None`` when the words are not its wrapping form (``kubectl get`` is not
``kubectl exec``), otherwise a list of steps:
``Words`` (classify these words), ``Shell`` (classify this script), ``Sql`` (classify this
SQL) or ``Final`` (a verdict about the current command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk.options import parse_opts
from ddoc.runbooks.risk.rules import positionals
from ddoc.runbooks.risk.rules_deploy import KUBECTL_VALUE_OPTS

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED


@dataclass(frozen=True)
class Words:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Shell:
    text: str


@dataclass(frozen=True)
class Sql:
    text: str


@dataclass(frozen=True)
class Final:
    level: RiskClass
    reason: str
    rule: str


Step = Words | Shell | Sql | Final
Steps = list[Step] | None
# (words, stdin text, loose split?) -> steps
Unwrapper = Callable[[tuple[str, ...], str | None, bool], Steps]

_SCRIPT = Final(Y, "runs a script whose effect is unknown", "shell.script")
# Stands for "stdin is redirected from a file" (`psql < fix.sql`): content we cannot see.
FROM_FILE = "\x00<file>"
_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "ash", "mksh", "fish"})


def _inner(words: list[str] | tuple[str, ...], empty: Final) -> Steps:
    return [Words(tuple(words))] if words else [empty]


def _sudo(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "ugpChDrtTU",
        frozenset(
            {
                "--user",
                "--group",
                "--host",
                "--prompt",
                "--close-from",
                "--chdir",
                "--role",
                "--type",
                "--command-timeout",
                "--other-user",
            }
        ),
        stop_at_positional=True,
    )
    if p.has("-e", "--edit"):
        return [Final(Y, "sudo -e edits files as root", "sudo.edit")]
    if p.positional:
        return [Words(tuple(p.positional))]
    if p.has("-l", "--list", "-v", "--validate", "-k", "-K", "--reset-timestamp"):
        return [Final(G, "sudo only lists or refreshes credentials", "sudo.list")]
    return [Final(Y, "sudo -i/-s opens an interactive shell", "shell.interactive")]


def _env(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "uCS",
        frozenset({"--unset", "--chdir", "--split-string"}),
        stop_at_positional=True,
    )
    split = p.values("-S", "--split-string")
    if split:
        return [Shell(" ".join([*split, *p.positional]))]
    rest = list(p.positional)
    while rest and "=" in rest[0] and not rest[0].startswith("="):
        rest.pop(0)
    return _inner(rest, Final(G, "env only prints the environment", "env.print"))


def _skip(n_leading: int, short_value: str = "", long_value: str = "") -> Unwrapper:
    """Wrappers shaped ``name [opts] [N leading args] CMD…`` (timeout, nice, chroot, …)."""

    def unwrap(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
        p = parse_opts(
            words[1:], short_value, frozenset(long_value.split()), stop_at_positional=True
        )
        name = words[0]
        bare = Final(Y, f"{name} without a command", f"{name}.bare")
        return _inner(p.positional[n_leading:], bare)

    return unwrap


_PROCESS_OPTS = {"ionice": "cnpPu", "strace": "eopsuEPIaXS", "taskset": "", "chrt": ""}


def _process(name: str) -> Unwrapper:
    """ionice / taskset / chrt / strace: ``-p PID`` acts on a running process instead."""

    def unwrap(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
        p = parse_opts(words[1:], _PROCESS_OPTS[name], stop_at_positional=True)
        if p.has("-p", "--pid"):
            if name == "strace":
                return [Final(G, "strace -p only observes a process", "strace.attach")]
            return [Final(Y, f"{name} -p changes a running process's priority", f"{name}.pid")]
        inner = p.positional[1:] if name in ("taskset", "chrt") else p.positional
        return _inner(inner, Final(Y, f"{name} without a command", f"{name}.bare"))

    return unwrap


def _watch(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(words[1:], "n", frozenset({"--interval"}), stop_at_positional=True)
    if not p.positional:
        return [Final(Y, "watch without a command", "watch.bare")]
    if p.has("-x", "--exec"):
        return [Words(tuple(p.positional))]
    return [Shell(" ".join(p.positional))]  # watch hands its arguments to `sh -c`


def _xargs(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "IELPdnsa",
        frozenset(
            {
                "--max-args",
                "--max-procs",
                "--max-lines",
                "--delimiter",
                "--arg-file",
                "--max-chars",
                "--process-slot-var",
            }
        ),
        short_optional="iel",
        stop_at_positional=True,
    )
    return [Words(tuple(p.positional) if p.positional else ("echo",))]


def _shell(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    has_c, i = False, 1
    while i < len(words):
        w = words[i]
        if w == "--":
            i += 1
            break
        if w in ("--rcfile", "--init-file"):
            i += 2
        elif w.startswith("--"):
            i += 1
        elif len(w) > 1 and w[0] in "-+":
            has_c = has_c or (w[0] == "-" and "c" in w)
            # `-o pipefail` / `-euo pipefail` / `-O extglob`: the option takes the next word.
            i += 2 if ("o" in w or "O" in w) else 1
        else:
            break
    rest = words[i:]
    if has_c:
        if not rest:
            return [Final(Y, "shell -c without a script", "shell.bare")]
        return [Shell(" ".join(rest) if loose else rest[0])]
    if rest or stdin == FROM_FILE:
        return [_SCRIPT]
    if stdin is not None:
        return [Shell(stdin)]
    return [
        Final(Y, "starts a shell reading commands from stdin or a terminal", "shell.interactive")
    ]


def _su(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:], "csgGu", frozenset({"--command", "--shell", "--group", "--supp-group", "--user"})
    )
    commands = p.values("-c", "--command")
    if commands:
        return [Shell(" ".join([commands[0], *p.positional[1:]]) if loose else commands[0])]
    if words[0] == "runuser" and p.has("-u", "--user") and p.positional:
        return [Words(tuple(p.positional))]
    if stdin == FROM_FILE:
        return [_SCRIPT]
    if stdin is not None:
        return [Shell(stdin)]
    return [Final(Y, "opens an interactive shell as another user", "shell.interactive")]


def _ssh(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(words[1:], "bcDEeFIiJLlmOopQRSWw", stop_at_positional=True)
    if len(p.positional) > 1:
        return [Shell(" ".join(p.positional[1:]))]  # ssh joins its arguments for the remote shell
    if stdin == FROM_FILE:
        return [_SCRIPT]
    if stdin is not None:
        return [Shell(stdin)]
    if p.has("-N"):
        return [Final(Y, "ssh -N opens a tunnel", "ssh.tunnel")]
    return [Final(Y, "opens an interactive remote shell", "shell.interactive")]


def _kubectl(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    pos = positionals(words[1:], KUBECTL_VALUE_OPTS)
    if not pos or pos[0] != "exec":
        return None
    # Without `--` this is the deprecated `kubectl exec POD CMD…`.
    inner = list(words[words.index("--") + 1 :]) if "--" in words else pos[2:]
    return _inner(inner, Final(Y, "kubectl exec without a command", "kubectl.exec"))


_CONTAINER_EXEC = (
    "-e",
    "--env",
    "--env-file",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--detach-keys",
    "--index",
    "-s",
    "--timeout",
)


def _container_exec(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    pos = positionals(
        words[1:],
        frozenset(
            {"-H", "--host", "--context", "-f", "--file", "-p", "--project-name", "--env-file"}
        ),
    )
    if pos[:1] != ["exec"] and pos[:2] not in (["compose", "exec"], ["container", "exec"]):
        return None
    rest = words[words.index("exec") + 1 :]
    p = parse_opts(rest, "euws", frozenset(_CONTAINER_EXEC), stop_at_positional=True)
    return _inner(p.positional[1:], Final(Y, "opens a shell in a container", "shell.interactive"))


def _gcloud(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if "ssh" not in words:
        return None
    p = parse_opts(words[1:], "", frozenset({"--command"}))
    commands = p.values("--command")
    return [Shell(commands[0])] if commands else None


def _eval(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    return [Shell(" ".join(words[1:]))] if len(words) > 1 else [Final(G, "no-op", "shell.noop")]


def _trap(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    action = words[1] if len(words) > 2 else ""
    if not action or action == "-" or action.startswith("-"):
        return [Final(G, "trap only lists or resets handlers", "shell.trap")]
    return [Shell(action)]  # runs later, but it does run


def _command(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if len(words) > 1 and words[1] in ("-v", "-V"):
        return [Final(G, "command -v only looks a command up", "shell.lookup")]
    rest = [w for w in words[1:] if w != "-p"] if words[0] == "command" else list(words[1:])
    return _inner(rest, Final(G, "no-op", "shell.noop"))


def _source(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    return [_SCRIPT]


WRAPPERS: dict[str, Unwrapper] = {
    "sudo": _sudo,
    "doas": _skip(0, "uC"),
    "env": _env,
    "nohup": _skip(0),
    "time": _skip(0, "fo", "--format --output"),
    "timeout": _skip(1, "sk", "--signal --kill-after"),
    "nice": _skip(0, "n", "--adjustment"),
    "stdbuf": _skip(0, "ioe", "--input --output --error"),
    "chroot": _skip(1, "", "--userspec --groups"),
    "nsenter": _skip(0, "tSGw", "--target --setuid --setgid --wd"),
    "gosu": _skip(1),
    "setsid": _skip(0),
    "unbuffer": _skip(0),
    "exec": _skip(0, "a"),
    "command": _command,
    "builtin": _command,
    "ionice": _process("ionice"),
    "taskset": _process("taskset"),
    "chrt": _process("chrt"),
    "strace": _process("strace"),
    "ltrace": _process("strace"),
    "watch": _watch,
    "xargs": _xargs,
    "su": _su,
    "runuser": _su,
    "ssh": _ssh,
    "kubectl": _kubectl,
    "docker": _container_exec,
    "docker-compose": _container_exec,
    "crictl": _container_exec,
    "gcloud": _gcloud,
    "eval": _eval,
    "trap": _trap,
    "source": _source,
    ".": _source,
    **dict.fromkeys(_SHELLS, _shell),
}
