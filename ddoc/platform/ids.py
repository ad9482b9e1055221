"""Identifiers and secrets: prefixed random ids for rows, tokens and their hashes."""

from __future__ import annotations

import hashlib
import secrets

_ID_HEX = 20  # every id: "<prefix>_" and 20 hex digits


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(_ID_HEX // 2)}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id in the same style as `new_id`, derived from `parts`: the same parts give the same
    id (an alert's execution: a retried delivery finds the workflow it started)."""
    return f"{prefix}_{short_hash(*parts, length=_ID_HEX)}"


def execution_id(tenant_id: str, dedup_key: str, incident_id: str) -> str:
    """The execution an alert's incident starts: `ex_` and 20 hex digits, like one started by
    hand. Executions started before this style (`ex-<hash>-<incident>`) keep their ids; every
    lookup takes an id as it is."""
    return derived_id("ex", tenant_id, dedup_key, incident_id)


def new_token(prefix: str) -> str:
    # 256 bits of randomness: a plain SHA-256 of the token is then a safe thing to store.
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def short_hash(*parts: str, length: int = 16) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode())
    return digest.hexdigest()[:length]
