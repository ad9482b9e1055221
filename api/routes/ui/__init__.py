"""The web console: server-rendered pages under /ui (Jinja2 templates in api/console/), over the
same services and role checks as the API. See api/routes/ui/common.py for sign-in and CSRF."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.routes.ui import audit, auth, executions, health, incidents, runbooks
from api.routes.ui.common import CONSOLE, error_page, install, is_console, warm_up

__all__ = ["error_page", "install", "is_console", "router", "static", "warm_up"]

router = APIRouter(include_in_schema=False)


@router.get("/ui")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/incidents", status_code=303)


for part in (auth, health, runbooks, incidents, executions, audit):
    router.include_router(part.router)

static = StaticFiles(directory=CONSOLE / "static")
