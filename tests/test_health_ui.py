"""The runbook health view: the JSON report, and `/ui/health` rendered with real data in
Debian's headless Chromium (driven by Playwright); the screenshot is kept in tests/artifacts/."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import Engine

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import REPO, Stack, eventually
from tests.test_learning import seed_runs

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DISK = """# Disk almost full on a node

Alerts: NodeDiskAlmostFull

1. See what is big: `du -xh /var --max-depth=2`
2. Rotate the logs: `logrotate -f /etc/logrotate.conf`
"""
QUEUE = """# Payment queue backlog

1. Check the consumers: `kubectl get pods -n payments -l app=consumer`
2. Restart them: `kubectl rollout restart deploy/consumer -n payments`
"""
CERT = """# Renew the edge certificate

1. Check expiry: `openssl x509 -enddate -noout -in /etc/edge/tls.crt`
2. Reload the proxy: `systemctl reload edge-proxy`
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Debian's chromium is needed (scripts/test installs it: apt-get install chromium)"
        )
    return found


async def add(stack: Stack, content: str, path: str) -> str:
    response = await stack.http.post(
        "/runbooks", json={"content": content, "source_path": path}, headers=stack.api_headers()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_health_report_and_page_in_headless_chromium(stack: Stack, engine: Engine) -> None:
    disk, queue, cert = (
        await add(stack, DISK, "disk.md"),
        await add(stack, QUEUE, "queue.md"),
        await add(stack, CERT, "cert.md"),
    )
    ok, skip = "succeeded", "skipped"
    seed_runs(engine, stack, disk, [{"s1": ok, "s2": ok}] * 3)
    seed_runs(engine, stack, queue, [{"s1": ok, "s2": skip}] * 3)  # s2 is dead
    seed_runs(engine, stack, cert, [{"s1": ok, "s2": ok}] * 4, status="failed")  # stale
    # Alerts nobody wrote a runbook for: coverage gaps.
    for n in range(2):
        alert = am_alert(
            "KafkaConsumerLagHigh", fingerprint=f"lag{n}", service="billing", topic=f"t{n}"
        )
        posted = await stack.http.post(
            "/webhooks/alertmanager",
            json=alertmanager_v4(alert),
            headers=stack.webhook_headers(),
        )
        assert posted.status_code == 202, posted.text

    async def report() -> dict[str, Any] | None:
        response = await stack.http.get("/reports/health", headers=stack.api_headers())
        body: dict[str, Any] = response.json()
        return body if body["coverage_gaps"] else None

    health = await eventually(report)
    totals = health["totals"]
    assert (totals["runbooks"], totals["executions"], totals["stale_runbooks"]) == (3, 10, 1)
    assert totals["executions_by_status"] == {"succeeded": 6, "failed": 4}
    assert [r["runbook_id"] for r in health["ranking"]] == [disk, queue, cert]
    assert [r["score"] for r in health["ranking"]] == [100.0, 75.0, 0.0]
    assert health["ranking"][1]["dead_steps"] == ["s2"]
    assert [r["runbook_id"] for r in health["stale"]] == [cert]
    (gap,) = health["coverage_gaps"]
    assert (gap["alert"], gap["service"], gap["alerts"]) == ("KafkaConsumerLagHigh", "billing", 2)

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            await page.goto(f"{stack.base_url}/ui/health")
            assert page.url.endswith("/ui/login?next=/ui/health")  # no key yet: sign in first
            await page.fill("input[name=api_key]", "ddoc_not_a_key")
            await page.click("button[type=submit]")
            assert "Unknown or revoked API key" in await page.inner_text("main")
            await page.fill("input[name=api_key]", stack.credentials.api_key)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/ui/health")

            ranking = await page.locator("#ranking tbody tr").all_inner_texts()
            assert [line.split("\t")[1].splitlines()[0] for line in ranking] == [
                "Disk almost full on a node",
                "Payment queue backlog",
                "Renew the edge certificate",
            ]
            assert "s2" in ranking[1] and "100%" in ranking[0]
            stale = await page.inner_text("#stale")
            assert "Renew the edge certificate" in stale and "never succeeded" in stale
            gaps = await page.inner_text("#gaps")
            assert "KafkaConsumerLagHigh" in gaps and "billing" in gaps
            runbooks_card = await page.inner_text('[data-total="Runbooks"] b')
            assert runbooks_card == "3"
            await page.screenshot(path=str(ARTIFACTS / "ui-health.png"), full_page=True)

            await page.click("header button[type=submit]")  # sign out
            await page.wait_for_url("**/ui/login")
            await page.goto(f"{stack.base_url}/ui/health")
            assert page.url.endswith("/ui/login?next=/ui/health")
        finally:
            await browser.close()
    assert (ARTIFACTS / "ui-health.png").stat().st_size > 10_000


async def test_health_page_escapes_what_users_wrote(stack: Stack) -> None:
    await add(stack, "# <script>alert(1)</script> restart\n\n1. Run `uptime`\n", "x.md")
    page = await stack.http.get("/ui/health", headers=stack.api_headers())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; restart" in page.text
    anonymous = await stack.http.get("/ui/health", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/ui/login?next=/ui/health"
    bad_days = await stack.http.get("/reports/health?days=0", headers=stack.api_headers())
    assert bad_days.status_code == 422
