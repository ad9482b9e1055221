"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) delivers to the API.

`scripts/test` installs the package; the test is skipped only where the binary is absent."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Stack, eventually, free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
FIXTURES = Path(__file__).parent / "fixtures" / "foundation"

pytestmark = pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager not installed")


@pytest.fixture
async def alertmanager(stack: Stack, tmp_path: Path) -> AsyncIterator[str]:
    config = {
        "route": {
            "receiver": "ddoc",
            "group_by": ["alertname", "namespace"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "ddoc",
                "webhook_configs": [
                    {
                        "url": f"{stack.base_url}/webhooks/alertmanager",
                        "send_resolved": True,
                        "max_alerts": 1000,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials": stack.credentials.webhook_token,
                            }
                        },
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert BINARY is not None
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "alertmanager.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                try:
                    return (await http.get(f"{url}/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, within=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_alertmanager_delivers_and_an_execution_runs(stack: Stack, alertmanager: str) -> None:
    runbook = await stack.http.post(
        "/runbooks",
        json={"content": (FIXTURES / "crashloop.md").read_text(), "source_path": "crashloop.md"},
        headers=stack.api_headers(),
    )
    assert runbook.status_code == 201
    alert = {
        "labels": {
            "alertname": "KubePodCrashLooping",
            "namespace": "shop",
            "pod": "checkout-1",
            "severity": "critical",
        },
        "annotations": {"summary": "Pod shop/checkout-1 is crash looping"},
    }
    async with httpx.AsyncClient() as http:
        posted = await http.post(f"{alertmanager}/api/v2/alerts", json=[alert])
        assert posted.status_code == 200

    async def incident() -> dict[str, Any] | None:
        response = await stack.http.get("/incidents", headers=stack.api_headers())
        rows: list[dict[str, Any]] = response.json()
        return rows[0] if rows and rows[0]["execution_id"] else None

    found = await eventually(incident, within=30)
    assert found["source"] == "alertmanager"
    assert found["match_status"] == "attached"
    assert found["runbook_id"] == runbook.json()["id"]

    async def finished() -> dict[str, Any] | None:
        response = await stack.http.get(
            f"/executions/{found['execution_id']}", headers=stack.api_headers()
        )
        body: dict[str, Any] = response.json()
        return body if body["status"] == "awaiting_human" else None

    # The read-only steps ran; the restart (yellow) waits for a human.
    execution = await eventually(finished, within=30)
    assert execution["steps"][2]["status"] == "awaiting_approval"
    assert execution["steps"][0]["output"] == "pod=checkout-1 namespace=shop\n"
