"""`ddoc up`: the whole system on one machine from embedded real components.

The supervisor starts PostgreSQL and the Temporal dev server as its children, migrates and
bootstraps the database, then starts the API, the control-plane worker and one agent as child
processes. A child that exits is restarted with exponential backoff (docs/decisions/0015); one
that crashes in a loop stops everything, with its last log lines. Ctrl-C or SIGTERM stops them
in reverse order; every child also gets a parent-death signal, so none outlives a supervisor
that was killed outright. Its view of the children is in `<data-dir>/supervisor.json`, which
the API shows in `/health`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from ddoc.contracts import supervisor
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings
from ddoc.platform import db, tenancy
from ddoc.platform.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedTemporal,
    bin_path,
    die_with_parent,
    port_in_use,
    stop_process,
)

API_DB_ROLE = "ddoc_api"  # the login role API and workers use on the embedded database
CREDENTIALS_FILE = "credentials.env"
AGENT_POLICY_FILE = "agent-policy.yaml"  # the local agent's policy, written on first start
SANDBOX_DIR = "sandbox"  # where the local agent's TMPDIR points
POLICY_ENV_VAR = "DDOC_AGENT_POLICY"
SECRETS_KEY_FILE = "secrets.key"  # the master key of tenant secrets, written on first start
_READY_TIMEOUT_SECONDS = 60.0

# The restart policy (docs/decisions/0015): a child that exits is restarted after 1 s, 2 s, 4 s
# ... up to 30 s; one that stayed up a minute starts again at 1 s. Five exits of one child
# within two minutes are a crash loop: `ddoc up` stops, with that child's last log lines.
RESTART_BACKOFF_FIRST_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_UPTIME_SECONDS = 60.0
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW_SECONDS = 120.0
CRASH_LOG_LINES = 20
_WATCH_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    api_port: int = 8080
    temporal_port: int = 7233
    ui_port: int = 8233


class _Stop(Exception):
    pass


@dataclass
class _Child:
    """One supervised process and what the supervisor knows of it."""

    name: str
    log_path: Path
    start: Callable[[], None]  # starts it again after it exited
    poll: Callable[[], int | None]  # its exit code once it has exited
    pid: Callable[[], int | None]
    state: str = "running"  # running | restarting | crash-loop | stopped
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)
    since: str = field(default_factory=lambda: _now())
    last_exit: str | None = None
    last_exit_at: str | None = None
    exits: deque[float] = field(default_factory=deque)  # when it exited, within the window
    backoff_step: int = 0  # exits since it last stayed up HEALTHY_UPTIME_SECONDS
    restart_at: float = 0.0

    def enter(self, state: str) -> None:
        self.state = state
        self.since = _now()


class Supervisor:
    def __init__(self, options: UpOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.data_dir = options.data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.postgres = EmbeddedPostgres(self.data_dir)
        self.temporal = EmbeddedTemporal(
            self.data_dir, port=options.temporal_port, ui_port=options.ui_port
        )
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.supervised: dict[str, _Child] = {}
        self.state_path = self.data_dir / supervisor.STATE_FILE
        self._stopping = False
        self.agent_policy = self.data_dir / AGENT_POLICY_FILE
        self.agent_policy_is_ours = True

    def run(self) -> int:
        problem = self._check_ports()
        if problem:
            _err(problem)
            return 2
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._start()
            self._watch()
            return 0
        except _Stop:
            return 0
        except (EmbeddedError, ChildFailed) as err:
            _err(str(err))
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _check_ports(self) -> str | None:
        for flag, port in (
            ("--api-port", self.options.api_port),
            ("--temporal-port", self.options.temporal_port),
            ("--ui-port", self.options.ui_port),
        ):
            if port_in_use(port):
                return (
                    f"port {port} ({flag}) is already in use; stop what is using it "
                    f"or choose another with {flag}"
                )
        return None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            raise _Stop

    def _start(self) -> None:
        _step("PostgreSQL 16 + pgvector", self._start_postgres)
        self._supervise(
            "postgres", self.postgres.log_path, self._restart_postgres,
            self.postgres.poll, lambda: self.postgres.pid,
        )  # fmt: skip
        _step("Temporal dev server", self._start_temporal)
        self._supervise(
            "temporal", self.temporal.log_path, self._restart_temporal,
            self.temporal.poll, lambda: self.temporal.pid,
        )  # fmt: skip
        # The API and workers run as a role that cannot change the audit trail
        # (ddoc/platform/db.py).
        database_url = self.postgres.url(user=API_DB_ROLE)
        env = {
            **os.environ,
            "DDOC_DATABASE_URL": database_url,
            "DDOC_TEMPORAL_ADDRESS": self.temporal.address,
            "DDOC_TEMPORAL_NAMESPACE": self.temporal.namespace,
            "DDOC_TEMPORAL_UI_URL": f"http://127.0.0.1:{self.options.ui_port}",
            "DDOC_API_PORT": str(self.options.api_port),
            "DDOC_DATA_DIR": str(self.data_dir),
            "DDOC_TENANT": self.settings.tenant,
            "DDOC_ENVIRONMENT": self.settings.environment,
            supervisor.STATE_ENV_VAR: str(self.state_path),
            **secrets_key_env(self.data_dir),
        }
        self.agent_policy, self.agent_policy_is_ours = self._agent_policy()
        self._spawn_supervised("worker", ["worker"], env)
        self._spawn_supervised("agent", ["agent"], {**env, POLICY_ENV_VAR: str(self.agent_policy)})
        self._spawn_supervised("api", ["api"], env)
        _step("API, worker and agent", self._wait_healthy)
        self._banner()

    def _start_postgres(self) -> None:
        self.postgres.start()
        self.postgres.ensure_database("ddoc")
        engine = db.make_engine(self.postgres.url(), pool_size=1, max_overflow=0)
        try:
            db.migrate(engine)
            self.postgres.ensure_login(API_DB_ROLE, member_of=db.APP_ROLE)
            created = tenancy.bootstrap(
                engine,
                tenant_id=self.settings.tenant,
                api_key=self.settings.bootstrap_api_key,
                webhook_token=self.settings.bootstrap_webhook_token,
            )
        finally:
            engine.dispose()
        if created.api_key or created.webhook_token:
            self._save_credentials(created.api_key, created.webhook_token)

    def _start_temporal(self) -> None:
        self.temporal.start()
        # The flags register search attributes only in a new history database: one kept from
        # an earlier release gets those added since (DdocMode) here, before anything starts.
        # (With Temporal's CLI: the supervisor itself never loads the Temporal SDK.)
        names: list[str] = []
        for key in temporal_conn.SEARCH_ATTRIBUTES:
            names += ["--name", key.name, "--type", "Keyword"]
        result = subprocess.run(
            [bin_path("temporal"), "operator", "search-attribute", "create",
             "--address", self.temporal.address, "--namespace", self.temporal.namespace, *names],
            capture_output=True,
            text=True,
            timeout=30,
        )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedError(
                f"cannot register search attributes: {(result.stderr or result.stdout).strip()}"
            )

    def _restart_postgres(self) -> None:
        # Same data directory: a restart keeps the data (PostgreSQL recovers from its WAL).
        self.postgres.stop()
        self.postgres.start()

    def _restart_temporal(self) -> None:
        # Same --db-filename: a restart keeps every workflow's history (and search attributes).
        self.temporal.stop()
        self.temporal.start()

    def _agent_policy(self) -> tuple[Path, bool]:
        """The local agent's policy: the user's own (DDOC_AGENT_POLICY), else the default one in
        the data dir, written when it is missing and never overwritten (it is the user's to
        edit). The agent runs commands on this machine: it never runs without a policy here."""
        tmpdir = self.data_dir / SANDBOX_DIR / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        given = os.environ.get(POLICY_ENV_VAR, "").strip()
        if given:
            return Path(given).expanduser().resolve(), False
        path = self.data_dir / AGENT_POLICY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(default_agent_policy(tmpdir))
        return path, True

    def _save_credentials(self, api_key: str | None, webhook_token: str | None) -> None:
        path = self.data_dir / CREDENTIALS_FILE
        lines = dict(_read_env_file(path))
        if api_key:
            lines["DDOC_API_KEY"] = api_key
        if webhook_token:
            lines["DDOC_WEBHOOK_TOKEN"] = webhook_token
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Created by `ddoc up` on first start. Keep it secret.\n")
            for key, value in lines.items():
                out.write(f"{key}={value}\n")

    def _spawn_supervised(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self._spawn(name, args, env)
        self._supervise(
            name, self.logs / f"{name}.log", lambda: self._spawn(name, args, env),
            lambda: self.children[name].poll(), lambda: self.children[name].pid,
        )  # fmt: skip

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        previous = self._logs.pop(name, None)
        if previous is not None:
            previous.close()
        log = (self.logs / f"{name}.log").open("ab")
        self._logs[name] = log
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "ddoc.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )

    def _wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.options.api_port}/health"
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._tend()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise ChildFailed(
            f"the API did not report healthy within {_READY_TIMEOUT_SECONDS:.0f}s; see {self.logs}"
        )

    def _supervise(
        self,
        name: str,
        log_path: Path,
        start: Callable[[], None],
        poll: Callable[[], int | None],
        pid: Callable[[], int | None],
    ) -> None:
        self.supervised[name] = _Child(name, log_path, start, poll, pid)
        self._write_state()

    def _tend(self) -> None:
        """One look at every child: note the ones that exited, restart the ones that are due."""
        for child in self.supervised.values():
            if child.state == "running":
                code = child.poll()
                if code is not None:
                    self._exited(child, _describe_exit(code))
            elif child.state == "restarting" and time.monotonic() >= child.restart_at:
                self._restart(child)

    def _exited(self, child: _Child, how: str) -> None:
        now = time.monotonic()
        child.exits.append(now)
        while child.exits and child.exits[0] < now - CRASH_LOOP_WINDOW_SECONDS:
            child.exits.popleft()
        child.last_exit, child.last_exit_at = how, _now()
        if len(child.exits) >= CRASH_LOOP_EXITS:
            child.enter("crash-loop")
            self._write_state()
            raise ChildFailed(
                f"{child.name} exited {len(child.exits)} times within "
                f"{CRASH_LOOP_WINDOW_SECONDS:.0f} s (last: {how}); stopping everything. "
                f"The last lines of {child.log_path}:\n{_tail(child.log_path, CRASH_LOG_LINES)}"
            )
        if now - child.started >= HEALTHY_UPTIME_SECONDS:
            child.backoff_step = 0
        delay = min(
            RESTART_BACKOFF_FIRST_SECONDS * 2**child.backoff_step, RESTART_BACKOFF_MAX_SECONDS
        )
        child.backoff_step += 1
        child.restart_at = now + delay
        child.enter("restarting")
        self._write_state()
        print(
            f"{child.name} exited ({how}); restarting in {delay:g} s "
            f"(restart {child.restarts + 1})",
            flush=True,
        )

    def _restart(self, child: _Child) -> None:
        child.restarts += 1
        child.started = time.monotonic()
        try:
            child.start()
        except (EmbeddedError, OSError) as err:
            self._exited(child, f"failed to start: {err}")
            return
        child.enter("running")
        self._write_state()
        print(f"{child.name} restarted (pid {child.pid()})", flush=True)

    def _write_state(self) -> None:
        children = {
            child.name: {
                "state": child.state,
                "pid": child.pid() if child.state == "running" else None,
                "restarts": child.restarts,
                "last_exit": child.last_exit,
                "last_exit_at": child.last_exit_at,
                "since": child.since,
            }
            for child in self.supervised.values()
        }
        state = {"pid": os.getpid(), "updated_at": _now(), "children": children}
        try:
            supervisor.write_state(self.state_path, state)
        except OSError as err:
            _err(f"cannot write {self.state_path}: {err}")

    def _watch(self) -> None:
        while True:
            self._tend()
            time.sleep(_WATCH_INTERVAL_SECONDS)

    def _shutdown(self) -> None:
        print("stopping…", flush=True)
        for name in ("api", "agent", "worker"):
            proc = self.children.get(name)
            if proc is not None:
                stop_process(proc, grace=15)
        self.temporal.stop()
        self.postgres.stop()
        for log in self._logs.values():
            log.close()
        if self.supervised:
            for child in self.supervised.values():
                if child.state != "crash-loop":
                    child.enter("stopped")
            self._write_state()
        print("stopped", flush=True)

    def _banner(self) -> None:
        credentials = dict(_read_env_file(self.data_dir / CREDENTIALS_FILE))
        api = f"http://127.0.0.1:{self.options.api_port}"
        rows = [
            ("Console", f"{api}/ui"),
            ("API", api),
            ("API docs", f"{api}/docs"),
            ("Temporal UI", f"http://127.0.0.1:{self.options.ui_port}"),
            ("Temporal", f"{self.temporal.address} (namespace {self.temporal.namespace})"),
            ("Admin API key", credentials.get("DDOC_API_KEY", "(see the first start's output)")),
            (
                "Webhook token",
                credentials.get("DDOC_WEBHOOK_TOKEN", "(see the first start's output)"),
            ),
            ("Credentials", str(self.data_dir / CREDENTIALS_FILE)),
            ("Logs", str(self.logs)),
            ("CLI", _cli_hint()),
        ]
        print(f"\ndd0c/run is up (data dir {self.data_dir})", flush=True)
        for label, value in rows:
            print(f"  {label:<14} {value}")
        print(self._agent_warning(), flush=True)
        print("Press Ctrl-C to stop.\n", flush=True)

    def _agent_warning(self) -> str:
        user = _user()
        lines = [
            f"  Local agent    runs runbook commands on THIS machine, as {user} (read-only "
            "ones by themselves, the others once approved)",
            f"  Agent policy   {self.agent_policy}"
            + ("" if self.agent_policy_is_ours else f" (yours: {POLICY_ENV_VAR})"),
        ]
        if self.agent_policy_is_ours:
            sandbox = self.data_dir / SANDBOX_DIR / "tmp"
            lines.append(
                f"                 TMPDIR={sandbox}; denies sudo, services, packages, and "
                "deleting or moving files outside TMPDIR (edit it to change what runs)"
            )
        return "\n".join(lines)


def secrets_key_env(data_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The master key of tenant secrets (ddoc/platform/secrets.py) for the API and worker: the
    user's own (DDOC_SECRETS_KEY or DDOC_SECRETS_KEY_FILE, passed on as it is), else a key file
    in the data dir, written (mode 0600) when it is missing and never overwritten: the secrets
    stored with it cannot be read without it."""
    from ddoc.platform import secrets

    env = dict(os.environ) if env is None else env
    if env.get(secrets.KEY_ENV, "").strip() or env.get(secrets.KEY_FILE_ENV, "").strip():
        return {}
    path = data_dir / SECRETS_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Written by `ddoc up`: the master key of tenant secrets. Keep it secret;\n")
            out.write("# without it the stored secrets cannot be read (docs/DEPLOYMENT.md).\n")
            out.write(f"{secrets.key_id_of_new()}\n")
    return {secrets.KEY_FILE_ENV: str(path)}


