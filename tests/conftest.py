"""Shared fixtures on the real components.

Once per session: an embedded PostgreSQL (pgvector) with a migrated template database, the
Temporal dev server and the time-skipping test server, all from their pip packages.
Per test: its own database (cloned from the template), its own tenant, and its own task queues,
so tests never see each other's rows or workflows.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import Engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_worker.main import build_agent
from ddoc.cli.up import API_DB_ROLE
from ddoc.contracts import temporal as temporal_conn
from ddoc.contracts.settings import Settings, TemporalSettings
from ddoc.platform import db, tenancy
from ddoc.platform.embedded import EmbeddedPostgres, bin_path
from tests.fakes.pagerduty import FakePagerDuty
from worker.main import ACTIVITY_THREADS, build_worker

if TYPE_CHECKING:
    from tests.engine_harness import Harness

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
TEMPLATE_DB = "ddoc_template"
T = TypeVar("T")

# Durability is not under test: these make the embedded server much faster on CI disks.
_FAST_PG = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")

# Tenant secrets are stored encrypted (ddoc/platform/secrets.py): the API and workers the tests
# start need a master key, as a deployment does (tests/test_secrets.py also runs without one).
if not (os.environ.get("DDOC_SECRETS_KEY") or os.environ.get("DDOC_SECRETS_KEY_FILE")):
    os.environ["DDOC_SECRETS_KEY"] = base64.b64encode(os.urandom(32)).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), extra_settings=_FAST_PG)
    server.start()
    server.ensure_database(TEMPLATE_DB)
    engine = db.make_engine(server.url(TEMPLATE_DB), pool_size=1)
    db.migrate(engine)
    engine.dispose()
    server.ensure_login(API_DB_ROLE, member_of=db.APP_ROLE)
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres.ensure_database(name, template=TEMPLATE_DB)
    yield postgres.url(name)
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def app_database_url(database_url: str) -> str:
    """The test's database as the API and workers reach it: the `ddoc_app` role, which cannot
    change audit events (`database_url` is the owner, for setup and tampering)."""
    return database_url.replace("postgresql://postgres@", f"postgresql://{API_DB_ROLE}@", 1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url, pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bin_path("temporal"),
        search_attributes=temporal_conn.SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bin_path("temporal-test-server")
    )
    # The test server cannot list search attributes, but registers them.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in temporal_conn.SEARCH_ATTRIBUTES
            },
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture
def tenant_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(app_database_url: str, temporal_env: WorkflowEnvironment, tenant_id: str) -> Settings:
    config = temporal_env.client.service_client.config
    return Settings(
        database_url=app_database_url,
        temporal=TemporalSettings(
            address=config.target_host, namespace=temporal_env.client.namespace
        ),
        control_task_queue=f"ddoc.control.{uuid.uuid4().hex[:8]}",
        tenant=tenant_id,
        environment="test",
        command_timeout_seconds=30,
        agent_offline_timeout_seconds=20,
    )


@dataclass
class Credentials:
    api_key: str
    webhook_token: str


@pytest.fixture
def credentials(engine: Engine, tenant_id: str) -> Credentials:
    api_key, token = f"ddoc_test_{uuid.uuid4().hex}", f"ddwh_test_{uuid.uuid4().hex}"
    result = tenancy.bootstrap(engine, tenant_id=tenant_id, api_key=api_key, webhook_token=token)
    assert result.api_key == api_key and result.webhook_token == token
    return Credentials(api_key=api_key, webhook_token=token)


@dataclass
class Stack:
    """The API over real HTTP, the control-plane worker and an agent, all in this process."""

    base_url: str
    http: httpx.AsyncClient
    client: Client
    settings: Settings
    credentials: Credentials

    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.api_key}"}

    def webhook_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.webhook_token}"}


@asynccontextmanager
async def serve_api(settings: Settings, *, lifespan: str = "on") -> AsyncIterator[str]:
    """The real API over HTTP on a free port (uvicorn in this event loop); yields its base URL.
    With `lifespan="off"` it connects to nothing (pages that need no database or Temporal)."""
    from api.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings.replace(api_port=port)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan=lifespan,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("the API stopped while starting")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def stack(
    settings: Settings,
    engine: Engine,
    credentials: Credentials,
    temporal_env: WorkflowEnvironment,
) -> AsyncIterator[Stack]:
    client = temporal_env.client
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        control = build_worker(
            client, engine, task_queue=settings.control_task_queue, executor=executor
        )
        agent = build_agent(client, tenant_id=settings.tenant, environment=settings.environment)
        async with (
            control,
            agent,
            serve_api(settings) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield Stack(base_url, http, client, settings, credentials)


async def eventually(probe: Callable[[], Awaitable[T]], *, within: float = 20.0) -> T:
    """Await `probe()` until it returns a truthy value; fail with its last value otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {within}s; last value: {last!r}")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/chaos/conftest.py: pytest reads options only from the conftest files
    # it loads first, and `pytest tests` would not know the option otherwise.
    parser.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        help="seed of the chaos scenarios' random kill points (tests/chaos; default: fixed)",
    )


def store_runbooks(engine: Engine, tenant_id: str, documents: dict[str, str]) -> None:
    """A tenant and its markdown runbooks (source path → content), parsed and embedded as the
    API stores them."""
    from ddoc.platform import tenancy
    from ddoc.runbooks import store as runbooks
    from ddoc.runbooks.embedding import default_embedder
    from ddoc.runbooks.parsing import parse_runbook

    tenancy.bootstrap(engine, tenant_id=tenant_id)
    embedder = default_embedder()
    for path, content in documents.items():
        runbooks.store(
            engine,
            tenant_id=tenant_id,
            content=content,
            fmt="markdown",
            parsed=parse_runbook(content, "markdown", source_path=path),
            source_path=path,
            actor="test",
            embedder=embedder,
        )


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    pagerduty: FakePagerDuty,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    """The execution workflow on the time-skipping server, with a control worker and an agent
    for one test's tenant (tests/engine_harness.py)."""
    from tests.engine_harness import record_histories, running

    async with running(time_skipping_env.client, engine, pagerduty_url=pagerduty.url) as h:
        yield h
        if os.environ.get("DDOC_RECORD_HISTORIES"):
            await record_histories(h, request.node.name)
