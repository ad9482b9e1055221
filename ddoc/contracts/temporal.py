"""Temporal connection and the project's typed search attributes.

Imports only the stdlib and `temporalio`: used by the API, the control-plane worker and the agent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.service import TLSConfig

from ddoc.contracts.settings import TemporalSettings

log = logging.getLogger(__name__)

# Search attributes are never encrypted by a payload codec: ids and enums only, no secrets.
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
RUNBOOK_ID = SearchAttributeKey.for_keyword("RunbookId")
SERVICE = SearchAttributeKey.for_keyword("Service")
SEVERITY = SearchAttributeKey.for_keyword("Severity")
# The execution's mode (copilot, autopilot, read_along, dry_run). `mode` is a keyword of
# Temporal's list-filter language: a query names `Mode` only back-quoted (`Mode` = "copilot"),
# so the name to search by is `DdocMode`. `Mode` stays registered and set, for the executions
# (and saved queries) from before.
MODE = SearchAttributeKey.for_keyword("DdocMode")
LEGACY_MODE = SearchAttributeKey.for_keyword("Mode")
# Temporal reserves `ExecutionStatus` for its own (Running, Completed, …), which stays
# queryable; ours carries dd0c/run's statuses (awaiting_human, stalled, rolled_back, …).
EXECUTION_STATUS = SearchAttributeKey.for_keyword("DdocExecutionStatus")
CURRENT_STEP = SearchAttributeKey.for_keyword("CurrentStep")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str], ...] = (
    TENANT_ID,
    RUNBOOK_ID,
    SERVICE,
    SEVERITY,
    MODE,
    EXECUTION_STATUS,
    CURRENT_STEP,
    LEGACY_MODE,
)
# The names a query may use unquoted (tests/test_readme_tour.py checks each one in the README).
QUERYABLE_ATTRIBUTES: tuple[SearchAttributeKey[str], ...] = tuple(
    key for key in SEARCH_ATTRIBUTES if key is not LEGACY_MODE
)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags registering every search attribute."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


async def connect(
    settings: TemporalSettings,
    *,
    identity: str | None = None,
    lazy: bool = False,
    codec: PayloadCodec | None = None,
) -> Client:
    """`lazy` connects on first use: the API starts (and reports Temporal down) without it.
    `codec` encrypts payloads (ddoc/contracts/codec.py)."""
    tls: bool | TLSConfig = False
    if settings.tls or settings.tls_cert_path or settings.tls_ca_path:
        tls = TLSConfig(
            server_root_ca_cert=_read(settings.tls_ca_path),
            client_cert=_read(settings.tls_cert_path),
            client_private_key=_read(settings.tls_key_path),
        )
    elif settings.api_key:
        tls = True  # API keys are only sent over TLS (Temporal Cloud requires it)
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=tls,
        api_key=settings.api_key,
        lazy=lazy,
        identity=identity,
        data_converter=dataclasses.replace(DataConverter.default, payload_codec=codec)
        if codec
        else DataConverter.default,
    )


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register missing search attributes in the client's namespace; returns the names added.

    The dev server gets them from flags; a production cluster gets them here, at worker start.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key.name for key in SEARCH_ATTRIBUTES if key.name not in existing.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    return missing


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


async def connect_with_retry(
    settings: TemporalSettings,
    *,
    identity: str,
    wait_seconds: float = 60.0,
    codec: PayloadCodec | None = None,
) -> Client:
    """Connect, retrying while the server is still starting (containers start in any order)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.2
    while True:
        try:
            return await connect(settings, identity=identity, codec=codec)
        except RuntimeError as err:
            if loop.time() + delay > deadline:
                raise ConnectionError(
                    f"cannot reach Temporal at {settings.address} "
                    f"(namespace {settings.namespace}) after {wait_seconds:.0f}s: {err}"
                ) from err
            log.info("waiting for Temporal at %s: %s", settings.address, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