class ChildFailed(RuntimeError):
    pass


# The local agent's deny list (regular expressions, docs/AGENT_POLICY.md). `_CMD` anchors a
# program name at the start of a command or after a separator.
_CMD = r"(^|[\s;&|(`])"
LOCAL_DENY: tuple[tuple[str, str], ...] = (
    ("privilege escalation", _CMD + r"(sudo|su|doas|pkexec|runuser)(\s|$)"),
    (
        "services and power",
        _CMD + r"(systemctl|service|reboot|shutdown|halt|poweroff|telinit|launchctl)(\s|$)",
    ),
    ("killing processes", _CMD + r"(kill|pkill|killall)(\s|$)"),
    (
        "disks and mounts",
        _CMD + r"(mkfs(\.\w+)?|fdisk|sfdisk|parted|wipefs|dd|mount|umount|swapoff)(\s|$)",
    ),
    ("packages", _CMD + r"(apt|apt-get|dpkg|yum|dnf|rpm|snap|brew|pip|pip3|npm)(\s|$)"),
    (
        "owners, modes, users, cron",
        _CMD + r"(chmod|chown|chgrp|crontab|useradd|userdel|usermod|passwd)(\s|$)",
    ),
    (
        "deleting, moving or truncating files: only under $TMPDIR",
        r"(?s)^(?!.*\$\{?TMPDIR\b)(?=.*(" + _CMD + r"(rm|rmdir|shred|unlink|truncate|mv)(\s|$)"
        r"|\s-delete\b))",
    ),
    ("never above $TMPDIR", r"\$\{?TMPDIR[^\s]*\.\."),
)


