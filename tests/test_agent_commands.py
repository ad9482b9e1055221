"""The agent's command activity, through Temporal's ActivityEnvironment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
from temporalio.testing import ActivityEnvironment

from agent_worker.commands import BoundedOutput, CommandActivities, OutputLimits
from ddoc.contracts.execution import CommandRequest


async def gone(pid: int) -> bool:
    """Dead or a zombie: orphans are reparented to an init that may not reap them here."""
    for _ in range(50):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_for_file(path: Path) -> None:
    for _ in range(100):
        if path.exists() and path.read_text().strip():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def request(command: str, **kwargs: object) -> CommandRequest:
    return CommandRequest(execution_id="ex", step_id="s1", command=command, **kwargs)  # type: ignore[arg-type]


async def test_runs_command_with_env_and_captures_exit_code() -> None:
    result = await ActivityEnvironment().run(
        CommandActivities().run_command,
        request('echo "$GREETING"; echo oops >&2; exit 3', env={"GREETING": "hi"}),
    )
    assert result.exit_code == 3
    assert result.output == "hi\noops\n"
    assert not result.truncated and not result.timed_out


async def test_output_keeps_head_and_tail() -> None:
    commands = CommandActivities(limits=OutputLimits(head_bytes=10, tail_bytes=10))
    result = await ActivityEnvironment().run(
        commands.run_command, request("printf 'HEAD-%s' $(seq 1 1000); printf 'TAIL'")
    )
    assert result.truncated
    assert result.output.startswith("HEAD-1HEAD")
    assert result.output.endswith("-1000TAIL")
    assert "bytes of output dropped" in result.output


def test_bounded_output_counts_what_it_drops() -> None:
    out = BoundedOutput(OutputLimits(head_bytes=4, tail_bytes=4))
    for chunk in (b"abc", b"defgh", b"ijklmn"):
        out.feed(chunk)
    assert out.dropped == 14 - 8
    assert out.text() == "abcd\n[… 6 bytes of output dropped …]\nklmn"


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    result = await ActivityEnvironment().run(
        CommandActivities().run_command,
        request(f"sleep 60 & echo $! > {pid_file}; wait", timeout_seconds=1),
    )
    assert result.timed_out and result.exit_code == 124
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    assert await gone(child)


async def test_cancellation_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    env = ActivityEnvironment()
    task = asyncio.create_task(
        env.run(CommandActivities().run_command, request(f"sleep 60 & echo $! > {pid_file}; wait"))
    )
    await wait_for_file(pid_file)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(int(pid_file.read_text()))
