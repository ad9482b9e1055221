"""The FastAPI application. Built by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AppState
from api.mcp import server as mcp_server
from api.routes import audit as audit_routes
from api.routes import codec as codec_routes
from api.routes import (
    drafts,
    drills,
    executions,
    health,
    incidents,
    keys,
    reports,
    runbooks,
    self_checks,
    ui,
    webhooks,
)
from api.routes import settings as settings_routes
from api.routes import slack as slack_routes
from api.routes import users as users_routes
from api.routes.codec import CodecCors
from ddoc.alerts import learned, match_confirm
from ddoc.alerts.intake import Intake
from ddoc.alerts.matching import Matcher, thresholds_from
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings
from ddoc.execution.store import server_codec
from ddoc.platform import db, metrics
from ddoc.platform.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from ddoc.platform.ratelimit import API_KEY_BUCKETS, Limit, SharedRateLimiter
from ddoc.runbooks import search
from ddoc.runbooks.embedding import default_embedder
from ddoc.runbooks.parsing import ParseError, runbook_parser
from ddoc.runbooks.parsing.ai import ai_config_from_env
from ddoc.trust import learning
from ddoc.trust import levels as trust

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
DB_THREADS = 24


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (several worker processes)."""
    return create_app(Settings.from_env())


def create_app(settings: Settings) -> FastAPI:
    assistants = mcp_server.build()  # MCP for AI assistants at /mcp (api/mcp)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Intake hands its database work to threads; the default pool (CPUs + 4) would queue
        # a burst of webhooks behind a handful of threads. Match the connection pool instead.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="ddoc-db")
        )
        engine = db.make_engine(settings.require_database_url(), pool_size=DB_THREADS)
        db.migrate(engine)
        payload_codec = server_codec(settings.codec_keys_file, engine)
        client = await temporal_conn.connect(
            settings.temporal, identity="ddoc-api", lazy=True, codec=payload_codec
        )
        embedder = default_embedder()
        # Load the model before serving: the first alert must not wait for it.
        await asyncio.to_thread(embedder.warm_up)
        await asyncio.to_thread(search.reembed_stale, engine, embedder)
        confirm = match_confirm.config_from_env(os.environ)
        matcher = Matcher(
            embedder,
            thresholds_from(settings.match_attach, settings.match_suggest, settings.match_margin),
            # With an Anthropic key, Claude confirms or rejects statistical matches.
            confirmer=match_confirm.ClaudeConfirmer(confirm) if confirm else None,
        )
        app.state.ddoc = AppState(
            settings=settings,
            engine=engine,
            temporal=client,
            intake=Intake(engine=engine, client=client, settings=settings, matcher=matcher),
            matcher=matcher,
            parse=runbook_parser(ai_config_from_env(os.environ)),
            # Shared by every API process through the database (ddoc/platform/ratelimit.py).
            rate_limiter=SharedRateLimiter(engine),
            mcp_limiter=SharedRateLimiter(engine, buckets=API_KEY_BUCKETS),
            webhook_limit=Limit(settings.webhook_rate, settings.webhook_burst),
            codec=payload_codec,
        )
        metrics.register_database(engine)
        ui.warm_up()
        # What is loaded now (modules, the embedding model: ~700,000 objects) lives as long as the
        # process: out of the collector's sight, a full collection stops the process for
        # milliseconds instead of ~0.4 s (docs/BENCHMARKS.md, web console).
        gc.collect()
        gc.freeze()
        try:
            # The MCP server's sessions (streamable HTTP at /mcp) live as long as the app.
            async with assistants.session_manager.run():
                yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="dd0c/run",
        version="0.1.0",
        summary="AI-assisted runbook automation for on-call teams",
        lifespan=lifespan,
        # Served below from assets installed with the server (no CDN): /docs and /redoc work
        # on an air-gapped control plane.
        docs_url=None,
        redoc_url=None,
    )
    _add_docs(app)
    app.add_middleware(RejectNul)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(CodecCors, origins=settings.codec_cors_origins)
    for router in (
        health.router,
        drafts.router,  # before runbooks: /runbooks/drafts is not a runbook id
        runbooks.router,
        webhooks.router,
        incidents.router,
        executions.router,
        drills.router,
        settings_routes.router,
        self_checks.router,
        users_routes.router,
        keys.router,
        slack_routes.router,
        audit_routes.router,
        codec_routes.router,
        reports.router,
        ui.router,
    ):
        app.include_router(router)
    app.router.routes.append(mcp_server.route(assistants))
    app.mount("/ui/static", ui.static, name="console-static")
    _add_error_handlers(app)
    ui.install(app)
    return app


