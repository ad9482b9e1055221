"""A terminal session or a shell history, distilled into a draft runbook.

What was run becomes the steps, in order, each command verbatim (secrets redacted; concrete
values that change from one incident to the next written as `{{variables}}`). Left out, and
said so in `Draft.dropped`: empty lines and comments; navigation (`ls`, `cd`, `pwd`); shell
housekeeping (`clear`, `history`, `exit`, `whoami`, `sudo -i`); help lookups (`man`, `--help`,
`which`); interactive viewers (`less`, `top`: nothing to replay, listed for the reviewer);
typos (`command not found`, or a misspelt word fixed in the very next command); a failed
command redone just after with a small fix (`sudo` added, a word corrected); a command run again
right after itself (the last run is kept; the same check before and after a change is kept
twice). Editors (`vim /etc/…`) stay: a change was made there, the reviewer writes it down.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ddoc.contracts.redact import Redactor
from ddoc.runbooks.drafts.document import Draft, DraftStep, DraftVariable
from ddoc.runbooks.drafts.sessions import Ran
from ddoc.runbooks.parsing.bare import default_vocabulary
from ddoc.runbooks.parsing.commands import program_of
from ddoc.runbooks.risk import classify_command

EXPECT_LINES = 10  # of a diagnostic's output shown as "you should see"

# -- noise -------------------------------------------------------------------------------------

_NAVIGATION = frozenset("ls ll la l dir vdir cd pushd popd dirs pwd tree".split())
_HOUSEKEEPING = frozenset(
    "clear reset exit logout whoami id history alias unalias tput stty date hostname".split()
)
_SHELLS = frozenset("bash zsh sh fish dash ksh tmux screen su".split())  # with no arguments
_HELP = frozenset("man tldr whatis apropos which type help".split())
_VIEWERS = frozenset("less more most view top htop btop atop glances nmon k9s mc ranger".split())
_EDITORS = frozenset("vi vim nvim nano emacs pico ed sudoedit visudo vipw".split())
_COMPOUND = re.compile(r"[|;&<>`\n]|\$\(")
_NOT_FOUND = re.compile(
    r"command not found|[Cc]ommand '[^']*' not found|: not found\b|No such file or directory"
)
_ERROR = re.compile(
    r"(?im)^(?:error|fatal)\b|^e: |^usage:|permission denied|operation not permitted|"
    r"error from server|unknown (?:flag|command|shorthand flag)|invalid (?:option|argument)|"
    r"unrecognized (?:option|arguments?)|command not found|no such file or directory|"
    r"must be (?:run as )?root|are you root"
)
_ERROR_LINES = 6
_WORDISH = re.compile(r"^-{0,2}[A-Za-z][\w-]*$")
# Words a typo fix never replaces (both spellings are real: `cordon` then `uncordon`).
_K8S_WORDS = frozenset(
    """pod pods po deployment deployments deploy service services svc node nodes no namespace
    namespaces ns replicaset replicasets rs statefulset statefulsets sts daemonset daemonsets ds
    configmap configmaps cm secret secrets ingress ingresses ing job jobs cronjob cronjobs
    events event pvc pv hpa endpoints ep status undo restart history pause resume start stop
    reload enable disable all""".split()
)

_REASONS: dict[str, tuple[str, str, str]] = {
    # key: (one, many, how the commands are shown: "none" | "programs" | "commands")
    "empty": ("empty line", "empty lines", "none"),
    "comment": ("comment", "comments", "none"),
    "navigation": ("navigation command", "navigation commands", "programs"),
    "housekeeping": ("shell housekeeping command", "shell housekeeping commands", "programs"),
    "help": ("help lookup", "help lookups", "commands"),
    "viewer": (
        "interactive viewer (nothing to replay; add a command that prints what was looked at)",
        "interactive viewers (nothing to replay; add commands that print what was looked at)",
        "commands",
    ),
    "typo": ("typo", "typos", "commands"),
    "retried": (
        "failed attempt, redone just after",
        "failed attempts, redone just after",
        "commands",
    ),
    "repeat": (
        "repeated command (the last run kept)",
        "repeated commands (the last runs kept)",
        "commands",
    ),
}


def draft_from_session(
    runs: Iterable[Ran],
    *,
    kind: str,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    alerts: list[str] | None = None,
    redactor: Redactor | None = None,
) -> Draft:
    """A draft runbook from what was run. Commands and outputs are redacted first (with
    `redactor`, else the common credential shapes), so no secret reaches the draft; each
    step's command, rendered with its variables' examples, is one of the redacted commands."""
    redactor = redactor if redactor is not None else Redactor()
    ran = [
        replace(r, command=redactor.redact(r.command), output=redactor.redact(r.output))
        for r in runs
    ]
    kept, dropped = _sift(ran)
    levels = [classify_command(r.command).level.value for r in kept]
    variables, commands = _variables([r.command for r in kept], labels or {})
    steps = []
    for i, r in enumerate(kept):
        expect = None
        if levels[i] == "green" and i + 1 < len(kept) and levels[i + 1] != "green":
            expect = _tail(r.output, EXPECT_LINES) or None
        steps.append(
            DraftStep(
                text=_describe(r.command, levels[i]),
                command=commands[i],
                expect=expect,
                at=r.at.isoformat(timespec="seconds") if r.at is not None else None,
            )
        )
    draft = Draft(
        title=title or _title(kind, kept, levels, alerts or []),
        kind=kind,
        steps=steps,
        variables=variables,
        alerts=list(alerts or []),
        dropped=dropped,
    )
    for step, r in zip(steps, kept, strict=True):
        if step.command is not None and draft.render(step.command) != r.command:
            step.command = r.command  # never a command that was not run
    return draft


def _sift(ran: list[Ran]) -> tuple[list[Ran], list[str]]:
    why: dict[str, list[str]] = {}
    candidates = []
    for r in ran:
        reason = _noise(r)
        if reason is None:
            candidates.append(r)
        else:
            why.setdefault(reason, []).append(r.command)
    fixed = []
    for i, r in enumerate(candidates):
        reason = _corrected(r, candidates[i + 1]) if i + 1 < len(candidates) else None
        if reason is None:
            fixed.append(r)
        else:
            why.setdefault(reason, []).append(r.command)
    kept: list[Ran] = []
    for r in fixed:
        if kept and kept[-1].command == r.command:
            why.setdefault("repeat", []).append(r.command)
            kept[-1] = r
        else:
            kept.append(r)
    return kept, [_say(reason, why[reason]) for reason in _REASONS if reason in why]


def _noise(r: Ran) -> str | None:
    command = r.command.strip()
    if not command:
        return "empty"
    if command.startswith("#"):
        return "comment"
    first = command.split("\n", 1)[0]
    prog, args = program_of(first)
    if _typo(first, r.output):
        return "typo"
    if prog in ("history", "man", "tldr") or (prog in _HELP and not _COMPOUND.search(command)):
        return "help" if prog != "history" else "housekeeping"
    if _COMPOUND.search(command):
        return None
    if not prog and first.split()[0] in ("sudo", "doas"):
        return "housekeeping"  # `sudo -i`, `sudo -s`: a root shell
    if prog in _NAVIGATION:
        return "navigation"
    if prog in _HOUSEKEEPING or (prog in _SHELLS and all(a in ("-", "-l", "root") for a in args)):
        return "housekeeping"
    if "--help" in args or (args[:1] == ["help"]):
        return "help"
    if prog in _VIEWERS and not (prog == "top" and "-b" in args):
        return "viewer"
    return None


def _typo(line: str, output: str) -> bool:
    """The shell could not find the program itself (not a file the program was given)."""
    words = line.split()
    while words and (words[0] in ("sudo", "doas") or words[0].startswith("-")):
        words = words[1:]
    if not words or not output:
        return False
    token = words[0]
    name = token.rsplit("/", 1)[-1]
    for found in _NOT_FOUND.finditer(output):
        start = output.rfind("\n", 0, found.start()) + 1
        end = output.find("\n", found.end())
        said = output[start : end if end >= 0 else len(output)]
        if found.group().startswith("No such file"):
            if f"{token}: No such file" in said:
                return True
        elif re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", said):
            return True
    return False


def _corrected(r: Ran, after: Ran) -> str | None:
    """Why `r` is left out for `after`, the next command, when it is its corrected form."""
    a, b = r.command, after.command
    if a == b:
        return None
    failed = r.failed is True or (r.failed is None and _error_said(r.output))
    if failed and _near(a, b):
        return "retried"
    if r.failed is not True and not r.output and _typo_fixed(a, b):
        return "typo"
    return None


def _error_said(output: str) -> bool:
    """A short output saying the command failed (a long one is what the command printed: a
    search for "error" in a log is no failure)."""
    lines = output.strip().split("\n")
    return len(lines) <= _ERROR_LINES and _ERROR.search(output) is not None


def _near(a: str, b: str) -> bool:
    """The same command but for `sudo` in front or one word changed a little."""
    ta, tb = _unsudo(a.split()), _unsudo(b.split())
    if ta == tb:
        return True
    diff = _one_difference(ta, tb)
    return diff is not None and _distance(*diff) <= max(2, len(diff[1]) // 4)


def _typo_fixed(a: str, b: str) -> bool:
    """A misspelt word (not a real one: `cordon` → `uncordon` is no typo) fixed next."""
    diff = _one_difference(a.split(), b.split())
    if diff is None:
        return False
    wrong, right = diff
    if not (_WORDISH.match(wrong) and _WORDISH.match(right)) or len(wrong.lstrip("-")) < 4:
        return False
    if wrong.lstrip("-").lower() in _known_words():
        return False
    return _distance(wrong, right) <= 2


@functools.cache
def _known_words() -> frozenset[str]:
    vocabulary = default_vocabulary()
    words = set(vocabulary.programs) | _K8S_WORDS
    for subcommands in vocabulary.subcommands.values():
        words |= subcommands
    return frozenset(words)


def _unsudo(tokens: list[str]) -> list[str]:
    return tokens[1:] if tokens[:1] == ["sudo"] else tokens


def _one_difference(ta: list[str], tb: list[str]) -> tuple[str, str] | None:
    if len(ta) != len(tb):
        return None
    pairs = [(x, y) for x, y in zip(ta, tb, strict=True) if x != y]
    return pairs[0] if len(pairs) == 1 else None


def _distance(a: str, b: str) -> int:
    """Edit distance, a swap of two neighbours counting as one (optimal string alignment)."""
    if abs(len(a) - len(b)) > 3:
        return 4
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[len(b)]


def _say(reason: str, commands: list[str]) -> str:
    one, many, show = _REASONS[reason]
    head = f"{len(commands)} {one if len(commands) == 1 else many}"
    if show == "none":
        return head
    if show == "programs":
        names: list[str] = []
        for command in commands:
            prog, args = program_of(command.split("\n", 1)[0])
            name = f"cd {args[0]}" if prog == "cd" and args else prog or _code(command)[1:-1]
            if name not in names:
                names.append(name)
        return f"{head} ({', '.join(names[:6])}{', …' if len(names) > 6 else ''})"
    shown = [_code(c) for c in dict.fromkeys(commands)]
    return f"{head}: {', '.join(shown[:3])}{', …' if len(shown) > 3 else ''}"


def _code(command: str) -> str:
    line = command.split("\n", 1)[0]
    line = line if len(line) <= 80 and line == command else line[:77].rstrip() + " …"
    ticks = "``" if "`" in line else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{line}{pad}{ticks}"


def _tail(output: str, count: int) -> str:
    lines = output.rstrip().split("\n")
    return "\n".join(lines[-count:]).strip("\n")


# -- words for a step --------------------------------------------------------------------------

_PLAIN = {
    "df": "Check disk usage",
    "du": "Find what takes up the space",
    "free": "Check memory",
    "uptime": "Check the load",
    "vmstat": "Check memory and CPU",
    "iostat": "Check disk I/O",
    "dmesg": "Read the kernel log",
    "ps": "List the processes",
    "pgrep": "Find the process",
    "lsof": "List the open files",
    "ss": "List the sockets",
    "netstat": "List the sockets",
    "ping": "Check that the host answers",
    "traceroute": "Trace the route to the host",
    "mtr": "Trace the route to the host",
    "dig": "Check DNS",
    "nslookup": "Check DNS",
    "tail": "Read the end of the log",
    "head": "Read the start of the file",
    "cat": "Read the file",
    "zcat": "Read the file",
    "grep": "Search for the pattern",
    "zgrep": "Search for the pattern",
    "rg": "Search for the pattern",
    "wc": "Count the lines",
    "stat": "Check the file",
    "rm": "Delete the files",
    "truncate": "Empty the file",
    "mv": "Move the file",
    "cp": "Copy the file",
    "gzip": "Compress the file",
    "logrotate": "Rotate the logs",
    "ssh": "Log in to the host",
    "kill": "Stop the process",
    "pkill": "Stop the processes",
    "killall": "Stop the processes",
    "reboot": "Reboot the host",
    "export": "Set the environment variable",
    "sleep": "Wait",
    "openssl": "Check the certificate",
    "certbot": "Renew the certificate",
    "crontab": "Check the cron jobs",
}
_BY_VERB: dict[str, dict[str, str]] = {
    "systemctl": {
        "status": "Check the service",
        "is-active": "Check that the service is running",
        "is-failed": "Check whether the service failed",
        "restart": "Restart the service",
        "try-restart": "Restart the service",
        "start": "Start the service",
        "stop": "Stop the service",
        "reload": "Reload the service",
        "enable": "Enable the service",
        "disable": "Disable the service",
        "mask": "Mask the service",
        "unmask": "Unmask the service",
        "daemon-reload": "Reload the unit files",
        "list-units": "List the units",
        "show": "Show the service's settings",
        "cat": "Show the unit file",
        "reset-failed": "Clear the failed state",
    },
    "helm": {
        "history": "List the release's revisions",
        "rollback": "Roll back the release",
        "upgrade": "Upgrade the release",
        "status": "Check the release",
        "list": "List the releases",
        "ls": "List the releases",
        "install": "Install the chart",
        "uninstall": "Uninstall the release",
        "get": "Show the release",
    },
    "docker": {
        "ps": "List the containers",
        "logs": "Read the container's logs",
        "restart": "Restart the container",
        "stop": "Stop the container",
        "start": "Start the container",
        "exec": "Run a command in the container",
        "stats": "Check the containers' resource usage",
        "inspect": "Inspect the container",
        "system": "Free the space Docker holds",
        "image": "Clean up the images",
    },
}
_ROLLOUT = {
    "status": "Watch the rollout",
    "undo": "Roll back to the previous revision",
    "restart": "Restart the pods",
    "history": "List the revisions",
    "pause": "Pause the rollout",
    "resume": "Resume the rollout",
}
_KUBECTL = {
    "logs": "Read the logs",
    "scale": "Scale",
    "drain": "Drain the node",
    "cordon": "Cordon the node",
    "uncordon": "Uncordon the node",
    "apply": "Apply the manifest",
    "exec": "Run a command in the container",
    "top": "Check resource usage",
    "events": "List the events",
    "port-forward": "Forward a local port",
    "taint": "Taint the node",
    "debug": "Debug",
    "auth": "Check permissions",
    "label": "Label the resource",
    "annotate": "Annotate the resource",
    "create": "Create the resource",
}
_KUBECTL_CONFIG = {
    "use-context": "Switch to the cluster",
    "current-context": "Check which cluster is in use",
    "get-contexts": "List the clusters",
}
_RESOURCES = {
    "po": ("pod", "pods"),
    "deploy": ("deployment", "deployments"),
    "svc": ("service", "services"),
    "no": ("node", "nodes"),
    "rs": ("replica set", "replica sets"),
    "replicaset": ("replica set", "replica sets"),
    "sts": ("stateful set", "stateful sets"),
    "statefulset": ("stateful set", "stateful sets"),
    "ds": ("daemon set", "daemon sets"),
    "daemonset": ("daemon set", "daemon sets"),
    "ns": ("namespace", "namespaces"),
    "cm": ("config map", "config maps"),
    "configmap": ("config map", "config maps"),
    "ing": ("ingress", "ingresses"),
    "ingress": ("ingress", "ingresses"),
    "pvc": ("volume claim", "volume claims"),
    "persistentvolumeclaim": ("volume claim", "volume claims"),
    "hpa": ("autoscaler", "autoscalers"),
    "horizontalpodautoscaler": ("autoscaler", "autoscalers"),
    "event": ("event", "events"),
    "ev": ("event", "events"),
    "secret": ("secret", "secrets"),
    "job": ("job", "jobs"),
    "cronjob": ("cron job", "cron jobs"),
    "cj": ("cron job", "cron jobs"),
    "endpoints": ("endpoints", "endpoints"),
    "ep": ("endpoints", "endpoints"),
}
# kubectl options that take a value (so the value is not a positional argument)
_KUBE_VALUE_OPTS = frozenset(
    """-n --namespace -l --selector -o --output -c --container --context --cluster --kubeconfig
    -f --filename --since --tail --field-selector --sort-by --timeout --to-revision --replicas
    -p --grace-period --user --as -L --label-columns""".split()
)


def _describe(command: str, level: str) -> str:
    """What a step does, in words that name no program's sub-command (so that the parser does
    not take the words for a second command)."""
    first = command.split("\n", 1)[0]
    prog, args = program_of(first)
    if prog in _EDITORS:
        return "Edit the file (write down the change made)"
    if prog == "journalctl":
        if any(a.startswith("--vacuum") for a in args):
            return "Shrink the journal"
        if "--disk-usage" in args:
            return "Check the journal's disk usage"
        return "Read the journal"
    if prog == "find":
        deletes = "-delete" in args or any(a in ("rm", "/bin/rm") for a in args)
        return "Delete the matching files" if deletes else "Find the files"
    if prog in ("curl", "wget", "http", "https"):
        return "Call the endpoint" if level == "green" else "Send the request"
    if prog in ("kubectl", "oc"):
        return _describe_kubectl(args, level)
    if prog in ("for", "while", "until"):
        return "Run the loop"
    if prog in ("nginx", "haproxy", "apachectl", "sshd") and ("-t" in args or "configtest" in args):
        return "Test the configuration"
    if prog in ("apt", "apt-get", "yum", "dnf"):
        verb = next((a for a in args if not a.startswith("-")), "")
        return {
            "clean": "Clean the package cache",
            "autoremove": "Remove unused packages",
            "install": "Install the package",
            "remove": "Remove the package",
            "purge": "Remove the package",
        }.get(verb, "Manage packages")
    verbs = _BY_VERB.get(prog)
    if verbs is not None:
        verb = next((a for a in args if not a.startswith("-")), "")
        if verb in verbs:
            return verbs[verb]
    if prog in _PLAIN:
        return _PLAIN[prog]
    if not prog:
        return "Run the command"
    return f"Check with {prog}" if level == "green" else f"Make a change with {prog}"


def _describe_kubectl(args: list[str], level: str) -> str:
    positional = _positional(args)
    verb = positional[0] if positional else ""
    what = positional[1] if len(positional) > 1 else ""
    kind, _, name = what.partition("/")
    one, many = _RESOURCES.get(kind.lower(), (kind.lower().rstrip("s"), kind.lower()))
    if kind and not kind.endswith("s") and kind.lower() not in _RESOURCES:
        many = kind.lower() + "s"
    named = bool(name) or len(positional) > 2
    if verb == "get" and kind:
        return f"Show the {one}" if named else f"List the {many}"
    if verb == "describe" and kind:
        return f"Describe the {one}" if named else f"Describe the {many}"
    if verb == "delete" and kind:
        return f"Delete the {one}" if named else f"Delete the {many}"
    if verb in ("edit", "patch", "set") and kind:
        return f"Change the {one}"
    if verb == "rollout":
        return _ROLLOUT.get(what, "Manage the rollout")
    if verb == "logs":
        return (
            "Read the previous container's logs"
            if "--previous" in args or "-p" in args
            else ("Read the logs")
        )
    if verb == "config":
        return _KUBECTL_CONFIG.get(what, "Check the kubectl configuration")
    if verb in _KUBECTL:
        return _KUBECTL[verb]
    return "Check with kubectl" if level == "green" else "Make a change with kubectl"


def _positional(args: list[str]) -> list[str]:
    out = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("|", "&&", "||", ";"):
            break
        if arg.startswith("-"):
            i += 2 if arg in _KUBE_VALUE_OPTS else 1
            continue
        out.append(arg.strip("'\""))
        i += 1
    return out


def _title(kind: str, kept: list[Ran], levels: list[str], alerts: list[str]) -> str:
    if alerts:
        return ", ".join(alerts[:3])
    word = "Shell history" if kind == "history" else "Terminal session"
    changes = [r for r, level in zip(kept, levels, strict=True) if level != "green"] or kept
    programs = list(
        dict.fromkeys(
            p for r in changes if (p := program_of(r.command)[0]) and p not in _NOT_TITLES
        )
    )
    if not programs:
        return word
    return f"{word}: {', '.join(programs[:3])}{'…' if len(programs) > 3 else ''}"


_NOT_TITLES = frozenset("ssh export source sleep".split())  # where or how, not what was done


# -- variables ---------------------------------------------------------------------------------

_SKIP_LABELS = frozenset(
    "alertname severity job prometheus receiver endpoint priority __name__ team".split()
)
_GENERIC = _K8S_WORDS | frozenset(
    "true false none null yes no default localhost critical warning info".split()
)
# A pod of a deployment: <name>-<replica set hash>-<5 characters>.
_POD = re.compile(
    r"^(?:pods?/)?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?-(?=[a-z]*\d)[a-z0-9]{5,10}-[a-z0-9]{4,5})$"
)
_SSH_VALUE_OPTS = frozenset("-b -c -D -E -e -F -I -i -J -L -l -m -O -o -p -Q -R -S -W -w".split())
_NODE_KINDS = (["node"], ["nodes"], ["no"])
_SEGMENTS = re.compile(r"\|\|?|&&|;|\n")


def _variables(
    commands: list[str], labels: Mapping[str, str]
) -> tuple[list[DraftVariable], list[str]]:
    """Concrete values as variables: the linked alert's label values found as whole tokens
    (named after the label), then kubectl namespaces, nodes and pods and ssh hosts. The same
    value is the same variable everywhere. Returns the variables and the commands using them."""
    found: dict[str, tuple[str, str | None]] = {}  # value -> (name, label)
    taken: set[str] = set()

    def name_for(base: str) -> str:
        name, n = base, 2
        while name in taken or any("{{" + name + "}}" in c for c in commands):
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        return name

    for label, value in sorted(labels.items(), key=lambda item: -len(item[1])):
        if label in _SKIP_LABELS or not _usable(value) or value in found:
            continue
        if any(_whole(value).search(c) for c in commands):
            found[value] = (name_for(re.sub(r"\W", "_", label) or "label"), label)
    for command in commands:
        for base, value in _suggested(command):
            if _usable(value) and value not in found:
                found[value] = (name_for(base), None)
    if not found:
        return [], list(commands)
    values = sorted(found, key=len, reverse=True)
    pattern = re.compile("|".join(f"(?:{_whole(v).pattern})" for v in values))
    out = [pattern.sub(lambda m: "{{" + found[m.group()][0] + "}}", c) for c in commands]
    joined = "\n".join(commands)
    order = sorted(found, key=lambda v: m.start() if (m := _whole(v).search(joined)) else 0)
    variables = [DraftVariable(found[v][0], example=v, label=found[v][1]) for v in order]
    return variables, out


def _usable(value: str) -> bool:
    return (
        len(value) >= 3
        and not value.isdigit()
        and value.lower() not in _GENERIC
        and not re.search(r"\s|\{\{|\}\}|\[REDACTED", value)
    )


def _whole(value: str) -> re.Pattern[str]:
    """`value` as a whole token: not part of a longer name (or, for a path, a longer path)."""
    edge = r"\w.\-/" if value.startswith("/") else r"\w.\-"
    return re.compile(rf"(?<![{edge}]){re.escape(value)}(?![{edge}])")


def _suggested(command: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for segment in _SEGMENTS.split(command):
        prog, args = program_of(segment)
        args = [a.strip("'\"") for a in args]
        if prog in ("kubectl", "oc", "helm", "stern"):
            for i, arg in enumerate(args):
                if arg in ("-n", "--namespace") and i + 1 < len(args):
                    out.append(("namespace", args[i + 1]))
                elif arg.startswith("--namespace="):
                    out.append(("namespace", arg.split("=", 1)[1]))
        if prog in ("kubectl", "oc"):
            positional = _positional(args)
            verb = positional[0] if positional else ""
            if verb in ("drain", "cordon", "uncordon") and len(positional) > 1:
                out.append(("node", positional[1].removeprefix("node/")))
            elif verb in ("describe", "get", "top") and positional[1:2] in _NODE_KINDS:
                out += [("node", name) for name in positional[2:]]
            for arg in positional[1:]:
                if arg.startswith(("node/", "nodes/")):
                    out.append(("node", arg.split("/", 1)[1]))
                pod = _POD.match(arg)
                if pod:
                    out.append(("pod", pod.group(1)))
        if prog == "ssh":
            host = _ssh_host(args)
            if host:
                out.append(("host", host))
    return out


def _ssh_host(args: list[str]) -> str | None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            i += 2 if arg in _SSH_VALUE_OPTS else 1
            continue
        host = arg.rsplit("@", 1)[-1]
        return host if re.fullmatch(r"[A-Za-z0-9][\w.-]*", host) else None
    return None


__all__ = ["EXPECT_LINES", "draft_from_session"]
