"""Recognising commands: is this code span / code block something an operator would run?

Also: prompt stripping, splitting a code block into commands, and the command language
(kubectl, helm, sql, http, aws, gcloud, az, terraform, redis, shell).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

# Programs an operator runs during an incident. Wide on purpose: a miss loses a command.
KNOWN_CLIS = frozenset(
    """
    kubectl oc helm kustomize k9s kubeadm kubectx kubens minikube stern istioctl linkerd argocd
    flux velero crictl ctr nerdctl docker podman docker-compose skaffold
    psql pg_dump pg_dumpall pg_restore pg_basebackup pg_isready pg_ctl pg_ctlcluster pg_controldata
    pg_repack pg_upgrade pgbench vacuumdb reindexdb createdb dropdb patronictl pgbouncer
    mysql mysqldump mysqladmin mongo mongosh mongodump mongorestore redis-cli redis-server
    etcdctl etcdutl cqlsh nodetool clickhouse-client influx kafka-topics kafkacat kcat
    rabbitmqctl consul vault nomad knife chef-client ansible ansible-playbook salt
    aws gcloud gsutil bq az terraform tf tofu terragrunt pulumi packer
    systemctl journalctl service sv runsv chroot nsenter
    curl wget http https httpie xh ssh scp rsync sftp nc ncat telnet openssl dig nslookup
    ping traceroute mtr tcpdump tcpflow netstat ss lsof ip ifconfig iptables ip6tables nft ufw
    sudo su cat less more tail head grep egrep fgrep zgrep rg awk sed find ls df du top htop
    atop iotop iostat vmstat mpstat pidstat sar free uptime dmesg ps pgrep pkill kill killall
    rm mv cp mkdir rmdir chmod chown ln touch echo printf tee sort uniq wc cut tr xargs jq yq
    tar gzip gunzip zcat bzip2 xz base64 md5sum sha256sum stat file readlink realpath
    mount umount lsblk blkid fdisk parted mkfs fsck xfs_growfs resize2fs growpart swapoff swapon
    reboot shutdown sysctl ulimit prlimit modprobe lsmod strace ltrace perf gdb pstack
    apt apt-get yum dnf apk snap brew pip pip3 npm gem bundle
    git make python python3 ruby node go java rails rake
    crontab date env export source watch timeout nohup tmux screen cd pushd popd exit
    promtool amtool thanos sslmate certbot cfssl keytool htpasswd ldapsearch gpg
    nginx haproxy envoy gitlab-ctl gitlab-rake gitlab-rails gitlab-psql gitlab-backup glab gh
    wal-g pgbackrest envdir tcpkill hostname whoami id journalctl logrotate cloud-init
    google_metadata_script_runner rdb
    """.split()
)
# Families of CLIs named by convention rather than one by one.
_CLI_FAMILY = re.compile(
    r"^(?:gitlab-(?:ctl|rake|rails|psql|backup|redis-cli|patronictl|runner|workhorse|shell)"
    r"|[a-z][a-z0-9]*ctl|pgb-console[\w*-]*|pg_[a-z_]+|kube[a-z-]+)$"
)
# English words that are also programs: inline, they need more evidence of being a command.
_AMBIGUOUS = frozenset(
    "node service host top time date watch make find free less more head tail source export "
    "kill sort ip go file which type wait test cd exit env id mount stat screen apply".split()
)
# Programs that wrap another: the command is what follows them.
_WRAPPERS = frozenset("sudo env time nohup exec doas timeout watch nice ionice".split())
_WRAPPER_ARG_OPTS = frozenset("-u -g -C -D -h -p -r -t -U -n -d -s -k".split())
# Programs that are commonly run with no arguments at all.
_BARE_OK = frozenset("df top htop free uptime dmesg iostat vmstat ps w who lsblk netstat".split())

_LANG_BY_PROG = {
    "kubectl": "kubectl",
    "oc": "kubectl",
    "helm": "helm",
    "curl": "http",
    "wget": "http",
    "http": "http",
    "https": "http",
    "httpie": "http",
    "xh": "http",
    "aws": "aws",
    "gcloud": "gcloud",
    "gsutil": "gcloud",
    "bq": "gcloud",
    "az": "az",
    "terraform": "terraform",
    "tf": "terraform",
    "tofu": "terraform",
    "terragrunt": "terraform",
}

SQL_START = frozenset(
    """select insert update delete create drop alter truncate begin commit rollback set show
    explain analyze analyse vacuum reindex grant revoke with copy cluster checkpoint lock refresh
    call abort savepoint release listen notify deallocate discard reset comment""".split()
)
REDIS_COMMANDS = frozenset(
    """get set del keys scan info config slowlog role client monitor latency memory dbsize
    flushall flushdb bgsave save ping debug sentinel cluster ttl type hgetall hget lrange llen
    smembers scard zrange zcard expire unlink object replicaof slaveof shutdown""".split()
)

SHELL_INFOS = frozenset(
    "bash sh shell zsh ksh console shell-session shellsession terminal bash-session".split()
)
CONSOLE_INFOS = frozenset("console shell-session shellsession terminal bash-session".split())
SCRIPT_INFOS = frozenset("bash sh zsh ksh".split())  # "#" is a comment there, never a prompt
SQL_INFOS = frozenset("sql postgresql postgres psql pgsql plpgsql mysql".split())
REDIS_INFOS = frozenset("redis rediscli redis-cli".split())
# Languages that are code or config, never something to paste into a shell.
CONTEXT_INFOS = frozenset(
    """yaml yml json jsonc toml ini hcl xml html promql text txt plain plaintext log logs output
    go golang python py ruby rb javascript js typescript ts java c cpp rust diff patch
    dockerfile nginx conf properties csv markdown md jinja j2 groovy lua perl php""".split()
)

_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_FLAG = re.compile(r"^--?[A-Za-z]")
_WORD = re.compile(r"^[a-z][a-z0-9._+-]*$")
_PROMQL = re.compile(r"[a-z_]\(|\{[a-z_]+=~?\"|\[\d+[smhdw]\]")
_EXEC_PATH = re.compile(r"^(?:\.{0,2}/|~/)\S+$")

# Prompts in transcripts. A `$` prompt may carry user@host:path before it.
_SHELL_PROMPT = re.compile(r"^(\s*(?:[\w.-]+(?:@[\w.-]+)?(?::[~\w./-]*)?\s*)?\$\s+)(?=\S)")
# A root `#` prompt needs a host part that cannot be a word followed by a shell comment.
_ROOT_PROMPT = re.compile(r"^(\s*(?:[\w.-]*[@:.\d-][\w.-]*(?::[~\w./-]*)?\s*)?#\s+)(?=\S)")
_PSQL_PROMPT = re.compile(r"^(\s*[A-Za-z_][\w]*[=-][#>]\s*)(?=\S)")
_REDIS_PROMPT = re.compile(r"^(\s*(?:[\w.-]+:\d+)?>\s+)(?=\S)")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_]\w*)['\"]?")
# "# 1. ..." / "-- Step 2: ..." markers that split one code block into several steps.
_NUMBERED_COMMENT = re.compile(r"^\s*(?:#+|--|//)\s*(?:step\s*)?\d+\s*[.):]\s*(\S.*)$", re.I)
_OUTPUT_LINE = re.compile(
    r"^\s*(?:[+|]-|\||-\[ RECORD|\(\d+ rows?\)|\d{4}-\d\d-\d\d|[A-Z]+:\s|[\[{(]|\w+:\S|\w+ = )"
)


@dataclass(slots=True)
class Command:
    text: str  # verbatim (prompt and common indentation removed)
    start: int  # 1-based source lines
    end: int
    language: str
    title: str | None = None  # from a numbered comment in the block


def program_of(line: str) -> tuple[str, list[str]]:
    """The program a command line runs (wrappers and VAR=x prefixes skipped) and its args."""
    toks = line.split()
    i = 0
    n = len(toks)
    while i < n:
        tok = toks[i]
        if _ASSIGN.match(tok):
            i += 1
            continue
        base = tok.rsplit("/", 1)[-1] if "/" in tok and not tok.endswith("/") else tok
        if base in _WRAPPERS:
            i += 1
            while i < n and toks[i].startswith("-"):
                i += 2 if toks[i] in _WRAPPER_ARG_OPTS else 1
            continue
        return base, toks[i + 1 :]
    return "", []


def is_known_cli(prog: str) -> bool:
    return prog in KNOWN_CLIS or bool(_CLI_FAMILY.match(prog))


def language_of(command: str) -> str:
    first = first_meaningful_line(command)
    if sql_like(first, block=command):
        return "sql"
    prog, _ = program_of(first)
    return _LANG_BY_PROG.get(prog, "shell")


def first_meaningful_line(text: str) -> str:
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "--")):
            return stripped
    return ""


def sql_like(line: str, block: str | None = None) -> bool:
    toks = line.split(None, 3)
    if not toks:
        return False
    first = toks[0].rstrip(";")
    if first.lower() not in SQL_START:
        return False
    if line.rstrip().endswith(";"):
        return True
    if len(toks) == 1:
        return first.isupper() and first.lower() in ("begin", "commit", "rollback", "checkpoint")
    if first.isupper() and len(toks) >= 3:
        return True
    text = block if block is not None else line
    return first.lower() == "select" and re.search(r"\bfrom\b", text, re.I) is not None


def is_inline_command(code: str, before: str = "") -> bool:
    """Does this inline code span hold a command (rather than a name, path, value or query)?"""
    code = code.strip()
    if not code or "\n" in code:
        return False
    m = _SHELL_PROMPT.match(code)
    if m and m.group(1).strip() == "$":
        code = code[m.end() :]
    toks = code.split()
    first = toks[0]
    if _PROMQL.search(toks[0]) or first.startswith(("{", "(", "[", "-", '"', "'")):
        return False
    if sql_like(code):
        return True
    prog, args = program_of(code)
    if not prog:
        return False
    if first in ("sudo", "doas"):
        return True  # whatever runs under sudo is a command
    if is_known_cli(prog):
        if not args:
            # `sudo gitlab-psql` is a command; a lone `psql` is usually just the tool's name.
            wrapped = toks[0] != prog and toks[0].rsplit("/", 1)[-1] != prog
            return wrapped or (prog in _BARE_OK and _RUN_CONTEXT.search(before) is not None)
        if prog in _AMBIGUOUS:
            return len(args) >= 2 or any(_FLAG.match(a) or _ARGISH.search(a) for a in args)
        return True
    if (
        not args
        and _SCRIPT_NAME.match(first)
        and (_RUN_CONTEXT.search(before) or before.rstrip().endswith(":"))
    ):
        return True  # "To roll back: `unbump.sh`"
    if _EXEC_PATH.match(prog if prog == first else first) and (
        args or first.endswith((".sh", ".py", ".rb"))
    ):
        return "/" in first and not first.endswith((".yml", ".yaml", ".json", ".conf", ".md"))
    return bool(_WORD.match(prog) and any(_FLAG.match(a) for a in args))


_SCRIPT_NAME = re.compile(r"^(?:\.{0,2}/)?[\w.+/-]+\.(?:sh|py|rb|pl)$")
_RUN_CONTEXT = re.compile(r"\b(?:run|running|execute|type|invoke|use)\s*:?\s*$", re.I)
_ARGISH = re.compile(r"[/$<.=:]|\d")


def is_command_line(line: str) -> bool:
    """Looser test for a line inside a code block (no surrounding prose to rule it out)."""
    s = line.strip()
    if not s or (_OUTPUT_LINE.match(s) and not _ASSIGN.match(s)):
        return False
    if _ASSIGN.match(s):
        return True
    head = s.split(None, 1)[0]
    if head in ("for", "while", "if", "until", "case", "export", "cd", "echo", "source", "."):
        return True
    if sql_like(s):
        return True
    prog, args = program_of(s)
    if not prog:
        return False
    if is_known_cli(prog):
        return True
    if _EXEC_PATH.match(head) and "/" in head:
        return True
    return bool(_WORD.match(prog) and any(_FLAG.match(a) for a in args))


def looks_like_prose(line: str) -> bool:
    words = line.split()
    return len(words) >= 6 and line.rstrip().endswith((".", ":")) and not is_command_line(line)


def block_kind(info: str, lines: list[str], intro: str = "") -> str:
    """ "command" (something to run), "context" (config/code an operator applies) or "none"."""
    if info in SHELL_INFOS or info in SQL_INFOS or info in REDIS_INFOS:
        first = first_meaningful_line("\n".join(lines))
        if not first:
            # Only comments ("# TODO: command needed"): still the place a command belongs.
            return "command" if any(line.strip() for line in lines) else "none"
        if info in SHELL_INFOS and (first.startswith("-") or looks_like_prose(first)):
            return "none"
        return "command"
    if info in CONTEXT_INFOS:
        return "context"
    text = "\n".join(lines)
    for line in lines:
        s = line.strip()
        if not s:
            continue
        if _SHELL_PROMPT.match(line) or _PSQL_PROMPT.match(line) or _REDIS_PROMPT.match(line):
            return "command"
        if s.startswith("#"):
            m = _ROOT_PROMPT.match(line)
            if m and is_command_line(line[m.end() :]):
                return "command"
            continue
        if s.startswith("--"):
            continue
        if is_command_line(s) or sql_like(s, block=text):
            return "command"
        # The prose around says "run the following": trust a `word args` shaped line.
        if _RUN_CONTEXT_ANY.search(intro) and _WORD.match(s.split()[0]) and len(s.split()) >= 2:
            return "command"
        return "context" if info else "none"
    return "none"


_RUN_CONTEXT_ANY = re.compile(r"\b(?:run|execute|command|type)\b", re.I)


def _prompt(line: str, root: str) -> tuple[str, str] | None:
    """(prompt kind, command) when the line starts with a prompt.

    ``root`` says how to read ``# x``: "any" (a console transcript: a root prompt), "cli"
    (a root prompt only when x is a command) or "no" (a script: always a comment); "bare"
    also takes any command line without a prompt as one.
    """
    m = _SHELL_PROMPT.match(line)
    if m:
        return "shell", line[m.end() :]
    m = _PSQL_PROMPT.match(line)
    if m:
        return "sql", line[m.end() :]
    m = _ROOT_PROMPT.match(line)
    if m:
        rest = line[m.end() :]
        if (root == "any" and not rest.startswith("#")) or (
            root == "cli" and is_command_line(rest)
        ):
            return "root", rest
        return None
    m = _REDIS_PROMPT.match(line)
    if m:
        rest = line[m.end() :]
        if rest.split(None, 1)[0].lower() in REDIS_COMMANDS:
            return "redis", rest
    if root == "bare" and is_command_line(line):
        return "root", line[len(line) - len(line.lstrip()) :]
    return None


def extract_commands(info: str, lines: list[str], first_line: int) -> list[Command]:
    """Split a command block into commands.

    A transcript (lines with prompts) gives one command per prompt, output dropped; any
    other block is one command, unless numbered comments (``# 1. ...``) split it.
    """
    root = "any" if info in CONSOLE_INFOS else "no" if info in SCRIPT_INFOS else "cli"
    block_lang = "sql" if info in SQL_INFOS else "redis" if info in REDIS_INFOS else ""
    prompts = [_prompt(line, root) for line in lines]
    if any(p is not None and p[0] != "root" for p in prompts):
        return _transcript(lines, first_line, root, block_lang)
    if any(prompts):
        # Only "# cmd" lines: root prompts, unless other lines are commands too (then the
        # block is a script whose "#" lines are commented-out commands).
        others = [
            line
            for line, p in zip(lines, prompts, strict=True)
            if p is None and line.strip() and not line.lstrip().startswith("#")
        ]
        if root == "any" or not any(is_command_line(line) for line in others):
            return _transcript(lines, first_line, root, block_lang)
    if root == "any":
        # A console block written without prompts: command lines run, the rest is output.
        return _transcript(lines, first_line, "bare", block_lang)
    return _script(lines, first_line, block_lang)


def _transcript(lines: list[str], first_line: int, root: str, block_lang: str) -> list[Command]:
    out: list[Command] = []
    i = 0
    n = len(lines)
    while i < n:
        found = _prompt(lines[i], root)
        if found is None:
            i += 1
            continue
        kind, cmd = found
        start = i
        body = [cmd]
        heredoc = _HEREDOC.search(cmd)
        if heredoc:
            end_word = heredoc.group(1)
            while i + 1 < n and body[-1].strip() != end_word:
                i += 1
                body.append(lines[i])
        else:
            while body[-1].endswith("\\") and i + 1 < n:
                i += 1
                cont = _prompt(lines[i], root)
                body.append(cont[1] if cont else lines[i])
            if kind == "sql" and not cmd.startswith("\\"):
                # A statement runs until its semicolon; psql shows `db-#` on continuation lines.
                while not body[-1].rstrip().endswith(";") and i + 1 < n and len(body) < 60:
                    nxt = lines[i + 1]
                    psql = _PSQL_PROMPT.match(nxt)
                    if psql is None or not psql.group(1).rstrip().endswith("-#"):
                        break
                    i += 1
                    body.append(nxt[psql.end() :])
        text = "\n".join(body).rstrip()
        if text.strip():
            if kind == "sql":
                lang = "sql"
            elif kind == "redis" or block_lang == "redis":
                lang = "redis"
            else:
                lang = language_of(text)
            out.append(Command(text, first_line + start, first_line + i, lang))
        i += 1
    return out


def _script(lines: list[str], first_line: int, block_lang: str) -> list[Command]:
    markers = [k for k, line in enumerate(lines) if _NUMBERED_COMMENT.match(line)]
    groups: list[tuple[int, int, str | None]] = []
    if len(markers) >= 2:
        if any(_is_code(line) for line in lines[: markers[0]]):
            groups.append((0, markers[0], None))
        for j, k in enumerate(markers):
            stop = markers[j + 1] if j + 1 < len(markers) else len(lines)
            m = _NUMBERED_COMMENT.match(lines[k])
            groups.append((k + 1, stop, m.group(1).strip() if m else None))
    else:
        groups.append((0, len(lines), None))
    out: list[Command] = []
    for lo, hi, title in groups:
        chunk = lines[lo:hi]
        while chunk and not chunk[0].strip():
            chunk = chunk[1:]
            lo += 1
        while chunk and not chunk[-1].strip():
            chunk = chunk[:-1]
        if not any(_is_code(line) for line in chunk):
            continue
        text = textwrap.dedent("\n".join(chunk))
        lang = block_lang or language_of(text)
        out.append(Command(text, first_line + lo, first_line + lo + len(chunk) - 1, lang, title))
    return out


def _is_code(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith(("#", "-- ", "//")) and s != "--"