DOCS_ASSETS_URL = "/docs/assets"
# The documentation pages load nothing from anywhere but the API (ReDoc would fetch its
# vendor's logo from a CDN): the browser refuses before a request leaves.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)


def docs_assets_dir() -> Path:
    """Swagger UI's and ReDoc's JavaScript and CSS, shipped by the `fastapi-offline` package
    (a dependency of the server extra)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _add_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` (ReDoc) with every asset served by the API itself."""
    assets = DOCS_ASSETS_URL
    app.mount(assets, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API",
                oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
                swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{assets}/swagger-ui.css",
                swagger_favicon_url=f"{root}{assets}/favicon.png",
                # No call to the public spec validator (its badge), which an air-gapped host lacks.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - API",
                redoc_js_url=f"{root}{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{assets}/favicon.png",
                with_google_fonts=False,
            )
        )


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


# Each kind of domain error is one HTTP status; the body is `{"detail": <the error's message>}`.
_DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Invalid: 422,
    Unavailable: 503,
}


def _add_error_handlers(app: FastAPI) -> None:
    for kind, status_code in _DOMAIN_STATUS.items():
        app.add_exception_handler(kind, _domain_handler(status_code))
    app.add_exception_handler(learned.LearnedTriggerNotFound, _domain_handler(404))
    app.add_exception_handler(ParseError, _domain_handler(422))
    app.add_exception_handler(trust.TrustError, _domain_handler(422))
    app.add_exception_handler(learning.SuggestionError, _domain_handler(409))

    async def trust_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, trust.TrustRefused)
        if ui.is_console(request):
            return ui.error_page(request, 409, str(exc))
        guards = [dataclasses.asdict(g) for g in exc.guards]
        return JSONResponse({"detail": str(exc), "guards": guards}, status_code=409)

    app.add_exception_handler(trust.TrustRefused, trust_refused)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # The database is restarting or unreachable: nothing was decided, so the caller (an
        # alert source above all) retries; a 500 would say the request was at fault.
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return await _domain_handler(503)(
            request, Unavailable("the database is unavailable; retry", retry_after_seconds=5)
        )

    for lost in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(lost, database_unavailable)


def _domain_handler(
    status_code: int,
) -> Callable[[Request, Exception], Coroutine[Any, Any, Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if ui.is_console(request):  # a console page answers with a page
            return ui.error_page(request, status_code, str(exc))
        # Unavailable may say when to ask again (alert sources retry a 503; it is idempotent).
        retry = exc.retry_after_seconds if isinstance(exc, Unavailable) else None
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return JSONResponse({"detail": str(exc)}, status_code=status_code, headers=headers)

    return handle


class BodySizeLimit:
    """Refuse bodies over `max_bytes` with 413, whether or not a Content-Length was sent."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than the limit of {self.max_bytes} bytes"},
            status_code=413,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    pass


# A NUL, raw or as a JSON escape (`\u0000`, unless its backslash is itself escaped).
_NUL = re.compile(rb"\x00|(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


class RejectNul:
    """PostgreSQL text cannot hold NUL: refuse it at the edge (422) in the path, the query and
    the body, rather than fail deep in a transaction with a 500 (which alert sources retry
    forever). Bodies are at most MAX_BODY_BYTES (BodySizeLimit runs first)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in target or b"\x00" in target or "\x00" in scope.get("path", ""):
            await self._reject(send, "the URL contains a NUL character")
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if _NUL.search(body):
            await self._reject(
                send,
                "the body contains a NUL character (\\u0000): text with NUL, or binary content, "
                "cannot be stored; send text",
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, detail: str) -> None:
        response = JSONResponse({"detail": detail}, status_code=422)
        await send({"type": "http.response.start", "status": 422, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
