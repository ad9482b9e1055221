"""The web console in Debian's headless Chromium (driven by Playwright, no browser download),
against the real API, Temporal, Postgres, control worker and agent: paste → preview → save →
alert → incident → the execution page updating itself → approve with a button (mouse, then
keyboard only). Screenshots of each page are kept in tests/artifacts/ and checked for their key
elements; the risk badges' contrast is measured in the light and the dark theme."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.async_api import Page, async_playwright, expect

from tests.alert_payloads import alertmanager_v4, am_alert
from tests.conftest import Stack
from tests.test_health_ui import ARTIFACTS, CHROMIUM_ARGS, chromium

# A runbook as it arrives from a Confluence page pasted as text: a breadcrumb, a status macro,
# prose around the commands, a table row, a red step at the end.
MESSY = """Space: SRE / Payments / Runbooks
Created by Dana K., last updated Oct 02 2026 • 3 min read
Status: REVIEWED

Payments queue consumer stuck

Owner: payments-oncall | Severity: P2 | Escalation: #payments-war-room

1. Check the disk on the worker first: `df -h /`
2. Watch the load for a few seconds: `vmstat 1 4`
3. Restart the consumer by touching its reload file: `touch {marker}`
   Rollback: `rm -f {marker}`
4. Only if the above did not help, wipe the spool: `rm -rf {spool}`

Related: Kafka lag dashboard (Grafana) · Postmortem 2026-07-14
"""


def _contrast(fg: str, bg: str) -> float:
    def luminance(css: str) -> float:
        r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])

        def lin(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)

    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def _shot(page: Page, name: str, *key_elements: str) -> None:
    """The page has its key elements and labelled buttons; its screenshot is kept."""
    for selector in key_elements:
        await expect(page.locator(selector).first).to_be_visible()
    assert await _unlabelled_buttons(page) == [], f"{name}: a button without a label"
    path = ARTIFACTS / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} looks empty"


async def _fits(page: Page) -> None:
    """Nothing makes the page scroll sideways at this width."""
    wide: int = await page.evaluate("() => document.documentElement.scrollWidth")
    width: int = await page.evaluate("() => window.innerWidth")
    culprits = await page.evaluate(
        """(width) => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > width)
            .slice(-3).map(e => e.outerHTML.slice(0, 160))""",
        width,
    )
    assert wide <= width, f"{page.url} is {wide}px wide in a {width}px window: {culprits}"


async def _unlabelled_buttons(page: Page) -> list[str]:
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('button, input[type=submit]')]
            .filter(b => !(b.getAttribute('aria-label') || b.textContent || b.value || '').trim())
            .map(b => b.outerHTML)"""
    )
    return found


