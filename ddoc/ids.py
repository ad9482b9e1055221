"""Identifiers and secrets: prefixed random ids for rows, tokens and their hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def new_token(prefix: str) -> str:
    # 256 bits of randomness: a plain SHA-256 of the token is then a safe thing to store.
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def short_hash(*parts: str, length: int = 16) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode())
    return digest.hexdigest()[:length]
