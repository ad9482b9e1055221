"""Placeholders in commands (``<pod>``, ``$NAMESPACE``, ``{{ $labels.node }}`` ...) as Variables.

A placeholder's value comes from the alert when its name is a common alert label or
annotation; otherwise a human has to supply it. Shell-internal variables (``$HOME``,
loop variables, anything assigned in the runbook itself) are not placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ddoc.runbooks.model import Variable, VariableSource

LABEL_NAMES = frozenset(
    """namespace pod container node instance job service deployment cluster severity alertname
    persistentvolumeclaim statefulset daemonset job_name device mountpoint fstype""".split()
)
ANNOTATION_NAMES = frozenset("summary description runbook_url message".split())
# Spellings that plainly mean a label: the label's value *is* the pod's name.
_ALIASES = {
    "pod_name": "pod",
    "node_name": "node",
    "namespace_name": "namespace",
    "ns": "namespace",
    "container_name": "container",
    "deployment_name": "deployment",
    "statefulset_name": "statefulset",
    "daemonset_name": "daemonset",
    "cluster_name": "cluster",
    "pvc": "persistentvolumeclaim",
    "pvc_name": "persistentvolumeclaim",
    "alert_name": "alertname",
    "mount_point": "mountpoint",
}
_SHELL_INTERNAL = frozenset(
    """HOME PATH USER PWD OLDPWD SHELL HOSTNAME HOST UID EUID GID RANDOM LINENO SECONDS IFS PS1
    PS2 PS4 TERM LANG LC_ALL EDITOR VISUAL PAGER TMPDIR TMP BASH BASH_SOURCE BASH_VERSION PPID
    REPLY OPTARG OPTIND KUBECONFIG GOPATH LOGNAME MAIL SHLVL DISPLAY SSH_AUTH_SOCK PIPESTATUS
    FUNCNAME HISTFILE PROMPT_COMMAND COLUMNS LINES""".split()
)
_NOT_BRACE_NAMES = frozenset("print printf next exit getline range end if else".split())
# Go-template words (kubectl -o go-template, docker --format): not placeholders.
_TEMPLATE_WORDS = frozenset(
    "end else range if with template define block break continue nil true false".split()
)

_TEMPLATE = re.compile(
    r"\{\{-?\s*(?:(?P<scope>\$labels|\.Labels|\$annotations|\.Annotations)\.)?(?P<name>\$?[A-Za-z_]\w*)\s*-?\}\}"
)
_LABELS_BARE = re.compile(r"\$(?P<scope>labels|annotations)\.(?P<name>[A-Za-z_]\w*)")
_SHELL_BRACED = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?:[:?+=#%/-][^}]*)?\}")
_SHELL_PLAIN = re.compile(r"\$(?P<name>[A-Za-z_]\w*)(?![\w(.])")
_ANGLE = re.compile(r"(?<![<\w])<(?P<name>[A-Za-z][\w.:/-]*(?: [\w.:/-]+){0,5})>(?![>&])")
_SINGLE_BRACE = re.compile(r"(?<![{$\w])\{(?P<name>[A-Za-z_]\w*)\}(?!\})")
# "YOUR_CLUSTER_HERE", "YOUR_TOKEN", "<your-region>": a blank the reader fills in.
_YOURS = re.compile(
    r"(?<![\w$])(?:YOUR|MY)_(?P<name>[A-Z0-9_]+?)(?:_HERE)?(?![\w])|(?<![\w$])(?P<here>[A-Z][A-Z0-9_]*?)_HERE(?![\w])"
)
_ASSIGNED = re.compile(
    r"(?:^|[\s;&|(`])(?:export\s+|local\s+|declare\s+(?:-\w+\s+)*|readonly\s+)?([A-Za-z_]\w*)=",
    re.M,
)
_LOOP_OR_READ = re.compile(
    r"\b(?:for|select)\s+([A-Za-z_]\w*)\s+in\b|\bread\s+(?:-\w+\s+)*([A-Za-z_][\w ]*)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_LABEL_WORD = re.compile(r"^(?:the_)?([a-z_]+?)_label(?:_|$)")


def normalise(raw: str) -> str:
    name = raw.lstrip("$")
    if not name.isupper():
        name = _CAMEL.sub("_", name)
    return _NON_ALNUM.sub("_", name).strip("_").lower()


def assigned_names(commands: Iterable[str]) -> set[str]:
    """Variables the runbook sets itself (`FOO=1`, `export FOO=`, `for FOO in`, `read FOO`)."""
    names: set[str] = set()
    for command in commands:
        if "=" in command:
            names.update(_ASSIGNED.findall(command))
        if "for " in command or "read " in command or "select " in command:
            for m in _LOOP_OR_READ.finditer(command):
                if m.group(1):
                    names.add(m.group(1))
                elif m.group(2):
                    names.update(m.group(2).split())
    return names


def source_of(name: str, scope: str | None = None) -> tuple[VariableSource, str | None]:
    if scope in ("labels", "$labels", ".Labels"):
        return VariableSource.LABEL, name
    if scope in ("annotations", "$annotations", ".Annotations"):
        return VariableSource.ANNOTATION, name
    key = _ALIASES.get(name, name)
    if key in LABEL_NAMES:
        return VariableSource.LABEL, key
    if key in ANNOTATION_NAMES:
        return VariableSource.ANNOTATION, key
    # "<instance label from alert>", "<node label>": the text names the label.
    m = _LABEL_WORD.match(name)
    if m and _ALIASES.get(m.group(1), m.group(1)) in LABEL_NAMES:
        return VariableSource.LABEL, _ALIASES.get(m.group(1), m.group(1))
    return VariableSource.ASK, None


def find_placeholders(
    command: str, language: str | None, assigned: set[str]
) -> list[tuple[str, str, str | None]]:
    """(raw syntax, normalised-name source text, scope) for each placeholder, in order."""
    found: list[tuple[int, str, str, str | None]] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    if "{{" in command:
        for m in _TEMPLATE.finditer(command):
            taken.append(m.span())
            name = m.group("name")
            if m.group("scope") is None and (name.startswith("$") or name in _TEMPLATE_WORDS):
                continue  # a template's own variable or keyword ({{ $k }}, {{ end }})
            found.append((m.start(), m.group(0), name, m.group("scope")))
    if "$labels." in command or "$annotations." in command:
        for m in _LABELS_BARE.finditer(command):
            if free(*m.span()):
                found.append((m.start(), m.group(0), m.group("name"), m.group("scope")))
                taken.append(m.span())
    if "<" in command:
        for m in _ANGLE.finditer(command):
            if free(*m.span()):
                found.append((m.start(), m.group(0), m.group("name"), None))
                taken.append(m.span())
    if "_" in command:
        for m in _YOURS.finditer(command):
            if free(*m.span()):
                found.append((m.start(), m.group(0), m.group("name") or m.group("here"), None))
                taken.append(m.span())
    if "{" in command:
        for m in _SINGLE_BRACE.finditer(command):
            if free(*m.span()) and m.group("name").lower() not in _NOT_BRACE_NAMES:
                found.append((m.start(), m.group(0), m.group("name"), None))
                taken.append(m.span())
    if "$" in command and language != "redis":
        quoted = _single_quoted(command) if language != "sql" else []
        for pattern in (_SHELL_BRACED, _SHELL_PLAIN):
            for m in pattern.finditer(command):
                name = m.group("name")
                if not free(*m.span()) or _inside(m.start(), quoted):
                    continue
                taken.append(m.span())
                if (
                    name in assigned
                    or name in _SHELL_INTERNAL
                    or (len(name) == 1 and name.islower())
                ):
                    continue
                found.append((m.start(), m.group(0), name, None))
    found.sort(key=lambda f: f[0])
    return [(syntax, name, scope) for _, syntax, name, scope in found]


def _single_quoted(command: str) -> list[tuple[int, int]]:
    """Spans of single-quoted strings (no shell expansion there); comment lines are skipped."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in command.split("\n"):
        if line.lstrip().startswith("#"):
            spans.append((offset, offset + len(line)))
        else:
            in_double = False
            i = 0
            n = len(line)
            while i < n:
                ch = line[i]
                if ch == "\\" and not in_double:
                    i += 2
                    continue
                if ch == '"':
                    in_double = not in_double
                elif ch == "'" and not in_double:
                    close = line.find("'", i + 1)
                    if close == -1:
                        break
                    spans.append((offset + i, offset + close))
                    i = close
                i += 1
        offset += len(line) + 1
    return spans


