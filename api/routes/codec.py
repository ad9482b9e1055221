"""The codec endpoint: Temporal's UI and CLI send encrypted payloads here to show them decoded
(the remote codec protocol: POST {"payloads": [{"metadata": {k: base64}, "data": base64}]}).

`/codec/decode|encode` take an API key (`temporal workflow show --codec-endpoint
http://api:8080/codec --codec-auth "Bearer <key>"`); `/ui/codec/...` take the `/ui` sign-in
cookie, for the Temporal Web UI with "include cross-origin credentials". Only the caller's own
tenant's payloads are decrypted; CORS answers the origins in DDOC_CODEC_CORS_ORIGINS.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, HTTPException, Request
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload

from api.deps import AppState, ResponderDep, StateDep, ViewerDep, signed_in
from ddoc.contracts.codec import CodecError, EncryptionCodec
from ddoc.contracts.roles import Role
from ddoc.platform.tenancy import Principal

router = APIRouter(tags=["codec"])
MAX_PAYLOADS = 1000


class PayloadIn(BaseModel):
    metadata: dict[str, str] = Field(default_factory=dict, description="values base64")
    data: str = Field(default="", description="base64")


class PayloadsIn(BaseModel):
    payloads: list[PayloadIn] = Field(max_length=MAX_PAYLOADS)


class PayloadsOut(BaseModel):
    payloads: list[dict[str, Any]]


def _codec(state: AppState) -> EncryptionCodec:
    if state.codec is None:
        raise HTTPException(404, "payload encryption is off (set DDOC_CODEC_KEYS_FILE)")
    return state.codec


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{what} is not base64") from None


def _payloads(body: PayloadsIn) -> list[Payload]:
    return [
        Payload(
            metadata={k: _b64(v, f"metadata {k}") for k, v in p.metadata.items()},
            data=_b64(p.data, "data"),
        )
        for p in body.payloads
    ]


def _out(payloads: list[Payload]) -> PayloadsOut:
    return PayloadsOut(
        payloads=[
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    )


def decode(state: AppState, principal: Principal, body: PayloadsIn) -> PayloadsOut:
    codec = _codec(state)
    try:
        plain = [codec.decrypt(p, tenants=[principal.tenant_id]) for p in _payloads(body)]
    except CodecError as err:
        raise HTTPException(403, str(err)) from None
    return _out(plain)


async def encode(state: AppState, principal: Principal, body: PayloadsIn) -> PayloadsOut:
    codec = _codec(state)
    try:
        sealed = await codec.for_tenant(principal.tenant_id).encode(_payloads(body))
    except CodecError as err:
        raise HTTPException(403, str(err)) from None
    return _out(sealed)


@router.post("/codec/decode", summary="Decrypt payloads of the caller's tenant (Temporal codec)")
def codec_decode(body: PayloadsIn, principal: ViewerDep, state: StateDep) -> PayloadsOut:
    return decode(state, principal, body)


@router.post("/codec/encode", summary="Encrypt payloads with the caller's tenant key")
async def codec_encode(body: PayloadsIn, principal: ResponderDep, state: StateDep) -> PayloadsOut:
    return await encode(state, principal, body)


def _signed_in(state: AppState, request: Request, cookie: str | None, role: Role) -> Principal:
    principal = signed_in(state, request, cookie)
    if principal is None:
        raise HTTPException(401, "sign in at /ui/login first")
    if not principal.at_least(role):
        raise HTTPException(403, f"this needs the {role.value} role or higher")
    return principal


Cookie_ = Annotated[str | None, Cookie(alias="ddoc_ui_key")]


@router.post("/ui/codec/decode", include_in_schema=False)
def ui_codec_decode(
    body: PayloadsIn, request: Request, state: StateDep, key: Cookie_ = None
) -> PayloadsOut:
    return decode(state, _signed_in(state, request, key, Role.VIEWER), body)


@router.post("/ui/codec/encode", include_in_schema=False)
async def ui_codec_encode(
    body: PayloadsIn, request: Request, state: StateDep, key: Cookie_ = None
) -> PayloadsOut:
    return await encode(state, _signed_in(state, request, key, Role.RESPONDER), body)


class CodecCors:
    """CORS for the codec paths only, for the configured Temporal UI origins (credentials
    allowed: the UI sends the sign-in cookie)."""

    def __init__(self, app: Any, *, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = set(origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(("/codec/", "/ui/codec/")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode()
        allowed = origin in self.origins
        cors = (
            [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-allow-credentials", b"true"),
                (b"vary", b"Origin"),
            ]
            if allowed
            else []
        )
        if scope["method"] == "OPTIONS":
            status = 204 if allowed else 403
            preflight = [
                *cors,
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (
                    b"access-control-allow-headers",
                    b"authorization, content-type, x-namespace",
                ),
                (b"access-control-max-age", b"600"),
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": preflight if allowed else [],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Any) -> None:
            if message["type"] == "http.response.start" and cors:
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
