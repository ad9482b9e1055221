"""`ddoc up`: the whole system on one machine from embedded real components.

The supervisor starts PostgreSQL and the Temporal dev server as its children, migrates and
bootstraps the database, then starts the API, the control-plane worker and one agent as child
processes. Ctrl-C or SIGTERM stops them in reverse order; every child also gets a parent-death
signal, so none outlives a supervisor that was killed outright.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from ddoc import db, tenancy
from ddoc.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedTemporal,
    die_with_parent,
    port_in_use,
    stop_process,
)
from ddoc.settings import Settings

API_DB_ROLE = "ddoc_api"  # the login role API and workers use on the embedded database
CREDENTIALS_FILE = "credentials.env"
_READY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    api_port: int = 8080
    temporal_port: int = 7233
    ui_port: int = 8233


class _Stop(Exception):
    pass


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
        self._logs: list[IO[bytes]] = []
        self._stopping = False

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
        _step("Temporal dev server", self.temporal.start)
        # The API and workers run as a role that cannot change the audit trail (ddoc/db.py).
        database_url = self.postgres.url(user=API_DB_ROLE)
        env = {
            **os.environ,
            "DDOC_DATABASE_URL": database_url,
            "DDOC_TEMPORAL_ADDRESS": self.temporal.address,
            "DDOC_TEMPORAL_NAMESPACE": self.temporal.namespace,
            "DDOC_API_PORT": str(self.options.api_port),
            "DDOC_DATA_DIR": str(self.data_dir),
            "DDOC_TENANT": self.settings.tenant,
            "DDOC_ENVIRONMENT": self.settings.environment,
        }
        self._spawn("worker", ["worker"], env)
        self._spawn("agent", ["agent"], env)
        self._spawn("api", ["api"], env)
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

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self._logs.append(log)
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "ddoc.cli", *args],
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
            self._check_children()
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

    def _check_children(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise ChildFailed(
                    f"{name} exited with code {proc.returncode}; see {self.logs / (name + '.log')}"
                )

    def _watch(self) -> None:
        while True:
            self._check_children()
            time.sleep(0.5)

    def _shutdown(self) -> None:
        print("stopping…", flush=True)
        for name in ("api", "agent", "worker"):
            proc = self.children.get(name)
            if proc is not None:
                stop_process(proc, grace=15)
        self.temporal.stop()
        self.postgres.stop()
        for log in self._logs:
            log.close()
        print("stopped", flush=True)

    def _banner(self) -> None:
        credentials = dict(_read_env_file(self.data_dir / CREDENTIALS_FILE))
        api = f"http://127.0.0.1:{self.options.api_port}"
        rows = [
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
        ]
        print(f"\ndd0c/run is up (data dir {self.data_dir})", flush=True)
        for label, value in rows:
            print(f"  {label:<14} {value}")
        print("Press Ctrl-C to stop.\n", flush=True)


class ChildFailed(RuntimeError):
    pass


def _step(what: str, action: object) -> None:
    started = time.monotonic()
    print(f"starting {what}…", end=" ", flush=True)
    action()  # type: ignore[operator]
    print(f"ok ({time.monotonic() - started:.1f}s)", flush=True)


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
