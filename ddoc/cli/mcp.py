"""`ddoc mcp`: the MCP server over stdio, for Claude Desktop, Claude Code and other assistants.

A thin bridge to the API's MCP server (`/mcp`, api/mcp/server.py) with the API key from the
environment (DDOC_API_URL, DDOC_API_KEY, as the other commands): tools, resources and their
errors are forwarded as they are, so roles, audit and rate limits live in one place. The API is
reached on the first request that needs it, with the assistant's own client name (from its
`initialize`), so `initialize` is answered even when the API is down.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ddoc.cli.client import DEFAULT_API_URL, credential
from ddoc.contracts.settings import Settings

T = TypeVar("T")
VERSION = "0.1.0"
INSTRUCTIONS = """\
dd0c/run: the team's runbooks, incidents and runbook executions, under the same risk gates and
human approvals as for people. Find and read runbooks, start them (read-only green steps run,
the others wait for a human), follow executions, ask humans for approval and run read-only
diagnostics. You can never approve or decide a step: a human does."""


class Upstream:
    """The connection to the API's /mcp, owned by one task (`run`), opened on first need."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self._api_key = api_key
        self._wanted = anyio.Event()
        self._ready = anyio.Event()
        self._client_name = "unknown"
        self._session: ClientSession | None = None
        self._error: str | None = None

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            try:
                await self._connect()
            except Exception as err:  # told to every waiting request; tried again on the next
                self._error = _reason(err)
            self._session = None
            self._ready.set()
            self._wanted = anyio.Event()

    async def _connect(self) -> None:
        headers = {"Authorization": f"Bearer {self._api_key}", "X-Ddoc-Client": "mcp"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(self.url, http_client=http) as (read, write),
            ClientSession(
                read,
                write,
                client_info=types.Implementation(
                    name=f"{self._client_name} via ddoc mcp", version=VERSION
                ),
            ) as session,
        ):
            await session.initialize()
            self._session, self._error = session, None
            self._ready.set()
            await anyio.sleep_forever()

    async def session(self, client_name: str) -> ClientSession:
        if self._session is not None:
            return self._session
        self._client_name = client_name
        self._ready = anyio.Event()
        self._wanted.set()
        await self._ready.wait()
        if self._session is None:
            raise MCPError(
                code=types.INTERNAL_ERROR,
                message=f"cannot reach dd0c/run at {self.url}: {self._error} (check DDOC_API_URL "
                "and DDOC_API_KEY)",
            )
        return self._session


def _reason(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in err.exceptions)
    if isinstance(err, httpx2.HTTPStatusError) and err.response.status_code == 401:
        return "the API key was refused (401)"
    return str(err) or type(err).__name__


def build(upstream: Upstream) -> Server[Any]:
    def client_name(ctx: ServerRequestContext[Any]) -> str:
        params = ctx.session.client_params
        return params.client_info.name if params is not None and params.client_info else "unknown"

    async def forward(
        ctx: ServerRequestContext[Any], call: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        session = await upstream.session(client_name(ctx))
        try:
            return await call(session)
        except MCPError:
            raise
        except Exception as err:
            raise MCPError(
                code=types.INTERNAL_ERROR, message=f"dd0c/run at {upstream.url}: {_reason(err)}"
            ) from None

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await forward(ctx, lambda s: s.list_tools(params=params))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await forward(ctx, lambda s: s.call_tool(params.name, params.arguments))

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await forward(ctx, lambda s: s.list_resources(params=params))

    async def list_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await forward(ctx, lambda s: s.list_resource_templates(params=params))

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await forward(ctx, lambda s: s.read_resource(str(params.uri)))

    @asynccontextmanager
    async def lifespan(_: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            group.start_soon(upstream.run)
            yield {}
            group.cancel_scope.cancel()

    return Server(
        "dd0c-run",
        version=VERSION,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


async def serve(url: str, api_key: str) -> None:
    server = build(Upstream(url, api_key))
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def run(args: argparse.Namespace, settings: Settings) -> int:
    key = credential(os.environ, "DDOC_API_KEY")
    if not key:
        raise SystemExit("ddoc mcp: no API key: set DDOC_API_KEY (an assistant-role key)")
    base = (os.environ.get("DDOC_API_URL") or DEFAULT_API_URL).rstrip("/")
    anyio.run(serve, f"{base}/mcp", key)
    return 0
