"""Shared request dependencies: the app's state, a database session, the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from ddoc.alerts.intake import Intake
from ddoc.alerts.matching import Matcher
from ddoc.contracts.codec import EncryptionCodec
from ddoc.contracts.roles import Role
from ddoc.contracts.settings import Settings
from ddoc.platform import tenancy
from ddoc.platform.ratelimit import Limit, Limiter, RateLimiter
from ddoc.platform.tenancy import Principal
from ddoc.runbooks.parsing import RunbookParser


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    temporal: Client
    intake: Intake
    matcher: Matcher
    parse: RunbookParser
    rate_limiter: Limiter = field(default_factory=RateLimiter)  # app.py: SharedRateLimiter
    webhook_limit: Limit = field(default_factory=lambda: Limit(200, 5000))
    mcp_limiter: Limiter = field(default_factory=RateLimiter)  # app.py: per API key, shared
    codec: EncryptionCodec | None = None  # payload encryption (None: off)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.ddoc
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with Session(state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def principal_for_key(state: AppState, key: str) -> Principal | None:
    """The key's principal (None: unknown or revoked). Its own short session: the request's
    session (if any) must not hold a connection checked out while the handler awaits Temporal."""
    with Session(state.engine) as session:
        return tenancy.authenticate_api_key(session, key)


def signed_in(state: AppState, request: Request, cookie: str | None) -> Principal | None:
    """The caller of a /ui page (or /ui/codec): the sign-in cookie, or `Authorization: Bearer`
    (scripts)."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else cookie
    return principal_for_key(state, key) if key else None


def get_principal(credentials: BearerDep, state: StateDep) -> Principal:
    if credentials is None:
        raise _unauthorized("missing API key: send `Authorization: Bearer <api key>`")
    principal = principal_for_key(state, credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid or revoked API key")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency: the caller, when its key has `role` or a higher one; else 403. Every
    authenticated route takes one of the four below (a test walks the routes to check)."""

    def dependency(principal: PrincipalDep) -> Principal:
        if not principal.at_least(role):
            held = ", ".join(sorted(principal.roles)) or "none"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {role.value} role or higher; this API key has: {held}",
            )
        return principal

    dependency.ddoc_role = role  # type: ignore[attr-defined]
    return dependency


ViewerDep = Annotated[Principal, Depends(require(Role.VIEWER))]
# MCP tools check Role.ASSISTANT themselves (api/mcp/server.py); no REST route takes it.
ResponderDep = Annotated[Principal, Depends(require(Role.RESPONDER))]
ApproverDep = Annotated[Principal, Depends(require(Role.APPROVER))]
AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the audit trail: the client (`X-Ddoc-Client: cli` marks
    the CLI), the address the server saw (the proxy's, behind one) and what the proxy and the
    client say of themselves."""

    source: str  # api | cli
    address: str | None
    forwarded_for: str | None
    user_agent: str | None

    def audit(self) -> dict[str, str]:
        found = {"source": self.source, "ip": self.address}
        found |= {"forwarded_for": self.forwarded_for, "user_agent": self.user_agent}
        return {k: v for k, v in found.items() if v}


def request_origin(request: Request) -> Origin:
    return Origin(
        source="cli" if request.headers.get("x-ddoc-client") == "cli" else "api",
        address=request.client.host if request.client else None,
        forwarded_for=(request.headers.get("x-forwarded-for") or "")[:200] or None,
        user_agent=(request.headers.get("user-agent") or "")[:200] or None,
    )


OriginDep = Annotated[Origin, Depends(request_origin)]
