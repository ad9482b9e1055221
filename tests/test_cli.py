"""The `ddoc` command line against the real API: runbooks in, alerts matched and fired, clear
messages (never a traceback) when something is wrong."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack, eventually

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"


async def ddoc(stack: Stack, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ddoc.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "DDOC_API_URL": stack.base_url,
            "DDOC_API_KEY": stack.credentials.api_key,
            "DDOC_WEBHOOK_TOKEN": stack.credentials.webhook_token,
            "DDOC_DATA_DIR": "/nonexistent",
            **(env or {}),
        },
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_runbook_add_import_list_show(stack: Stack, tmp_path: Path) -> None:
    code, out, err = await ddoc(stack, "runbook", "add", str(FIXTURES / "crashloop.md"))
    assert code == 0, err
    assert "version 1 (created)" in out and "steps: 3" in out

    folder = tmp_path / "runbooks"
    (folder / "db").mkdir(parents=True)
    (folder / "db" / "disk.md").write_text("# Disk\n\n1. Check: `df -h`\n")
    (folder / "notes.txt").write_text("1. Run `uptime`\n")
    (folder / "empty.md").write_text("")
    (folder / "latin1.md").write_bytes("# Caf\xe9\n".encode("latin-1"))
    code, out, err = await ddoc(stack, "runbook", "import", str(folder))
    assert code == 1  # one document failed, one file was not UTF-8: both said, exit non-zero
    assert "[1/3] db/disk.md: created v1, 1 steps" in err
    assert "empty.md: failed: runbook is empty" in err
    assert "latin1.md" in err and "not UTF-8" in err
    assert "Traceback" not in err

    code, out, err = await ddoc(stack, "runbook", "list")
    assert code == 0
    assert sorted(line.split()[-1] for line in out.splitlines()) == [
        "[crashloop.md]",
        "[db/disk.md]",
        "[notes.txt]",
    ]
    assert err.strip() == "3 runbook(s)"
    runbook_id = out.split()[0]
    code, out, err = await ddoc(stack, "runbook", "show", runbook_id)
    assert code == 0 and "quality" in out


async def test_match_and_fire(stack: Stack, tmp_path: Path) -> None:
    await ddoc(stack, "runbook", "add", str(FIXTURES / "crashloop.md"))
    body = tmp_path / "alert.json"
    body.write_text(json.dumps(alertmanager_v4(am_alert("KubePodCrashLooping", fingerprint="m1"))))
    code, out, err = await ddoc(stack, "match", str(body))
    assert code == 0, err
    assert out.splitlines()[0] == "m1: attach crashloop.md (1.00)"
    assert "declares alert 'KubePodCrashLooping' in its triggers" in out

    code, out, err = await ddoc(
        stack, "alert", "fire", "--title", "Pod crash looping", "--alertname",
        "KubePodCrashLooping", "--label", "pod=p1", "--label", "namespace=n1",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("started: incident inc_")


async def test_cli_errors_are_messages(stack: Stack, tmp_path: Path) -> None:
    code, _, err = await ddoc(stack, "runbook", "add", str(tmp_path / "missing.md"))
    assert (code, err.strip()) == (1, f"ddoc: {tmp_path / 'missing.md'}: no such file")
    code, _, err = await ddoc(stack, "runbook", "list", env={"DDOC_API_KEY": "wrong"})
    assert (code, err.strip()) == (1, "ddoc: 401: invalid or revoked API key")
    code, _, err = await ddoc(
        stack, "runbook", "list", env={"DDOC_API_URL": "http://127.0.0.1:9", "DDOC_API_KEY": "k"}
    )
    assert code == 1 and err.startswith("ddoc: cannot reach the API at http://127.0.0.1:9")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = await ddoc(stack, "match", str(bad))
    assert code == 1 and "not JSON" in err
    assert "Traceback" not in err


async def git(repo: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(repo), *args,
        env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_import_from_git_follows_commits_and_archives(stack: Stack, tmp_path: Path) -> None:
    repo = tmp_path / "ops-runbooks"
    (repo / "db").mkdir(parents=True)
    await git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "db" / "disk.md").write_text("# Disk\n\n1. Check: `df -h`\n")
    (repo / "load.md").write_text("# Load\n\n1. Check: `uptime`\n")
    await git(repo, "add", "-A")
    await git(repo, "commit", "-q", "-m", "first")
    env = {"DDOC_DATA_DIR": str(tmp_path / "data")}

    code, _, err = await ddoc(stack, "runbook", "import", "--git", str(repo), env=env)
    assert code == 0, err
    assert "git:ops-runbooks:db/disk.md: created v1, 1 steps" in err
    assert "git:ops-runbooks:load.md: created v1, 1 steps" in err

    (repo / "db" / "disk.md").write_text("# Disk\n\n1. Check: `df -h /var`\n")
    (repo / "load.md").unlink()
    await git(repo, "add", "-A")
    await git(repo, "commit", "-q", "-m", "second")
    code, _, err = await ddoc(
        stack, "runbook", "import", "--git", str(repo), "--archive-missing", env=env
    )
    assert code == 0, err
    assert "git:ops-runbooks:db/disk.md: new_version v2, 1 steps" in err
    assert "archived 1 runbook(s) no longer in git:ops-runbooks:" in err
    code, out, _ = await ddoc(stack, "runbook", "list")
    assert [line.split()[-1] for line in out.splitlines()] == ["[git:ops-runbooks:db/disk.md]"]


async def test_exec_start_and_status(stack: Stack, tmp_path: Path) -> None:
    runbook = tmp_path / "hello.md"
    runbook.write_text('# Hello\n\n1. Greet: `echo "hello $SERVICE"`\n')
    code, out, err = await ddoc(stack, "runbook", "add", str(runbook))
    assert code == 0, err
    runbook_id = out.split()[0]
    code, out, err = await ddoc(stack, "exec", "start", runbook_id, "--var", "service=cart")
    assert code == 0, err
    execution_id = out.split()[0]

    async def finished() -> str | None:
        code, out, _ = await ddoc(stack, "exec", "status", execution_id)
        return out if code == 0 and " succeeded " in out.splitlines()[0] else None

    status = await eventually(finished)
    assert "| hello cart" in status
    code, _, err = await ddoc(stack, "exec", "start", runbook_id, "--var", "oops")
    assert (code, err.strip()) == (1, "ddoc: --var wants NAME=VALUE, got 'oops'")


async def test_exec_approve_skip_and_abort(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    runbook = tmp_path / "restart.md"
    runbook.write_text(f"# Restart\n\n1. Restart: `touch {marker}`\n2. Clean: `touch {marker}.2`\n")
    code, out, err = await ddoc(stack, "runbook", "add", str(runbook))
    assert code == 0, err
    runbook_id = out.split()[0]
    code, out, err = await ddoc(stack, "exec", "start", runbook_id)
    execution_id = out.split()[0]

    async def awaits(step: str) -> str | None:
        code, out, _ = await ddoc(stack, "exec", "status", execution_id)
        return out if code == 0 and f"{step} [yellow] awaiting_approval" in out else None

    status = await eventually(lambda: awaits("s1"))
    assert "answer with: approve, reject, skip, edit" in status
    code, out, err = await ddoc(stack, "exec", "approve", execution_id, "s2")
    assert code == 1 and "409" in err and "not awaiting" in err
    code, out, err = await ddoc(stack, "exec", "approve", execution_id, "s1", "--comment", "ok")
    assert (code, out.strip()) == (0, f"approve sent for step s1 of {execution_id}"), err
    await eventually(lambda: awaits("s2"))
    assert marker.exists()
    code, _, err = await ddoc(stack, "exec", "abort", execution_id)
    assert code == 0, err

    async def aborted() -> str | None:
        code, out, _ = await ddoc(stack, "exec", "status", execution_id)
        return out if code == 0 and " aborted " in out.splitlines()[0] else None

    final = await eventually(aborted)
    assert "approve by bootstrap admin" in final
    assert not Path(f"{marker}.2").exists()


async def test_exec_breakpoints_continue_and_a_drill(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    runbook = tmp_path / "restart.md"
    runbook.write_text(
        f"# Restart\n\n1. Look: `echo looking`\n2. Restart: `touch {marker}`\n"
        f"3. Clean: `touch {marker}.3`\n"
    )
    code, out, err = await ddoc(stack, "runbook", "add", str(runbook))
    runbook_id = out.split()[0]
    code, out, err = await ddoc(
        stack, "exec", "start", runbook_id, "--mode", "autopilot", "--break", "s9"
    )
    assert code == 1 and "422" in err and "no step 's9'" in err and "Traceback" not in err
    code, out, err = await ddoc(
        stack, "exec", "start", runbook_id, "--mode", "autopilot", "--break", "s2"
    )
    assert code == 0, err
    execution_id = out.split()[0]

    async def awaits(step: str, what: str) -> str | None:
        code, out, _ = await ddoc(stack, "exec", "status", execution_id)
        return out if code == 0 and f"{step} [yellow] {what}" in out else None

    status = await eventually(lambda: awaits("s2", "awaiting_approval"))
    assert "answer with: continue, skip" in status and not marker.exists()
    code, out, err = await ddoc(stack, "exec", "break", execution_id, "s3")
    assert code == 0 and "pauses before s3" in out, err
    code, out, err = await ddoc(stack, "exec", "break", execution_id, "s1")
    assert code == 1 and "409" in err and "a breakpoint pauses before a step starts" in err
    code, out, err = await ddoc(stack, "exec", "continue", execution_id, "s2")
    assert code == 0, err
    status = await eventually(lambda: awaits("s3", "awaiting_approval"))
    assert marker.exists() and not Path(f"{marker}.3").exists()
    code, out, err = await ddoc(stack, "exec", "skip", execution_id, "s3")
    assert code == 0, err
    # A drill for a team, in the test stack's environment as its sandbox.
    code, out, err = await ddoc(
        stack, "exec", "start", runbook_id, "--mode", "drill", "--team", "web",
        "--sandbox", stack.settings.environment,
    )  # fmt: skip
    assert code == 0 and " mode drill" in out, err


async def test_user_add_and_list(stack: Stack) -> None:
    code, out, err = await ddoc(
        stack, "user", "add", "ana@example.com", "--name", "Ana", "--role", "approver",
        "--slack-user-id", "U0ANA00001",
    )  # fmt: skip
    assert code == 0, err
    assert out.split()[1:] == ["ana@example.com", "approver"]
    code, out, err = await ddoc(stack, "user", "list")
    assert code == 0 and "ana@example.com" in out and "slack U0ANA00001" in out
    code, _, err = await ddoc(
        stack, "user", "add", "ana@example.com", "--name", "A", "--role", "viewer"
    )
    assert code == 1 and "409" in err and "Traceback" not in err


async def test_runbook_trust_stats_and_suggestions(stack: Stack) -> None:
    code, out, err = await ddoc(stack, "runbook", "add", str(FIXTURES / "crashloop.md"))
    runbook_id = out.split()[0]
    code, out, err = await ddoc(stack, "runbook", "trust", runbook_id)
    assert code == 0, err
    assert "trust: copilot" in out and "[ ] needs 10 successful copilot executions, has 0" in out
    code, out, err = await ddoc(stack, "runbook", "trust", runbook_id, "autopilot")
    assert code == 2 and "--reason is required" in err
    code, out, err = await ddoc(
        stack, "runbook", "trust", runbook_id, "autopilot", "--reason", "try"
    )
    assert code == 1 and "409: to autopilot: needs 10 successful" in err
    assert "Traceback" not in err
    code, out, err = await ddoc(
        stack, "runbook", "trust", runbook_id, "read_along", "--reason", "new team"
    )
    assert code == 0 and "copilot -> read_along (demoted)" in out
    code, out, err = await ddoc(stack, "runbook", "trust", runbook_id)
    assert "copilot -> read_along  demoted" in out and "new team" in out

    code, out, err = await ddoc(stack, "runbook", "stats", runbook_id)
    assert code == 0, err
    assert "success - of 0" in out and "confidence 1.0" in out
    code, out, err = await ddoc(stack, "runbook", "suggestions", runbook_id, "--new")
    assert code == 0 and "nothing to suggest" in out
    code, out, err = await ddoc(stack, "runbook", "accept", runbook_id, "sug_nope")
    assert code == 1 and "404" in err and "not found" in err
