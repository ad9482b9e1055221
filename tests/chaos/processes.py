"""The real processes a chaos scenario kills: the Temporal dev server on a persistent SQLite
file, and `ddoc api|worker|agent`, each a child process killable with SIGKILL and restartable
with the same settings (same port, same data)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from ddoc.contracts.temporal import dev_server_flags
from ddoc.platform.embedded import EmbeddedPostgres, bin_path, die_with_parent, wait_for_port

REPO = Path(__file__).resolve().parents[2]


class Child:
    """One child process with fixed arguments; `start` again after `kill` restarts it."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts + 1} of {self.name}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.args,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # If pytest itself dies, nothing of a scenario outlives it.
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        assert self.proc is not None and self.alive, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or not self.alive:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class TemporalServer(Child):
    """`temporal server start-dev --db-filename <tmp>/temporal.db` on a fixed port: a restart
    finds every workflow where the killed server left it."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        self.db_file = data_dir / "temporal.db"
        data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            bin_path("temporal"), "server", "start-dev",
            "--db-filename", str(self.db_file),
            "--ip", "127.0.0.1",
            "--port", str(port),
            "--headless",
            "--log-level", "error",
            *dev_server_flags(),
        ]  # fmt: skip
        super().__init__("temporal", args, {}, data_dir / "temporal.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> None:
        super().start()
        assert self.proc is not None
        wait_for_port(self.port, timeout=timeout, proc=self.proc, what="Temporal dev server")


def ddoc(role: str, env: dict[str, str], log: Path) -> Child:
    """`ddoc <role>` (api, worker, agent) as the CLI runs it."""
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "DDOC_LOG_LEVEL": "WARNING", **env}
    return Child(role, [sys.executable, "-m", "ddoc.cli.main", role], env, log)


def wait_healthy(api: Child, base_url: str, *, within: float = 90) -> None:
    """Until the API answers /health with 200 (it loads the embedding model first)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not api.alive:
            raise AssertionError(f"the API exited while starting:\n{api.tail()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the API was not healthy within {within}s:\n{api.tail()}")


def kill_postgres(server: EmbeddedPostgres) -> int:
    """SIGKILL the postmaster and all its backends at once; returns how many died."""
    assert server.pid is not None
    root = psutil.Process(server.pid)
    victims = [root, *root.children(recursive=True)]
    for proc in victims:
        proc.kill()
    psutil.wait_procs(victims, timeout=30)
    return len(victims)