def _inside(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos <= b for a, b in spans)


def mask_placeholders(command: str, word: Callable[[str], str] | None = None) -> str:
    """``command`` with ``<name>``, ``{{ name }}`` and ``YOUR_NAME_HERE`` blanks as plain words,
    so that a classifier reads ``kubectl -n <namespace> get pod`` as a read, not a redirection.
    ``word`` makes the word from the blank's name (default: the name as a plain word)."""
    word = word or _word
    if "<" in command:
        command = _ANGLE.sub(lambda m: word(m.group("name")), command)
    if "{{" in command:
        command = _TEMPLATE.sub(lambda m: word(m.group("name")), command)
    return command


def _word(name: str) -> str:
    return _NON_WORD.sub("_", name.lstrip("$")) or "value"


_NON_WORD = re.compile(r"[^\w./:-]+")
_PROMPT_LIMIT = 160


def prompt_for(syntax: str, command: str, context: str | None) -> str | None:
    """The words around a placeholder in its step, to ask a human for its value with."""
    if not context:
        return None
    text = context.replace(f"`{command}`", " ").replace(command, " ")
    text = " ".join(text.replace("`", "").split()).strip(" :,-\u2014\u2013")
    if not text:
        return None
    if len(text) > _PROMPT_LIMIT:
        text = text[: _PROMPT_LIMIT - 1].rstrip() + "…"
    return f"{syntax} in: {text}"


def collect(
    commands: Iterable[tuple[str, str | None]] | Iterable[tuple[str, str | None, str | None]],
    texts: Iterable[str] = (),
) -> tuple[list[Variable], dict[str, str]]:
    """Variables across a runbook's commands, deduplicated by name, in first-seen order.

    ``commands`` are ``(command, language)`` or ``(command, language, step text)``; with the
    step's text each variable gets a prompt. Returns the variables and, for each name, the
    first command it appeared in.
    """
    rows = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in commands]
    assigned = assigned_names(c for c, _, _ in rows)
    seen: dict[str, Variable] = {}
    first_in: dict[str, str] = {}
    for command, language, context in rows:
        for syntax, raw, scope in find_placeholders(command, language, assigned):
            name = normalise(raw)
            if not name or name in seen:
                continue
            source, key = source_of(name, scope)
            prompt = prompt_for(syntax, command, context) if source == VariableSource.ASK else None
            seen[name] = Variable(name=name, syntax=syntax, source=source, key=key, prompt=prompt)
            first_in[name] = command
    for text in texts:
        if "$labels." not in text and "$annotations." not in text:
            continue
        for m in _LABELS_BARE.finditer(text):
            name = normalise(m.group("name"))
            if name and name not in seen:
                source, key = source_of(name, m.group("scope"))
                seen[name] = Variable(name=name, syntax=m.group(0), source=source, key=key)
    return list(seen.values()), first_in
