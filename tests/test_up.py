"""`ddoc up` as a user runs it: a real process tree on embedded components."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from temporalio.client import Client

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "foundation"
API_KEY = "ddoc_up_test_admin_key_0123456789"
WEBHOOK_TOKEN = "ddwh_up_test_webhook_token_0123456789"


@dataclass
class Up:
    proc: subprocess.Popen[str]
    api: str
    temporal_port: int
    ui_port: int
    started_in: float

    def headers(self, token: str = API_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


CHILDREN = {"postgres", "temporal", "worker", "agent", "api"}


def up_command(data_dir: Path, *, api: int, temporal: int, ui: int) -> list[str]:
    return [
        sys.executable, "-m", "ddoc.cli.main", "up", "--data-dir", str(data_dir),
        "--api-port", str(api), "--temporal-port", str(temporal), "--ui-port", str(ui),
    ]  # fmt: skip


def up_env() -> dict[str, str]:
    env = {
        # No master key given: `ddoc up` writes its own into the data dir (the tests' is dropped).
        **{k: v for k, v in os.environ.items() if not k.startswith("DDOC_SECRETS_KEY")},
        "DDOC_BOOTSTRAP_API_KEY": API_KEY,
        "DDOC_BOOTSTRAP_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    env.pop("DDOC_AGENT_POLICY", None)
    return env


def supervisor_state(data_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((data_dir / "supervisor.json").read_text())
    return state


def start_up(data_dir: Path, *, api: int, temporal: int, ui: int) -> Up:
    started = time.monotonic()
    proc = subprocess.Popen(
        up_command(data_dir, api=api, temporal=temporal, ui=ui),
        env=up_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C to stop."):
            return Up(proc, f"http://127.0.0.1:{api}", temporal, ui, time.monotonic() - started)
    raise AssertionError(f"ddoc up exited ({proc.wait()}) before it was ready")


def stop_up(up: Up) -> list[psutil.Process]:
    """SIGTERM the supervisor; returns the processes it had started, for checking."""
    children = psutil.Process(up.proc.pid).children(recursive=True)
    assert children, "ddoc up should have child processes"
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=60) == 0
    return children


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    yield {"api": free_port(), "temporal": free_port(), "ui": free_port()}


def wait_for_execution(api: str, execution_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{api}/executions/{execution_id}", headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()
        if body["status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not finish: {body}")


async def last_event_completed(temporal_port: int, workflow_id: str) -> tuple[int, bool]:
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    done = history.events[-1].HasField("workflow_execution_completed_event_attributes")
    return len(history.events), done


def test_up_runs_everything_and_keeps_state_across_restarts(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    data_dir = tmp_path / "data"
    up = start_up(data_dir, **ports)
    try:
        assert up.started_in < 30
        health = httpx.get(f"{up.api}/health")
        assert health.status_code == 200
        body = health.json()
        supervised = body.pop("supervisor")["children"]
        assert body == {"status": "ok", "temporal": "ok", "database": "ok"}
        assert set(supervised) == CHILDREN
        assert {(c["state"], c["restarts"], c["last_exit"]) for c in supervised.values()} == {
            ("running", 0, None)
        }
        assert httpx.get(f"{up.api}/docs").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{up.ui_port}/").status_code == 200
        assert httpx.get(f"{up.api}/runbooks").status_code == 401

        runbook = httpx.post(
            f"{up.api}/runbooks",
            json={
                "content": (FIXTURES / "crashloop.md").read_text(),
                "source_path": "crashloop.md",
            },
            headers=up.headers(),
        ).json()
        alert = alertmanager_v4(
            am_alert("KubePodCrashLooping", fingerprint="0123456789abcdef", namespace="n", pod="p")
        )
        fired = httpx.post(
            f"{up.api}/webhooks/alertmanager", json=alert, headers=up.headers(WEBHOOK_TOKEN)
        )
        assert fired.status_code == 202
        execution_id = fired.json()["alerts"][0]["execution_id"]
        # Read-only steps ran; the restart waits for a human, across the restart of everything.
        waiting = wait_for_execution(up.api, execution_id, "awaiting_human")
        assert waiting["steps"][0]["output"] == "pod=p namespace=n\n"
        # Secrets are stored encrypted under the master key `ddoc up` wrote on first start.
        stored = httpx.patch(
            f"{up.api}/settings", json={"grafana_signing_secret": "g-secret"}, headers=up.headers()
        )
        assert stored.status_code == 200 and stored.json()["grafana_signing_secret"] is True
        key_file = data_dir / "secrets.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        master_key = key_file.read_text()
    finally:
        children = stop_up(up)
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "stopped" in (up.proc.stdout.read() if up.proc.stdout else "")

    again = start_up(data_dir, **ports)
    try:
        kept = httpx.get(f"{again.api}/runbooks/{runbook['id']}", headers=again.headers())
        assert kept.status_code == 200 and kept.json()["version"] == 1
        # The same master key: the signing secret still decrypts (a wrong signature is a 401,
        # not a 503 for a secret that cannot be read).
        assert key_file.read_text() == master_key
        unsigned = httpx.post(
            f"{again.api}/webhooks/grafana",
            json={},
            headers={**again.headers(WEBHOOK_TOKEN), "X-Grafana-Alerting-Signature": "00"},
        )
        assert unsigned.status_code == 401 and "does not match" in unsigned.text
        execution = httpx.get(f"{again.api}/executions/{execution_id}", headers=again.headers())
        assert execution.json()["steps"][2]["status"] == "awaiting_approval"
        skipped = httpx.post(
            f"{again.api}/executions/{execution_id}/decisions",
            json={"step_id": "s3", "decision": "skip"},
            headers=again.headers(),
        )
        assert skipped.status_code == 202, skipped.text
        wait_for_execution(again.api, execution_id, "succeeded")
        # The same webhook token still works: a restart never rotates credentials.
        repeat = httpx.post(
            f"{again.api}/webhooks/alertmanager", json=alert, headers=again.headers(WEBHOOK_TOKEN)
        )
        assert repeat.json()["alerts"][0]["status"] == "duplicate"
        resolved = alertmanager_v4(
            am_alert(
                "KubePodCrashLooping",
                fingerprint="0123456789abcdef",
                namespace="n",
                pod="p",
                status="resolved",
            ),
            status="resolved",
        )
        url = f"{again.api}/webhooks/alertmanager"
        httpx.post(url, json=resolved, headers=again.headers(WEBHOOK_TOKEN))
        deadline = time.monotonic() + 30
        completed = False
        while not completed and time.monotonic() < deadline:
            events, completed = asyncio.run(last_event_completed(again.temporal_port, execution_id))
            time.sleep(0.2)
        assert events > 10 and completed
    finally:
        stop_up(again)


def test_taken_port_is_named(tmp_path: Path, ports: dict[str, int]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["ui"]))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "ddoc.cli.main", "up", "--data-dir", str(tmp_path),
             "--api-port", str(ports["api"]), "--temporal-port", str(ports["temporal"]),
             "--ui-port", str(ports["ui"])],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"port {ports['ui']} (--ui-port) is already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "postgres").exists()


def test_sigkill_of_supervisor_takes_children_down(tmp_path: Path, ports: dict[str, int]) -> None:
    up = start_up(tmp_path / "data", **ports)
    children = psutil.Process(up.proc.pid).children(recursive=True)
    up.proc.kill()
    up.proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    assert len(gone) == len(children)


def test_killed_worker_is_restarted_and_reported(tmp_path: Path, ports: dict[str, int]) -> None:
    data_dir = tmp_path / "data"
    up = start_up(data_dir, **ports)
    try:
        children = supervisor_state(data_dir)["children"]
        assert set(children) == CHILDREN
        worker = children["worker"]["pid"]
        assert psutil.Process(worker).cmdline()[-1] == "worker"
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            view = httpx.get(f"{up.api}/health").json()["supervisor"]["children"]["worker"]
            if view["state"] == "running" and view["restarts"] == 1:
                break
            assert time.monotonic() < deadline, view
            time.sleep(0.2)
        assert view["last_exit"] == "signal 9, SIGKILL" and view["last_exit_at"]
        assert "pid" not in view  # /health has no authentication: no pids there
        assert supervisor_state(data_dir)["children"]["worker"]["pid"] not in (None, worker)

        # The new worker polls the control queue: an alert runs its read-only steps.
        httpx.post(
            f"{up.api}/runbooks",
            json={
                "content": (FIXTURES / "crashloop.md").read_text(),
                "source_path": "crashloop.md",
            },
            headers=up.headers(),
        ).raise_for_status()
        alert = alertmanager_v4(
            am_alert("KubePodCrashLooping", fingerprint="fedcba9876543210", namespace="n", pod="q")
        )
        fired = httpx.post(
            f"{up.api}/webhooks/alertmanager", json=alert, headers=up.headers(WEBHOOK_TOKEN)
        )
        assert fired.status_code == 202
        execution_id = fired.json()["alerts"][0]["execution_id"]
        waiting = wait_for_execution(up.api, execution_id, "awaiting_human")
        assert waiting["steps"][0]["output"] == "pod=q namespace=n\n"
        others = supervisor_state(data_dir)["children"]
        assert {name: c["restarts"] for name, c in others.items()} == {
            "postgres": 0, "temporal": 0, "worker": 1, "agent": 0, "api": 0
        }  # fmt: skip
    finally:
        children = stop_up(up)
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    output = up.proc.stdout.read() if up.proc.stdout else ""
    assert "worker exited (signal 9, SIGKILL); restarting in 1 s (restart 1)" in output
    assert "worker restarted (pid " in output
    assert {c["state"] for c in supervisor_state(data_dir)["children"].values()} == {"stopped"}


def test_crash_loop_stops_up_with_the_last_log_lines(tmp_path: Path, ports: dict[str, int]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The agent refuses to start under an invalid policy (exit code 2), every time.
    (data_dir / "agent-policy.yaml").write_text("max_timeout_seconds: [not, a, number]\n")
    started = time.monotonic()
    result = subprocess.run(
        up_command(data_dir, **ports), env=up_env(), capture_output=True, text=True, timeout=90
    )
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert took < 60
    for restart, delay in ((1, 1), (2, 2), (3, 4), (4, 8)):
        line = f"agent exited (code 2); restarting in {delay} s (restart {restart})"
        assert line in result.stdout
    assert "agent exited 5 times within 120 s (last: code 2); stopping everything" in result.stderr
    log_lines = [line for line in result.stderr.splitlines() if line.startswith("  | ")]
    assert 0 < len(log_lines) <= 20
    assert "the agent will not start" in log_lines[-1]
    assert "max_timeout_seconds must be a positive integer" in log_lines[-1]
    assert "Traceback" not in result.stderr
    assert "stopped" in result.stdout
    state = supervisor_state(data_dir)["children"]
    assert state["agent"]["state"] == "crash-loop" and state["agent"]["restarts"] == 4
    assert {state[name]["state"] for name in CHILDREN - {"agent"}} == {"stopped"}
    assert not (data_dir / "postgres" / "postmaster.pid").exists()  # PostgreSQL shut down


def test_backoff_doubles_resets_after_a_healthy_minute_and_stops_a_crash_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ddoc.cli import up as up_module
    from ddoc.contracts.settings import Settings

    clock = [1000.0]
    monkeypatch.setattr(up_module.time, "monotonic", lambda: clock[0])
    supervisor = up_module.Supervisor(up_module.UpOptions(data_dir=tmp_path), Settings())
    exit_code: list[int | None] = [None]
    (tmp_path / "crashy.log").write_text("".join(f"line {n}\n" for n in range(30)))
    supervisor._supervise(
        "crashy", tmp_path / "crashy.log", lambda: exit_code.__setitem__(0, None),
        lambda: exit_code[0], lambda: 4242,
    )  # fmt: skip

    def crash_and_restart(after: float) -> str:
        clock[0] += after
        exit_code[0] = 1
        supervisor._tend()
        child = supervisor.supervised["crashy"]
        assert child.state == "restarting"
        clock[0] = child.restart_at
        supervisor._tend()
        assert child.state == "running"
        return capsys.readouterr().out.splitlines()[0]

    assert crash_and_restart(1) == "crashy exited (code 1); restarting in 1 s (restart 1)"
    assert crash_and_restart(1) == "crashy exited (code 1); restarting in 2 s (restart 2)"
    # Up for a minute: the backoff starts again at 1 s (the exits still count for two minutes).
    assert crash_and_restart(60) == "crashy exited (code 1); restarting in 1 s (restart 3)"
    assert crash_and_restart(1) == "crashy exited (code 1); restarting in 2 s (restart 4)"
    clock[0] += 1
    exit_code[0] = 1
    with pytest.raises(up_module.ChildFailed) as failed:
        supervisor._tend()  # the 5th exit within 120 s
    message = str(failed.value)
    assert message.startswith("crashy exited 5 times within 120 s (last: code 1)")
    assert message.count("  | line ") == 20 and message.endswith("  | line 29")
    state = supervisor_state(tmp_path)["children"]["crashy"]
    assert state["state"] == "crash-loop" and state["restarts"] == 4
