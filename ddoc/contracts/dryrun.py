"""The dry-run form of a runbook command, for the `dry_run` execution mode.

Why this file is long: the forms of six tools (kubectl, terraform, helm, aws, rsync, apt-get)
share one word splitter and one renderer that must agree byte for byte; each form sits beside
the option tables it depends on, so a reviewer sees every form against the rules it keeps.

In `dry_run` mode a step whose command has a known side-effect-free form runs in that form on the
agent; every other step is only rendered. A wrong answer runs a real change, so
`dry_run_form` answers only when it is sure and returns None for anything it does not fully
understand: compound commands, unquoted expansions, options whose arity it does not know.

    >>> dry_run_form('kubectl scale deploy "$DEPLOY" --replicas=3')
    'kubectl scale deploy "$DEPLOY" --replicas=3 --dry-run=server'

The form is made by editing whole words of the original text (insert, replace, drop), so
quoting is kept byte for byte; the result is split again and must give exactly the intended
words, or the answer is None.

Not included on purpose: `ansible-playbook --check` (tasks marked `check_mode: false` and
lookup plugins still run for real).

Stdlib only, pure and deterministic: a contract, because both sides derive it. The control plane
puts the form into an execution's snapshot and a self-check's probe; an agent asked to run a
self-check's dry run derives it again from the command and runs it only when the two agree.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NamedTuple


class _Word(NamedTuple):
    start: int
    end: int
    value: str  # the word as the program sees it (quotes removed)


class _Plan(NamedTuple):
    """Edits to a program's arguments: index -> new text (None drops the word), and a flag to
    add after the last argument."""

    replace: Mapping[int, str | None]
    append: str = ""


_Handler = Callable[[Sequence[_Word]], _Plan | None]

# Unquoted, these make the text more than one simple command (operators, redirections,
# substitutions) or let the shell make words we cannot see: an expansion or glob could
# split into an extra `--`, which would turn an appended flag into an operand.
_UNQUOTED_UNSAFE = frozenset(";&()<>`${}*?[")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# Assignments that change which program runs or make it run other code.
_UNSAFE_ENV = frozenset({"PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS"})
_UNSAFE_ENV_PREFIXES = ("LD_", "DYLD_", "RSYNC_")
# Read-only filters allowed after `|`; they write nothing whatever their arguments.
_FILTERS = frozenset({"grep", "egrep", "fgrep", "head", "tail", "wc"})


def dry_run_form(command: str) -> str | None:
    """The side-effect-free form of a runbook command, or None when it has no known dry-run
    form."""
    segments = _split(command)
    if segments is None:
        return None
    main = segments[0]
    if not all(segment[0].value in _FILTERS for segment in segments[1:]):
        return None
    start = _program_index(main)
    if start is None:
        return None
    handler = _HANDLERS.get(main[start].value)
    args = main[start + 1 :]
    # `--` ends option parsing: a flag added after it would be an operand.
    if handler is None or any(w.value == "--" for w in args):
        return None
    plan = handler(args)
    if plan is None:
        return None
    return _render(command, segments, start + 1, plan)


# -- splitting ------------------------------------------------------------------------------


def _split(text: str) -> list[list[_Word]] | None:
    """The words of each command of a simple pipeline, or None for anything else."""
    if any((ord(c) < 32 and c != "\t") or c == "\x7f" for c in text):
        return None  # newlines (several commands) and control characters
    segments: list[list[_Word]] = [[]]
    start = -1
    i, n = 0, len(text)
    while i <= n:
        c = text[i] if i < n else " "
        if c in " \t|":
            if start >= 0:
                word = _word(text, start, i)
                if word is None:
                    return None
                segments[-1].append(word)
                start = -1
            if c == "|":
                if not segments[-1]:
                    return None  # `||` or a leading `|`
                segments.append([])
            i += 1
            continue
        if start < 0:
            if c == "#":
                return None  # a comment would swallow an appended flag
            start = i
        if c == "\\":
            if i + 1 >= n:
                return None
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                return None
            i = j + 1
        elif c == '"':
            j = _double_quote_end(text, i + 1)
            if j < 0:
                return None
            i = j + 1
        elif c in _UNQUOTED_UNSAFE:
            return None
        else:
            i += 1
    return segments if segments[-1] else None


def _double_quote_end(text: str, i: int) -> int:
    """Index of the `"` closing a string opened just before `i`; -1 when it is unclosed or
    holds a command substitution (which runs even in a dry run)."""
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        if c == "`" or text.startswith("$(", i):
            return -1
        i += 1
    return -1


def _word(text: str, start: int, end: int) -> _Word | None:
    try:
        parts = shlex.split(text[start:end])
    except ValueError:
        return None
    return _Word(start, end, parts[0]) if len(parts) == 1 else None


# -- prefixes: assignments, sudo, env -------------------------------------------------------


def _program_index(words: Sequence[_Word]) -> int | None:
    i = 0
    while i < len(words):
        value = words[i].value
        if _ASSIGNMENT.match(value):
            name = value.partition("=")[0]
            if name in _UNSAFE_ENV or name.startswith(_UNSAFE_ENV_PREFIXES):
                return None
            i += 1
        elif value == "sudo":
            # sudo's own options; -s/-i (via a shell), -e (edit) and the rest are refused.
            j = _skip_options(
                words,
                i + 1,
                long_value={"--user", "--group", "--prompt"},
                short_value="ugp",
                long_flag={"--preserve-env", "--set-home", "--non-interactive", "--stdin"},
                short_flag="EHnSkP",
                double_dash_ends=True,
            )
            if j is None:
                return None
            i = j
        elif value == "env":
            i += 1  # followed by assignments only; an option falls through to "unknown program"
        else:
            return i
    return None


def _skip_options(
    words: Sequence[_Word],
    i: int,
    *,
    long_value: Collection[str],
    short_value: str,
    long_flag: Collection[str] | None = None,
    short_flag: str | None = None,
    double_dash_ends: bool = False,
) -> int | None:
    """Index of the first operand from `i` on, skipping options and their values; None on an
    option whose arity is unknown. `long_flag`/`short_flag` None: any other option is a flag."""
    while i < len(words):
        value = words[i].value
        if not value.startswith("-") or value == "-":
            return i
        if value == "--":
            return i + 1 if double_dash_ends else None
        if value.startswith("--"):
            name, eq, _ = value.partition("=")
            if eq or (name not in long_value and (long_flag is None or name in long_flag)):
                i += 1
            elif name in long_value:
                i += 2
            else:
                return None
            continue
        for k, letter in enumerate(value[1:], start=2):
            if letter in short_value:
                i += 1 if k < len(value) else 2  # value attached (-nprod) or next word
                break
            if short_flag is not None and letter not in short_flag:
                return None
        else:
            i += 1
    return i


# -- tools ----------------------------------------------------------------------------------


def _values(words: Sequence[_Word]) -> list[str]:
    return [w.value for w in words]


def _has_option(values: Sequence[str], *names: str) -> bool:
    return any(v == name or v.startswith(name + "=") for v in values for name in names)


def _append_marker(values: Sequence[str], marker: str) -> _Plan:
    # Added last, so it wins over an earlier negation (`--no-dry-run`, `-o …Simulate=false`).
    return _Plan({}, "" if values and values[-1] == marker else marker)


_KUBECTL_GLOBAL_VALUE = frozenset(
    {
        "--namespace",
        "--context",
        "--kubeconfig",
        "--cluster",
        "--user",
        "--server",
        "--token",
        "--as",
        "--as-group",
        "--as-uid",
        "--request-timeout",
        "--cache-dir",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--tls-server-name",
        "--v",
        "--vmodule",
    }
)
_KUBECTL_GLOBAL_FLAG = frozenset(
    {
        "--insecure-skip-tls-verify",
        "--match-server-version",
        "--warnings-as-errors",
        "--disable-compression",
    }
)
# Verbs whose --dry-run=server reaches every write they make. Not here: rollout pause/resume
# (no --dry-run), edit/exec/cp/attach/port-forward/proxy/debug (interactive or not writes
# to the API), and read-only verbs (nothing to dry-run).
_KUBECTL_VERBS = frozenset(
    {
        "apply",
        "create",
        "delete",
        "replace",
        "patch",
        "scale",
        "label",
        "annotate",
        "expose",
        "run",
        "autoscale",
        "taint",
        "cordon",
        "uncordon",
        "drain",
    }
)
_KUBECTL_SUBVERBS = {
    "set": frozenset({"image", "env", "resources", "selector", "serviceaccount", "subject"}),
    "rollout": frozenset({"restart", "undo"}),
}
_KUBECTL_APPLY_SUBCOMMANDS = frozenset(
    {"edit-last-applied", "set-last-applied", "view-last-applied"}
)


def _kubectl(args: Sequence[_Word]) -> _Plan | None:
    i = _skip_options(
        args,
        0,
        long_value=_KUBECTL_GLOBAL_VALUE,
        short_value="nsv",
        long_flag=_KUBECTL_GLOBAL_FLAG,
        short_flag="",
    )
    if i is None or i >= len(args):
        return None
    verb = args[i].value
    if verb in _KUBECTL_SUBVERBS:
        if i + 1 >= len(args) or args[i + 1].value not in _KUBECTL_SUBVERBS[verb]:
            return None
    elif verb not in _KUBECTL_VERBS:
        return None
    values = _values(args)
    # --raw sends the request as given, ignoring --dry-run; --edit opens an editor.
    if _has_option(values, "--raw", "--edit"):
        return None
    # apply/replace --force delete and re-create outside the dry run in some kubectl versions.
    if verb in ("apply", "replace") and _has_option(values, "--force"):
        return None
    if verb == "apply" and _KUBECTL_APPLY_SUBCOMMANDS.intersection(values):
        return None
    existing = [k for k, v in enumerate(values) if _has_option([v], "--dry-run")]
    if existing:
        return _Plan({k: "--dry-run=server" for k in existing if values[k] != "--dry-run=server"})
    return _Plan({}, "--dry-run=server")


# apply flags that take a value in the next word (Go's flag package allows `-var x=1`).
_TERRAFORM_VALUE = frozenset(
    "var var-file target replace parallelism lock-timeout state state-out backup".split()
)
_TERRAFORM_FLAG = frozenset(
    {"input", "lock", "refresh", "refresh-only", "compact-warnings", "no-color", "json", "destroy"}
)


def _terraform(args: Sequence[_Word]) -> _Plan | None:
    i = 1 if args and args[0].value.startswith("-chdir=") else 0
    if i >= len(args) or args[i].value not in ("apply", "destroy"):
        return None
    edits: dict[int, str | None] = {i: "plan" if args[i].value == "apply" else "plan -destroy"}
    j = i + 1
    while j < len(args):
        value = args[j].value
        if not value.startswith("-") or value == "-":
            return None  # a saved plan (or, before 0.15, a directory): plan cannot take it
        name, eq, _ = value.lstrip("-").partition("=")
        if name == "auto-approve":
            edits[j] = None  # plan rejects it
            j += 1
        elif eq or name in _TERRAFORM_FLAG:
            j += 1
        elif name in _TERRAFORM_VALUE:
            j += 2
        else:
            return None  # unknown arity: the next word may be a plan file
    return _Plan(edits)


_HELM_GLOBAL_VALUE = frozenset(
    {
        "--namespace",
        "--kube-context",
        "--kubeconfig",
        "--kube-apiserver",
        "--kube-as-user",
        "--kube-as-group",
        "--kube-ca-file",
        "--kube-token",
        "--kube-tls-server-name",
        "--registry-config",
        "--repository-cache",
        "--repository-config",
        "--burst-limit",
        "--qps",
    }
)
_HELM_GLOBAL_FLAG = frozenset({"--debug", "--kube-insecure-skip-tls-verify"})
_HELM_VERBS = frozenset({"install", "upgrade", "rollback", "uninstall", "delete", "del", "un"})
_HELM_SAFE_DRY_RUN = frozenset(
    {"--dry-run", "--dry-run=client", "--dry-run=server", "--dry-run=true"}
)


def _helm(args: Sequence[_Word]) -> _Plan | None:
    i = _skip_options(
        args,
        0,
        long_value=_HELM_GLOBAL_VALUE,
        short_value="n",
        long_flag=_HELM_GLOBAL_FLAG,
        short_flag="",
    )
    if i is None or i >= len(args) or args[i].value not in _HELM_VERBS:
        return None
    values = _values(args)
    # A post-renderer is a local program run even in a dry run; --dependency-update writes
    # into the chart directory.
    if _has_option(values, "--post-renderer", "--post-renderer-args", "--dependency-update"):
        return None
    existing = [k for k, v in enumerate(values) if _has_option([v], "--dry-run")]
    if existing:
        return _Plan({k: "--dry-run" for k in existing if values[k] not in _HELM_SAFE_DRY_RUN})
    return _Plan({}, "--dry-run")


_AWS_GLOBAL_VALUE = frozenset(
    {
        "--region",
        "--profile",
        "--output",
        "--endpoint-url",
        "--query",
        "--color",
        "--ca-bundle",
        "--cli-read-timeout",
        "--cli-connect-timeout",
        "--cli-binary-format",
    }
)
_AWS_GLOBAL_FLAG = frozenset(
    {"--debug", "--no-verify-ssl", "--no-paginate", "--no-sign-request", "--no-cli-pager"}
)
# EC2 operations that change something. An operation without a DryRun parameter makes the
# CLI fail on the unknown option before it sends anything.
_EC2_MUTATING_PREFIXES = tuple(
    verb + "-"
    for verb in (
        "accept allocate apply assign associate attach authorize bundle cancel copy create "
        "delete deprovision deregister detach disable disassociate enable import modify "
        "monitor move provision purchase reboot register reject release replace report "
        "request reset restore revoke run send start stop terminate unassign unmonitor"
    ).split()
)


def _aws(args: Sequence[_Word]) -> _Plan | None:
    i = _skip_options(
        args,
        0,
        long_value=_AWS_GLOBAL_VALUE,
        short_value="",
        long_flag=_AWS_GLOBAL_FLAG,
        short_flag="",
    )
    if i is None or i + 1 >= len(args) or args[i].value != "ec2":
        return None
    if not args[i + 1].value.startswith(_EC2_MUTATING_PREFIXES):
        return None
    values = _values(args)
    if "--cli-auto-prompt" in values:
        return None  # interactive
    return _append_marker(values, "--dry-run")


# Options that make rsync run another program, write local files or serve, dry run or not.
_RSYNC_UNSAFE = frozenset(
    {
        "--rsh",
        "--rsync-path",
        "--remote-option",
        "--daemon",
        "--server",
        "--sender",
        "--config",
        "--log-file",
        "--write-batch",
        "--only-write-batch",
        "--read-batch",
    }
)


def _rsync(args: Sequence[_Word]) -> _Plan | None:
    values = _values(args)
    if not args:
        return None
    for value in values:
        if value.startswith("--"):
            if value.partition("=")[0] in _RSYNC_UNSAFE:
                return None
        elif value.startswith("-") and {"e", "M"}.intersection(value[1:]):
            return None  # -e (remote shell) or -M (remote option), possibly in a cluster
    return _append_marker(values, "--dry-run")


_APT_GET_VERBS = frozenset({"install", "remove", "purge", "upgrade", "dist-upgrade", "autoremove"})


def _apt_get(args: Sequence[_Word]) -> _Plan | None:
    i = _skip_options(
        args,
        0,
        long_value={
            "--option",
            "--config-file",
            "--target-release",
            "--default-release",
            "--host-architecture",
            "--build-profiles",
            "--solver",
            "--planner",
        },
        short_value="octaP",
    )
    if i is None or i >= len(args) or args[i].value not in _APT_GET_VERBS:
        return None
    return _append_marker(_values(args), "--simulate")


_HANDLERS: Mapping[str, _Handler] = {
    "kubectl": _kubectl,
    "terraform": _terraform,
    "helm": _helm,
    "aws": _aws,
    "rsync": _rsync,
    "apt-get": _apt_get,
}


# -- rendering ------------------------------------------------------------------------------


def _render(command: str, segments: list[list[_Word]], offset: int, plan: _Plan) -> str | None:
    main = segments[0]
    out: list[str] = []
    expected: list[str] = []
    pos = 0
    for k, word in enumerate(main):
        index = k - offset
        if index < 0 or index not in plan.replace:
            expected.append(word.value)
            continue
        new = plan.replace[index]
        if new is None:
            # Drop the word with the blank before it (k >= offset >= 1: a word precedes it).
            out.append(command[pos : main[k - 1].end])
        else:
            out.append(command[pos : word.start] + new)
            expected.extend(new.split())
        pos = word.end
    last = main[-1].end
    out.append(command[pos:last])
    if plan.append:
        out.append(" " + plan.append)
        expected.extend(plan.append.split())
    out.append(command[max(pos, last) :])
    result = "".join(out)
    # The edits must have given exactly the intended words, and left any filters alone.
    check = _split(result)
    if (
        check is None
        or _values(check[0]) != expected
        or [_values(s) for s in check[1:]] != [_values(s) for s in segments[1:]]
    ):
        return None
    return result
