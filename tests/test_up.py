"""`ddoc up` as a user runs it: a real process tree on embedded components."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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


def start_up(data_dir: Path, *, api: int, temporal: int, ui: int) -> Up:
    env = {
        **os.environ,
        "DDOC_BOOTSTRAP_API_KEY": API_KEY,
        "DDOC_BOOTSTRAP_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddoc.cli.main", "up", "--data-dir", str(data_dir),
         "--api-port", str(api), "--temporal-port", str(temporal), "--ui-port", str(ui)],
        env=env,
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
        assert health.json() == {"status": "ok", "temporal": "ok", "database": "ok"}
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
    finally:
        children = stop_up(up)
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "stopped" in (up.proc.stdout.read() if up.proc.stdout else "")

    again = start_up(data_dir, **ports)
    try:
        kept = httpx.get(f"{again.api}/runbooks/{runbook['id']}", headers=again.headers())
        assert kept.status_code == 200 and kept.json()["version"] == 1
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
