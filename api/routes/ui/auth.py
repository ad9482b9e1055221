"""Signing in to the console with an API key, and out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import StateDep, principal_for_key
from api.routes.ui.common import COOKIE, checked_form, current_user, page

router = APIRouter(prefix="/ui", include_in_schema=False)

_MAX_FORM_BYTES = 4096


def _safe_next(target: str | None) -> str:
    """Only a console path: never another site (an open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


@router.get("/login")
def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    return page(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    raw = await request.body()
    form = parse_qs(raw.decode("utf-8", "replace")) if len(raw) <= _MAX_FORM_BYTES else {}
    key = (form.get("api_key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    principal = principal_for_key(state, key) if key else None
    if principal is None:
        error = "That is not an API key." if not form else "Unknown or revoked API key."
        return page(request, "login.html", None, 401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
async def logout(
    request: Request, state: StateDep, ddoc_ui_key: Annotated[str | None, Cookie()] = None
) -> Response:
    """Signs out (CSRF-checked like every form; a stale sign-in just goes to the login)."""
    if ddoc_ui_key and principal_for_key(state, ddoc_ui_key) is not None:
        await checked_form(request, current_user(request, state, ddoc_ui_key))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
