"""Tools whose risk depends on more than a verb and a flag: database clients (SQL inside),
redis-cli, HTTP clients (``handlers_http``), signals, find -exec, in-place editors, tee,
interpreters.

Each handler returns steps (see ``ddoc.runbooks.risk.wrappers``), or ``None`` to fall back on the
rule tables.
"""

from __future__ import annotations

import re

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk.handlers_http import HTTP_HANDLERS, output
from ddoc.runbooks.risk.options import is_system_path, parse_opts
from ddoc.runbooks.risk.rules import evaluate, positionals
from ddoc.runbooks.risk.rules_data import GITLAB_RAKE, REDIS_CLI_MODES, REDIS_TOOL
from ddoc.runbooks.risk.rules_deploy import TOOLS as DEPLOY_TOOLS
from ddoc.runbooks.risk.wrappers import FROM_FILE, Final, Sql, Step, Steps, Unwrapper, Words

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED

_SIGNALS = frozenset(
    "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM "
    "STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO "
    "PWR SYS".split()
)
_AWK_WRITES = re.compile(r"""print[^;}]{0,200}?>|\|\s*["']|\bsystem\s*\(""")
GIT_TOOL = DEPLOY_TOOLS["git"]


_SQL_FILE = Final(Y, "runs a SQL file", "sql.file")


def _sql_input(stdin: str) -> Step:
    """SQL fed on stdin: a here-document we can read, or a file we cannot."""
    return _SQL_FILE if stdin == FROM_FILE else Sql(stdin)


def _psql(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "cdfhpUvoPLFRT",
        frozenset(
            {
                "--command",
                "--dbname",
                "--file",
                "--host",
                "--port",
                "--username",
                "--set",
                "--variable",
                "--output",
                "--pset",
                "--log-file",
                "--field-separator",
                "--record-separator",
                "--table-attr",
            }
        ),
    )
    steps: list[Step] = [Sql(c) for c in p.values("-c", "--command")]
    for f in p.values("-f", "--file"):
        steps.append(_sql_input(stdin) if f == "-" and stdin is not None else _SQL_FILE)
    steps.extend(
        s
        for o in p.values("-o", "--output", "-L", "--log-file")
        if (s := output(o, "psql")) is not None
    )
    if not p.has("-c", "--command", "-f", "--file"):
        if stdin is not None:
            steps.append(_sql_input(stdin))
        elif p.has("-l", "--list", "-V", "--version", "--help"):
            steps.append(Final(G, "psql only lists databases", "psql.list"))
        else:
            steps.append(Final(Y, "opens an interactive SQL session", "psql.interactive"))
    return steps


def _mysql(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "eDhPSu",
        frozenset({"--execute", "--database", "--host", "--port", "--socket", "--user"}),
        short_optional="p",
    )
    steps: list[Step] = [Sql(e) for e in p.values("-e", "--execute")]
    if not steps:
        steps.append(
            _sql_input(stdin)
            if stdin is not None
            else Final(Y, "opens an interactive SQL session", "mysql.interactive")
        )
    return steps