def default_agent_policy(tmpdir: Path) -> str:
    """The local agent's first policy (docs/AGENT_POLICY.md): what a laptop needs for the
    README's tour and the examples, and a deny list that keeps their changes in the sandbox."""
    deny = "\n".join(
        f"  # {why}\n  - '{pattern.replace(chr(39), chr(39) * 2)}'" for why, pattern in LOCAL_DENY
    )
    return f"""\
# The local agent's policy (docs/AGENT_POLICY.md), written by `ddoc up` on first start and
# never overwritten: edit it, or start `ddoc up` with DDOC_AGENT_POLICY=<your own file>.
#
# The agent runs runbook commands on THIS machine, as the user who started `ddoc up`:
# read-only (green) steps by themselves, the others only after a human's approval. This
# default keeps what the examples change inside the sandbox:
#   - TMPDIR is the sandbox, so a runbook that cleans "${{TMPDIR:-/tmp}}" cleans only it;
#   - a command sees a minimal environment (PATH, HOME, LANG, LC_ALL, SHELL and TMPDIR);
#   - privilege escalation, service and package changes, killing processes, disk tools, and
#     deleting, moving or truncating files anywhere but under TMPDIR are denied.
# A deny list is best-effort (a command can be spelled many ways): on a real host, write an
# allow list of exactly what may run.
max_timeout_seconds: 300
inherit_env: false
env:
  TMPDIR: {json.dumps(str(tmpdir))}
deny:
{deny}
"""


def _cli_hint() -> str:
    """How to reach the `ddoc` CLI from another terminal (the venv is not on PATH there)."""
    bin_dir = Path(sys.executable).parent
    ddoc = bin_dir / "ddoc"
    try:
        shown = ddoc.relative_to(Path.cwd())
    except ValueError:
        shown = ddoc
    activate = bin_dir / "activate"
    if activate.exists():
        with contextlib.suppress(ValueError):
            activate = activate.relative_to(Path.cwd())
        return f"{shown} (or `source {activate}` first, then `ddoc`)"
    return str(shown)


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def _step(what: str, action: object) -> None:
    started = time.monotonic()
    print(f"starting {what}…", end=" ", flush=True)
    action()  # type: ignore[operator]
    print(f"ok ({time.monotonic() - started:.1f}s)", flush=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log, indented, for the console."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode(errors="replace")
    except OSError as err:
        return f"  (cannot read it: {err})"
    last = text.splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in last) if last else "  (empty)"


def _err(message: str) -> None:
    print(f"ddoc up: {message}", file=sys.stderr, flush=True)


def _read_env_file(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    pairs = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs
