"""What every console page shares: the signed-in person, CSRF tokens, the templates, errors.

Sign-in keeps the API key in an HttpOnly, SameSite=Strict cookie scoped to /ui (or takes
`Authorization: Bearer`, for scripts). Every form carries a CSRF token: an HMAC of that key, so
it is the same in every API process, needs no server state, and cannot be made by a page that
cannot read the cookie. A post signed in by cookie without the right token is refused (403), and
so is one whose Origin is another site's. Roles are checked as the API checks them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Cookie, Depends, FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import StateDep, principal_for_key
from ddoc.contracts.roles import Role
from ddoc.platform.errors import Forbidden
from ddoc.platform.tenancy import Principal

COOKIE = "ddoc_ui_key"
CONSOLE = Path(__file__).resolve().parents[2] / "console"
NONE = "\N{EN DASH}"  # an empty cell

# Pages load nothing from anywhere but the API; no inline script; forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

templates = Jinja2Templates(directory=CONSOLE / "templates")


class SignInRequired(Exception):
    """No valid sign-in: the page redirects to /ui/login (a fragment answers 401)."""


@dataclass(frozen=True)
class User:
    """The person on a console page."""

    principal: Principal
    csrf: str
    by_cookie: bool

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    def may(self, role: Role) -> bool:
        return self.principal.at_least(role)

    def require(self, role: Role) -> None:
        if not self.may(role):
            held = ", ".join(sorted(self.principal.roles)) or "none"
            raise Forbidden(f"this needs the {role.value} role or higher; you have: {held}")


def csrf_token(api_key: str) -> str:
    return hmac.new(api_key.encode(), b"ddoc/run console csrf v1", hashlib.sha256).hexdigest()


def current_user(
    request: Request,
    state: StateDep,
    ddoc_ui_key: Annotated[str | None, Cookie()] = None,
) -> User:
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    key = bearer or ddoc_ui_key
    principal = principal_for_key(state, key) if key else None
    if principal is None or key is None:
        raise SignInRequired
    return User(principal=principal, csrf=csrf_token(key), by_cookie=bearer is None)


UserDep = Annotated[User, Depends(current_user)]


async def checked_form(request: Request, user: UserDep) -> FormData:
    """The posted form, once its CSRF token and origin are right (403 otherwise)."""
    origin = request.headers.get("origin")
    if origin and origin not in ("null", _own_origin(request)):
        raise HTTPException(403, f"a form from {origin} is not accepted here")
    # Parts up to the API's body limit: the handlers say what is too large (422), not a 400.
    form = await request.form(max_files=1, max_fields=200, max_part_size=4 * 1024 * 1024)
    if user.by_cookie:
        sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
        if not hmac.compare_digest(sent, user.csrf):
            raise HTTPException(
                403, "the form's CSRF token is missing or wrong: reload the page and try again"
            )
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", request.url.netloc)
    return f"{request.url.scheme}://{host}"


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value if isinstance(value, str) else default


def page(
    request: Request,
    template: str,
    user: User | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    response = templates.TemplateResponse(
        request, template, {"user": user, **context}, status_code=status_code
    )
    return confined(response)


def confined(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def back_to(url: str, **params: str) -> RedirectResponse:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items() if v)
    return RedirectResponse(f"{url}?{query}" if query else url, status_code=303)


def is_console(request: Request) -> bool:
    return request.url.path == "/ui" or request.url.path.startswith("/ui/")


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An error on a console page, as a page (a fragment request gets the text alone)."""
    if request.headers.get("x-ddoc-fragment"):
        return confined(
            HTMLResponse(f'<p class="error" role="alert">{escape(message)}</p>', status_code)
        )
    return page(request, "error.html", None, status_code, status=status_code, message=message)


def warm_up() -> None:
    """Compile every template now: the first page after a start does not pay for it."""
    for name in templates.env.list_templates(extensions=["html"]):
        templates.env.get_template(name)


def install(app: FastAPI) -> None:
    """The console's own answers to a missing sign-in and to HTTP errors on /ui pages."""
    from fastapi.exception_handlers import (
        http_exception_handler,
        request_validation_exception_handler,
    )

    async def sign_in(request: Request, _: Exception) -> Response:
        if request.headers.get("x-ddoc-fragment"):
            return error_page(request, 401, "your sign-in expired: reload the page")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":  # a form posted after the sign-in expired: start over
            target = "/ui"
        return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if is_console(request) and request.url.path != "/ui/codec":
            return error_page(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not is_console(request):
            return await request_validation_exception_handler(request, exc)
        said = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'request'}: {error['msg']}"
            for error in exc.errors()
        )
        return error_page(request, 422, said)

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


# --- template filters -----------------------------------------------------------------------


def _when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.0%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _highlight(text: str, command: str | None) -> Markup:
    """The step's text with its command marked where the text shows it, exactly as written."""
    if command and command in text:
        before, _, after = text.partition(command)
        return (
            escape(before)
            + Markup('<mark class="cmd">')
            + escape(command)
            + Markup("</mark>")
            + escape(after)
        )
    return escape(text)


def _dash(value: Any) -> Any:
    return NONE if value is None or value == "" or value == [] else value


templates.env.filters.update(
    when=_when, iso=_iso, pct=_pct, duration=_duration, dash=_dash, highlight=_highlight
)
templates.env.globals.update(NONE=NONE, Role=Role)
