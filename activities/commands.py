"""The activity agents run: one runbook command in its own process group, inside the customer's
network. Stdlib + temporalio only (the agent is a light install).

Output is bounded (head and tail kept, truncation flagged), the process group is killed on
timeout or cancellation, and the latest output is heartbeated so a human can watch it live.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from temporalio import activity

from ddoc.contracts import CommandRequest, CommandResult

HEARTBEAT_EVERY_SECONDS = 2.0
_READ_CHUNK = 65536


@dataclass(frozen=True)
class OutputLimits:
    head_bytes: int = 32 * 1024
    tail_bytes: int = 32 * 1024


class BoundedOutput:
    """Keeps the first and the last bytes of a stream; the middle is dropped and counted."""

    def __init__(self, limits: OutputLimits) -> None:
        self._limits = limits
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self._limits.head_bytes - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self._tail += chunk
        excess = len(self._tail) - self._limits.tail_bytes
        if excess > 0:
            del self._tail[:excess]
            self.dropped += excess

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if self.truncated:
            return f"{head}\n[… {self.dropped} bytes of output dropped …]\n{tail}"
        return head + tail

    def latest(self, limit: int = 2048) -> str:
        source = self._tail if self._tail else self._head
        return bytes(source[-limit:]).decode("utf-8", errors="replace")


class CommandActivities:
    def __init__(
        self,
        *,
        shell: str = "/bin/bash",
        base_env: Mapping[str, str] | None = None,
        limits: OutputLimits | None = None,
    ) -> None:
        self._shell = shell
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._limits = limits or OutputLimits()

    @activity.defn(name="ddoc.run_command")
    async def run_command(self, request: CommandRequest) -> CommandResult:
        started = time.monotonic()
        output = BoundedOutput(self._limits)
        proc = await asyncio.create_subprocess_exec(
            self._shell,
            "-c",
            request.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**self._base_env, **request.env},
            # Own process group, so a timeout or a cancellation kills every child it spawned.
            start_new_session=True,
        )
        reader = asyncio.create_task(self._pump(proc, output))
        beat = asyncio.create_task(self._heartbeat(output))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout=request.timeout_seconds)
            await proc.wait()
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            await proc.wait()
            await reader
        except BaseException:
            # Cancellation (or anything else): the command must not outlive the activity.
            _kill_group(proc)
            with contextlib.suppress(BaseException):
                await proc.wait()
            reader.cancel()
            raise
        finally:
            beat.cancel()
        exit_code = proc.returncode if proc.returncode is not None else -1
        return CommandResult(
            exit_code=124 if timed_out else exit_code,
            output=output.text(),
            truncated=output.truncated,
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
        )

    async def _pump(self, proc: asyncio.subprocess.Process, output: BoundedOutput) -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(_READ_CHUNK):
            output.feed(chunk)

    async def _heartbeat(self, output: BoundedOutput) -> None:
        # Beats even when the command is silent: heartbeats are how cancellation arrives.
        while True:
            activity.heartbeat(output.latest())
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
