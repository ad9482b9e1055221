"""Payload encryption: AES-256-GCM with a key per tenant, so alert payloads, commands and their
outputs are ciphertext in Temporal's history.

Keys come from a JSON file (DDOC_CODEC_KEYS_FILE), never from the database or Temporal:

    {"acme":  {"active": "2026-11", "keys": {"2026-11": "<base64, 32 bytes>",
                                             "2026-05": "<base64, 32 bytes>"}},
     "*":     {"active": "k1", "keys": {"k1": "<base64, 32 bytes>"}}}

Each encrypted payload names its key (`<tenant>/<key id>` in its metadata), so rotating is: add
a key, make it `active`, keep the old ones until no history needs them. `"*"` is the
deployment's key for payloads whose tenant cannot be told (it is required). Which tenant a
payload belongs to comes from the serialization context: the workflow id, resolved by the
process (the agent knows its one tenant; API and workers look the execution up).

Agents hold only their own tenant's keys; the control plane holds all of them. Stdlib,
temporalio and cryptography only: the agent imports this.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
FALLBACK = "*"
_NONCE = 12

# workflow id ("" when none) -> tenant id (None: unknown); may do I/O, so it is awaited.
TenantResolver = Callable[[str], Awaitable[str | None]]


class CodecError(ValueError):
    """Keys that cannot be used, or a payload that cannot be decrypted with them."""


@dataclass(frozen=True)
class TenantKeys:
    active: str
    keys: dict[str, AESGCM]


def load_keys(source: str | Path | dict[str, Any]) -> dict[str, TenantKeys]:
    raw = source if isinstance(source, dict) else json.loads(Path(source).read_text())
    if not isinstance(raw, dict) or not raw:
        raise CodecError("codec keys: expected a JSON object of tenants")
    found = {}
    for tenant, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("keys"), dict):
            raise CodecError(f"codec keys: {tenant!r} needs {{'active', 'keys'}}")
        keys = {}
        for key_id, encoded in entry["keys"].items():
            if "/" in key_id:
                raise CodecError(f"codec keys: key id {key_id!r} may not contain '/'")
            try:
                secret = base64.b64decode(encoded, validate=True)
            except (ValueError, TypeError):
                raise CodecError(f"codec keys: {tenant}/{key_id} is not base64") from None
            if len(secret) != 32:
                raise CodecError(f"codec keys: {tenant}/{key_id} must be 32 bytes (AES-256)")
            keys[key_id] = AESGCM(secret)
        if entry.get("active") not in keys:
            raise CodecError(f"codec keys: {tenant}'s active key is not among its keys")
        found[tenant] = TenantKeys(active=entry["active"], keys=keys)
    return found


def new_key() -> str:
    """A fresh base64 AES-256 key (`ddoc codec new-key`)."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    def __init__(
        self,
        keys: dict[str, TenantKeys],
        resolve: TenantResolver,
        *,
        workflow_id: str | None = None,
        require_fallback: bool = True,
    ) -> None:
        if require_fallback and FALLBACK not in keys:
            raise CodecError('codec keys: the "*" entry (the deployment\'s key) is required')
        self._keys = keys
        self._resolve = resolve
        self._workflow_id = workflow_id

    def with_context(self, context: SerializationContext) -> Self:
        workflow_id = None
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
            workflow_id = context.workflow_id
        return type(self)(
            self._keys, self._resolve, workflow_id=workflow_id, require_fallback=False
        )

    def for_tenant(self, tenant_id: str) -> EncryptionCodec:
        """This codec, encrypting with `tenant_id`'s key (the codec endpoint's encode)."""
        return EncryptionCodec(
            {t: k for t, k in self._keys.items() if t == tenant_id},
            fixed_tenant(tenant_id),
            require_fallback=False,
        )

    async def _tenant(self) -> str:
        tenant = await self._resolve(self._workflow_id or "")
        if tenant in self._keys:
            assert tenant is not None
            return tenant
        if FALLBACK in self._keys:
            return FALLBACK
        raise CodecError(f"no key for the tenant of {self._workflow_id or 'this payload'}")

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not payloads:
            return []
        tenant = await self._tenant()
        entry = self._keys[tenant]
        key_id = f"{tenant}/{entry.active}"
        return [encrypt(p, entry.keys[entry.active], key_id) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def decrypt(self, payload: Payload, *, tenants: Iterable[str] | None = None) -> Payload:
        """Plain payloads pass; encrypted ones need their key (and, when `tenants` is given,
        to belong to one of them: the codec endpoint decrypts a caller's own tenant only)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        tenant, _, name = key_id.partition("/")
        if tenants is not None and tenant not in tenants:
            raise CodecError(f"payload encrypted for another tenant ({tenant})")
        entry = self._keys.get(tenant)
        key = entry.keys.get(name) if entry else None
        if key is None:
            raise CodecError(f"no key {key_id} to decrypt with")
        data = payload.data
        try:
            plain = key.decrypt(data[:_NONCE], data[_NONCE:], key_id.encode())
        except Exception:
            raise CodecError(f"payload does not decrypt with {key_id}") from None
        return Payload.FromString(plain)


def encrypt(payload: Payload, key: AESGCM, key_id: str) -> Payload:
    nonce = os.urandom(_NONCE)
    sealed = key.encrypt(nonce, payload.SerializeToString(), key_id.encode())
    return Payload(
        metadata={"encoding": ENCODING, KEY_ID: key_id.encode()},
        data=nonce + sealed,
    )


def fixed_tenant(tenant_id: str) -> TenantResolver:
    """The agent's resolver: everything it handles is its own tenant's."""

    async def resolve(_: str) -> str | None:
        return tenant_id

    return resolve


def cached(lookup: Callable[[str], str | None], size: int = 100_000) -> TenantResolver:
    """A resolver over a blocking lookup (a database query), run in a thread, remembered."""
    memo: dict[str, str] = {}

    async def resolve(workflow_id: str) -> str | None:
        if not workflow_id:
            return None
        if workflow_id in memo:
            return memo[workflow_id]
        tenant = await asyncio.to_thread(lookup, workflow_id)
        if tenant is not None:
            if len(memo) >= size:
                memo.clear()
            memo[workflow_id] = tenant
        return tenant

    return resolve
