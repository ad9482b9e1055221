"""The API documentation on an air-gapped machine: `/docs` (Swagger UI) and `/redoc` render in
Debian's headless Chromium with every request off this host refused; their assets come from
the API itself. Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Route, async_playwright

from api.app import DOCS_ASSETS_URL
from ddoc.contracts.settings import Settings
from tests.conftest import serve_api
from tests.test_health_ui import ARTIFACTS, CHROMIUM_ARGS, chromium

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.fixture
async def docs_url() -> AsyncIterator[str]:
    """The real application on a real port. The docs need no database, Temporal or model: the
    lifespan that connects to them stays off."""
    async with serve_api(Settings.from_env(), lifespan="off") as url:
        yield url


async def test_docs_pages_name_no_outside_host(docs_url: str) -> None:
    async with httpx.AsyncClient(base_url=docs_url) as http:
        for page in ("/docs", "/redoc"):
            served = await http.get(page)
            assert "cdn." not in served.text and "https://" not in served.text, served.text
            # Nothing the page's scripts would fetch may leave this host either.
            assert "default-src 'self'" in served.headers["content-security-policy"]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            content = await http.get(f"{DOCS_ASSETS_URL}/{asset}")
            assert content.status_code == 200 and len(content.content) > 10_000, asset


async def test_docs_render_in_chromium_with_the_network_cut_off(docs_url: str) -> None:
    refused: list[str] = []

    async def only_this_host(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium(),
            # Everything but loopback goes to a proxy that is not there: no way out but routes.
            args=[*CHROMIUM_ARGS, "--proxy-server=http://127.0.0.1:9"],
            headless=True,
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1400})
            await context.route("**/*", only_this_host)
            page = await context.new_page()

            await page.goto(f"{docs_url}/docs")
            await page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = await page.locator(".opblock-summary-path").all_inner_texts()
            assert "/webhooks/alertmanager" in [p.replace("\u200b", "") for p in paths]
            assert len(paths) > 30
            body = await page.inner_text("body")
            assert "dd0c/run" in body
            assert "Add a runbook (or the next version of the one at the same source path)" in body
            await page.screenshot(path=str(ARTIFACTS / "docs-swagger.png"))

            await page.goto(f"{docs_url}/redoc")
            heading = page.locator("h2", has_text="Add a runbook (or the next version")
            await heading.first.wait_for(timeout=20_000)
            await page.screenshot(path=str(ARTIFACTS / "docs-redoc.png"))
        finally:
            await browser.close()
    assert refused == [], f"the docs tried to reach outside this host: {refused}"
    assert (ARTIFACTS / "docs-swagger.png").stat().st_size > 20_000
