"""The activity agents run: one runbook command in its own process group, inside the customer's
network. Stdlib + temporalio + PyYAML only (the agent is a light install).

Output is bounded (head and tail kept, truncation flagged), the process group is killed on
timeout or cancellation, and the latest output is heartbeated so a human can watch it live.

The agent's local policy (agent_worker/policy.py), when given, is enforced here: a denied
command fails with a non-retryable `PolicyDenied` error before anything runs, the timeout is
capped, and the environment is built from the policy (its env and secrets win over the
request's). Output and heartbeats are always redacted (ddoc/contracts/redact.py) before they
leave the host: the policy's secret values and common credential patterns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agent_worker.policy import AgentPolicy, decide
from ddoc.contracts import names
from ddoc.contracts.execution import CommandRequest, CommandResult
from ddoc.contracts.redact import Redactor

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_SECONDS = 2.0
_READ_CHUNK = 65536
# Without `inherit_env`, a command sees only these of the agent's own variables.
MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "SHELL")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Under a policy, the only names a request may set: the workflow only ever sends variable
# values; anything else (PATH, LD_PRELOAD, BASH_ENV, …) could change what a command does.
REQUEST_ENV_PREFIX = "DDOC_VAR_"


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
        return self.latest_fragment(limit)[0]

    def latest_fragment(self, limit: int = 2048) -> tuple[str, bool]:
        """The latest output, and whether its start was cut (output came before it)."""
        source = self._tail if self._tail else self._head
        cut_start = bool(self._tail) or len(source) > limit
        return bytes(source[-limit:]).decode("utf-8", errors="replace"), cut_start

    def redacted_text(self, redactor: Redactor) -> str:
        """Like `text`, redacted. Without truncation head and tail are contiguous and redacted
        as one text; with it, a secret cut by the dropped middle is redacted at both edges."""
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return redactor.redact(head + tail)
        return (
            f"{redactor.redact_fragment(head, cut_end=True)}"
            f"\n[… {self.dropped} bytes of output dropped …]\n"
            f"{redactor.redact_fragment(tail, cut_start=True)}"
        )


class CommandActivities:
    def __init__(
        self,
        *,
        shell: str = "/bin/bash",
        base_env: Mapping[str, str] | None = None,
        limits: OutputLimits | None = None,
        policy: AgentPolicy | None = None,
    ) -> None:
        self._shell = shell
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._limits = limits or OutputLimits()
        self._policy = policy
        self._redactor = Redactor(policy.secrets if policy else {})

    @activity.defn(name=names.RUN_COMMAND)
    async def run_command(self, request: CommandRequest) -> CommandResult:
        return await self.execute(request)

    def refusal(self, command: str, env: Mapping[str, str]) -> str | None:
        """Why the local policy would deny the command; None when it may run (or no policy)."""
        return decide(self._policy, command, env) if self._policy is not None else None

    def command_env(self, request: CommandRequest) -> dict[str, str]:
        """The environment the command would run with (the policy's, when there is one)."""
        return self._env(request)

    async def execute(self, request: CommandRequest) -> CommandResult:
        """Run one command under the local policy, bounded, redacted: the one code path for a
        runbook step and for what a self-check runs (agent_worker/selfcheck.py)."""
        started = time.monotonic()
        timeout = request.timeout_seconds
        if self._policy is not None:
            reason = self.refusal(request.command, request.env)
            if reason is not None:
                log.warning("step %s denied by the local policy: %s", request.step_id, reason)
                raise ApplicationError(
                    f"denied by the agent's local policy: {reason}",
                    type="PolicyDenied",
                    non_retryable=True,
                )
            timeout = min(timeout, self._policy.max_timeout_seconds)
        output = BoundedOutput(self._limits)
        proc = await asyncio.create_subprocess_exec(
            self._shell,
            "-c",
            request.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env(request),
            # Own process group, so a timeout or a cancellation kills every child it spawned.
            start_new_session=True,
        )
        reader = asyncio.create_task(self._pump(proc, output))
        beat = asyncio.create_task(self._heartbeat(output))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout=timeout)
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
            output=output.redacted_text(self._redactor),
            truncated=output.truncated,
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
        )

    def _env(self, request: CommandRequest) -> dict[str, str]:
        policy = self._policy
        if policy is None:
            return {**self._base_env, **request.env}
        if policy.inherit_env:
            base = dict(self._base_env)
        else:
            base = {k: self._base_env[k] for k in MINIMAL_ENV if k in self._base_env}
            base.setdefault("PATH", DEFAULT_PATH)
        passed = {k: v for k, v in request.env.items() if k.startswith(REQUEST_ENV_PREFIX)}
        ignored = sorted(set(request.env) - set(passed))
        if ignored:
            log.warning("step %s: ignoring request env %s", request.step_id, ", ".join(ignored))
        # The policy's env and secrets win: the SaaS cannot override them.
        return {**base, **passed, **policy.env, **policy.secrets}

    async def _pump(self, proc: asyncio.subprocess.Process, output: BoundedOutput) -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(_READ_CHUNK):
            output.feed(chunk)

    async def _heartbeat(self, output: BoundedOutput) -> None:
        # Beats even when the command is silent: heartbeats are how cancellation arrives.
        while True:
            snippet, cut_start = output.latest_fragment()
            activity.heartbeat(
                self._redactor.redact_fragment(snippet, cut_start=cut_start, cut_end=True)
            )
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