def _redis(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if "--cluster" in words:
        i = words.index("--cluster")
        sub = words[i + 1].lower() if i + 1 < len(words) else ""
        if sub in ("check", "info", "help"):
            return [Final(G, f"redis-cli --cluster {sub} only reads", "redis_cli.cluster.check")]
        if sub == "del-node":
            return [Final(R, "redis-cli --cluster del-node removes a node", "redis_cli.cluster")]
        return [Final(Y, "redis-cli --cluster changes the cluster", "redis_cli.cluster")]
    modes = [REDIS_CLI_MODES[w] for w in words if w in REDIS_CLI_MODES]
    if modes:
        rule = max(modes, key=lambda r: r.level.rank)
        return [Final(rule.level, rule.reason, rule.id)]
    p = parse_opts(
        words[1:],
        "hpsaunridD",
        frozenset(
            {
                "--user",
                "--pass",
                "--sni",
                "--cacert",
                "--cacertdir",
                "--cert",
                "--key",
                "--tls-ciphers",
                "--tls-ciphersuites",
                "--pattern",
                "--count",
                "--quoted-pattern",
                "--memkeys-samples",
            }
        ),
        stop_at_positional=True,
    )
    if not p.positional:
        if stdin is not None:
            return [Final(Y, "redis-cli runs commands from stdin", "redis_cli.stdin")]
        return [Final(Y, "opens an interactive redis session", "redis_cli.interactive")]
    rule = max(evaluate(REDIS_TOOL, p.positional), key=lambda r: r.level.rank)
    return [Final(rule.level, rule.reason, rule.id)]


def _signal(word: str) -> str | None:
    name = word.upper().removeprefix("SIG")
    return name if name.isdigit() or name in _SIGNALS else None


def _kill(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    sig, i, args = "TERM", 1, words[1:]
    while i < len(words):
        w = words[i]
        if w in ("-l", "-L", "--list", "--table"):
            return [Final(G, f"{words[0]} -l only lists signals", "kill.list")]
        if w in ("-s", "-n", "--signal") and i + 1 < len(words) and words[0] == "kill":
            sig, i = _signal(words[i + 1]) or words[i + 1].upper(), i + 2
            continue
        if w.startswith("--signal"):
            value = w.partition("=")[2] or (words[i + 1] if i + 1 < len(words) else "")
            sig = _signal(value) or value.upper()
        elif w.startswith("-") and _signal(w[1:]):
            sig = _signal(w[1:]) or sig
        i += 1
    if not args:
        return [Final(Y, f"{words[0]} without a target", "kill.bare")]
    if sig in ("KILL", "9"):
        return [Final(R, f"{words[0]} -9 gives the process no chance to clean up", "kill.sigkill")]
    if sig == "0":
        return [Final(G, "kill -0 only checks that a process exists", "kill.check")]
    return [Final(Y, f"{words[0]} sends SIG{sig}; the process can handle it", "kill.signal")]


def _find(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    steps: list[Step] = [Final(G, "find only reads", "find.read")]
    i = 1
    while i < len(words):
        w = words[i]
        if w == "-delete":
            steps.append(Final(R, "find -delete deletes every match", "find.delete"))
        elif w in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(words) and words[j] not in (";", "+"):
                j += 1
            steps.append(
                Words(words[i + 1 : j])
                if j > i + 1
                else Final(Y, "find -exec without a command", "find.exec")
            )
            i = j
        elif w in ("-fprint", "-fprint0", "-fprintf", "-fls") and i + 1 < len(words):
            steps.append(output(words[i + 1], "find") or Final(G, "find only reads", "find.read"))
        i += 1
    return steps


def _edited(files: list[str], tool: str) -> Steps:
    hit = next((f for f in files if is_system_path(f)), None)
    if hit is not None:
        return [Final(R, f"{tool} edits a system file in place ({hit})", f"{tool}.inplace.system")]
    return [Final(Y, f"{tool} edits files in place", f"{tool}.inplace")]


def _sed(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    inplace, script_given, pos, i = False, False, [], 1
    while i < len(words):
        w = words[i]
        if w in ("-e", "--expression", "-f", "--file", "-l", "--line-length"):
            script_given, i = script_given or w in ("-e", "--expression", "-f", "--file"), i + 2
            continue
        if w.startswith("--"):
            inplace = inplace or w.startswith("--in-place")
            script_given = script_given or w.startswith(("--expression=", "--file="))
        elif w.startswith("-") and len(w) > 1:
            for ch in w[1:]:
                if ch == "i":
                    inplace = True
                    break
                if ch in "ef":
                    script_given = True
                    break
        else:
            pos.append(w)
        i += 1
    if not inplace:
        return [Final(G, "sed without -i only prints", "sed.read")]
    return _edited(pos if script_given else pos[1:], "sed")


def _awk(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if "inplace" in words or any(w.startswith("--include=inplace") for w in words):
        files = [w for w in words[2:] if not w.startswith("-")]
        return _edited(files, "awk")
    if any(_AWK_WRITES.search(w) for w in words[1:]):
        return [Final(Y, "awk program writes files or runs commands", "awk.writes")]
    return [Final(G, "awk only reads", "awk.read")]


def _tee(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    files = [w for w in words[1:] if not w.startswith("-")]
    return [s for f in files if (s := output(f, "tee")) is not None] or [
        Final(G, "tee only passes data through", "tee.passthrough")
    ]


def _mount(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(words[1:], "tOoLU", frozenset({"--types", "--options"}))
    if not p.positional and not p.has("-a", "--all"):
        return [Final(G, "mount without arguments only lists mounts", "mount.list")]
    return None


def _sysctl(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if any("=" in w and not w.startswith("-") for w in words[1:]):
        return [Final(Y, "sysctl key=value changes a kernel setting", "host.sysctl.write")]
    return None


def _hostname(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    if any(not w.startswith("-") for w in words[1:]) or "-F" in words or "--file" in words:
        return [Final(Y, "hostname NAME sets the hostname", "host.hostname.set")]
    return [Final(G, "hostname only reads", "host.hostname")]


def _interpreter(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    args = words[1:]
    if args[:2] == ("-m", "json.tool") or args[:1] in (("--version",), ("-V",), ("-v",)):
        return [Final(G, f"{words[0]} {' '.join(args[:2])} only reads", "interp.read")]
    if any(a in ("-c", "-e", "-E", "-r", "--eval") for a in args):
        return [Final(Y, "runs inline code whose effect is unknown", "interp.inline")]
    if args or stdin is not None:
        return [Final(Y, "runs a script whose effect is unknown", "shell.script")]
    return [Final(Y, f"opens an interactive {words[0]} session", "shell.interactive")]


def _git(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    pos = positionals(words[1:], GIT_TOOL.value_opts)
    # `git push origin +main` forces; `git push origin :branch` deletes: no flag says so.
    if pos[:1] == ["push"] and any(p[:1] == "+" or p[:1] == ":" for p in pos[2:]):
        return [Final(R, "a forced or deleting push rewrites remote history", "git.push.force")]
    return None


def _gitlab_rake(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    tasks = [w for w in words[1:] if not w.startswith("-") and "=" not in w.split("[", 1)[0]]
    steps: list[Step] = []
    for task in tasks:
        rule = next(r for pattern, r in GITLAB_RAKE if pattern.search(task))
        steps.append(Final(rule.level, rule.reason, rule.id))
    return steps or [Final(Y, "gitlab-rake without a task", "gitlab_rake.task")]


HANDLERS: dict[str, Unwrapper] = {
    "psql": _psql,
    "gitlab-psql": _psql,
    "mysql": _mysql,
    "mariadb": _mysql,
    "redis-cli": _redis,
    **HTTP_HANDLERS,
    "kill": _kill,
    "pkill": _kill,
    "find": _find,
    "sed": _sed,
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "tee": _tee,
    "mount": _mount,
    "sysctl": _sysctl,
    "hostname": _hostname,
    "gitlab-rake": _gitlab_rake,
    "git": _git,
    **dict.fromkeys(
        (
            "python",
            "python2",
            "python3",
            "ruby",
            "perl",
            "node",
            "php",
            "Rscript",
            "pwsh",
            "deno",
            "bun",
        ),
        _interpreter,
    ),
}