async def _badge_contrasts(page: Page) -> list[tuple[str, float]]:
    colours: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('.badge[data-risk]')].map(b => {
            const s = getComputedStyle(b);
            return {risk: b.dataset.risk, fg: s.color, bg: s.backgroundColor};
        })"""
    )
    return [(c["risk"], _contrast(c["fg"], c["bg"])) for c in colours]


async def _new_key(stack: Stack, name: str, roles: list[str]) -> str:
    made = await stack.http.post(
        "/api-keys", json={"name": name, "roles": roles}, headers=stack.api_headers()
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def _sign_in(page: Page, base_url: str, key: str, target: str) -> None:
    await page.goto(f"{base_url}{target}")
    await page.wait_for_url("**/ui/login**")
    await _shot(page, "login", "#api_key")
    await page.fill("#api_key", key)
    await page.click("main button[type=submit]")
    await page.wait_for_url(f"**{target}")


async def test_paste_alert_follow_and_approve_in_chromium(stack: Stack, tmp_path: Any) -> None:
    marker, spool = tmp_path / "reloaded", tmp_path / "spool"
    spool.mkdir()
    alert_name = f"PaymentsConsumerStuck{uuid.uuid4().hex[:6]}"
    messy = MESSY.format(marker=marker, spool=spool)
    viewer_key = await _new_key(stack, "Vic Viewer", ["viewer"])
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            await _sign_in(page, stack.base_url, stack.credentials.api_key, "/ui/runbooks/new")

            # Paste: the preview follows the text without a submit.
            await page.fill("#content", messy)
            await expect(page.locator("#preview #parsed-steps > li")).to_have_count(4)
            await expect(page.locator("#preview .badge[data-risk=red]").first).to_be_visible()
            steps = page.locator("#preview #parsed-steps > li")
            assert "df -h /" in await steps.nth(0).locator("code.cmd").inner_text()
            assert await steps.nth(3).locator(".badge[data-risk=red]").count() == 1
            assert str(marker) in await steps.nth(2).locator(".rollback").inner_text()
            # It names no alert: the preview says what to fix; the fix shows up as it is typed.
            await expect(page.locator("#quality-flags [data-flag=no_trigger]")).to_be_visible()
            await page.fill("#content", f"---\nalerts: [{alert_name}]\n---\n{messy}")
            await expect(page.locator("#quality-flags [data-flag=no_trigger]")).to_have_count(0)
            await expect(page.locator("#preview #parsed-steps > li")).to_have_count(4)
            await _shot(page, "paste-preview", "#preview #parsed-steps", "#save")

            await page.click("#save")
            await page.wait_for_url(re.compile(r".*/ui/runbooks/rb_[0-9a-f]+\?notice=.*"))
            runbook_url = page.url.split("?")[0]
            await expect(page.locator("#flowchart svg")).to_be_visible()
            await expect(page.locator("#flowchart svg #flow-s4")).to_have_count(1)
            await _shot(page, "runbook", "#parsed-steps", "#flowchart svg", "#trust", "#versions")
            await _fits(page)

            # The alert fires: the webhook attaches the runbook and starts the execution.
            body = alertmanager_v4(am_alert(alert_name, fingerprint=uuid.uuid4().hex[:12]))
            posted = await stack.http.post(
                "/webhooks/alertmanager", json=body, headers=stack.webhook_headers()
            )
            assert posted.status_code in (200, 202), posted.text

            await page.goto(f"{stack.base_url}/ui/incidents")
            await page.click(f"#incidents a:has-text('{alert_name}')")
            await expect(page.locator("#attached")).to_contain_text("Attached")
            await expect(page.locator("#attached a")).to_have_attribute(
                "href", runbook_url.replace(stack.base_url, "")
            )
            await _shot(page, "incident", "#attached", "#alerts", "#executions a")

            # The execution page: opened while the green steps run, it follows them by itself.
            navigations: list[str] = []
            await page.click("#executions a")
            await page.wait_for_url("**/ui/executions/ex_*")
            execution_url = page.url
            page.on("framenavigated", lambda frame: navigations.append(frame.url))
            await expect(page.locator("#step-s2[data-status=succeeded]")).to_have_count(
                1, timeout=30_000
            )
            await expect(page.locator("#step-s3[data-status=awaiting_approval]")).to_have_count(
                1, timeout=30_000
            )
            assert navigations == [], "the page reloaded instead of updating itself"
            assert "procs" in await page.locator("#output-s2").inner_text()  # vmstat's header
            await expect(page.locator("#s3-approve")).to_be_visible()
            await expect(page.locator("#step-s3 time.countdown")).to_contain_text("escalat")
            await _shot(page, "execution-awaiting", "#step-s3 .awaiting-box", "#s3-approve")
            await _fits(page)
            for risk, ratio in await _badge_contrasts(page):
                assert ratio >= 4.5, f"{risk} badge contrast {ratio:.2f} (light theme)"

            # Approve with the button: the page says who approved, then shows the output.
            await page.click("#s3-approve")
            await page.wait_for_url(f"{execution_url}?notice=*")
            await expect(page.locator("#step-s3 [data-decision=approve]")).to_contain_text(
                "approved by bootstrap admin", timeout=20_000
            )
            await expect(page.locator("#step-s3[data-status=succeeded]")).to_have_count(
                1, timeout=20_000
            )
            assert marker.exists()  # the agent really ran it
            await expect(page.locator("#step-s4[data-status=awaiting_approval]")).to_have_count(
                1, timeout=20_000
            )
            await _shot(page, "execution-approved", "#step-s3 [data-decision=approve]")

            # A viewer watches: no decision buttons, no stop buttons.
            viewer = await browser.new_context(viewport={"width": 390, "height": 844})
            watching = await viewer.new_page()
            await _sign_in(
                watching, stack.base_url, viewer_key, execution_url.replace(stack.base_url, "")
            )
            await expect(watching.locator("#step-s4[data-status=awaiting_approval]")).to_have_count(
                1
            )
            assert await watching.locator("#steps button").count() == 0
            assert await watching.locator("#stop-actions").count() == 0
            await expect(watching.locator("#step-s4")).to_contain_text("Viewers watch")
            await _shot(watching, "execution-viewer-phone", "#step-s4")
            await _fits(watching)
            await viewer.close()

            # Dark theme: the same badges, still AA.
            await page.emulate_media(color_scheme="dark")
            for risk, ratio in await _badge_contrasts(page):
                assert ratio >= 4.5, f"{risk} badge contrast {ratio:.2f} (dark theme)"
            await _shot(page, "execution-dark", "#steps")

            # Audit: the approval is on the trail.
            await page.emulate_media(color_scheme="light")
            await page.goto(f"{stack.base_url}/ui/audit?action=decision.")
            await expect(
                page.locator("#audit-events [data-action='decision.approve']")
            ).to_have_count(1)
            await _shot(page, "audit", "#audit-events", "#export-csv")

            # The lists.
            await page.goto(f"{stack.base_url}/ui/runbooks")
            await _shot(page, "runbooks", "#runbooks", "#gaps")
            await page.goto(f"{stack.base_url}/ui/incidents")
            await _shot(page, "incidents", f"#incidents a:has-text('{alert_name}')")
            await page.goto(f"{stack.base_url}/ui/executions")
            await _shot(page, "executions", "#executions [data-status=awaiting_human]")
            for listed in ("runbooks", "incidents", "executions"):
                await page.goto(f"{stack.base_url}/ui/{listed}")
                await _fits(page)
        finally:
            await browser.close()


async def test_keyboard_only_approval(stack: Stack, tmp_path: Any) -> None:
    """Tab to the Approve button and press Enter: no mouse anywhere."""
    content = f"# Reload the cache\n\n1. Look: `df -h /`\n2. Reload: `touch {tmp_path}/reloaded`\n"
    added = await stack.http.post(
        "/runbooks",
        json={"content": content, "source_path": "kb.md"},
        headers=stack.api_headers(),
    )
    started = await stack.http.post(
        "/executions", json={"runbook_id": added.json()["id"]}, headers=stack.api_headers()
    )
    execution_id = started.json()["id"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{stack.base_url}/ui/executions/{execution_id}")
            await page.focus("body")
            await _keyboard_to(page, "api_key")
            await page.keyboard.type(stack.credentials.api_key)
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"**/ui/executions/{execution_id}")
            await expect(page.locator("#s2-approve")).to_be_visible(timeout=20_000)
            await page.focus("body")
            await _keyboard_to(page, "s2-approve")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**notice=*")
            await expect(page.locator("#step-s2[data-status=succeeded]")).to_have_count(
                1, timeout=20_000
            )
            await expect(page.locator("#step-s2 [data-decision=approve]")).to_contain_text(
                "approved by bootstrap admin"
            )
        finally:
            await browser.close()
    assert (tmp_path / "reloaded").exists()


async def _keyboard_to(page: Page, element_id: str, *, presses: int = 80) -> None:
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement && document.activeElement.id") == (
            element_id
        ):
            return
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_review_and_publish_a_draft_and_install_a_template(stack: Stack) -> None:
    history = "kubectl get pods -n shop\nkubectl rollout restart deploy/web -n shop\n"
    made = await stack.http.post(
        "/runbooks/drafts",
        json={"kind": "history", "content": history, "title": "Restart the shop's web tier"},
        headers=stack.api_headers(),
    )
    assert made.status_code == 201, made.text
    draft_id = made.json()["id"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await _sign_in(page, stack.base_url, stack.credentials.api_key, "/ui/runbooks")
            await page.click(f"#drafts [data-draft='{draft_id}'] a")
            await expect(page.locator("#draft-banner")).to_contain_text("Draft")
            await expect(page.locator("#parsed-steps > li")).to_have_count(2)
            await _shot(page, "draft", "#draft-banner", "#publish-button", "#flowchart svg")
            await page.click("#publish-button")
            await page.wait_for_url("**notice=*")
            await expect(page.locator("#draft-banner")).to_have_count(0)

            await page.goto(f"{stack.base_url}/ui/runbooks/templates")
            row = page.locator("[data-template='redis-out-of-memory']")
            await _shot(page, "templates", "#templates")
            await row.get_by_role("button", name="Install").click()
            await page.wait_for_url("**/ui/runbooks/rb_*")
            await expect(page.locator("#parsed-title")).to_contain_text("Redis")
            await _fits(page)
        finally:
            await browser.close()
