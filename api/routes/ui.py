"""`/ui/health`: the runbook health view as a server-rendered page a team lead opens in a
browser. No JavaScript. Sign-in takes an API key and keeps it in an HttpOnly, SameSite=Strict
cookie scoped to /ui; `Authorization: Bearer` works too (curl, scripts)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from api.deps import StateDep, principal_for_key, signed_in
from ddoc.platform.tenancy import Principal
from ddoc.trust import learning

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)

COOKIE = "ddoc_ui_key"
NONE = "\N{EN DASH}"  # an empty cell
_MAX_FORM_BYTES = 4096


@router.get("/login")
def login_form() -> HTMLResponse:
    return HTMLResponse(_page("Sign in", _login_body(None)))


@router.post("/login")
async def login(request: Request, state: StateDep) -> Response:
    raw = await request.body()
    if len(raw) > _MAX_FORM_BYTES:
        return HTMLResponse(_page("Sign in", _login_body("That is not an API key.")), 400)
    key = (parse_qs(raw.decode("utf-8", "replace")).get("api_key") or [""])[0].strip()
    principal = principal_for_key(state, key) if key else None
    if principal is None:
        return HTMLResponse(_page("Sign in", _login_body("Unknown or revoked API key.")), 401)
    response = RedirectResponse("/ui/health", status_code=303)
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
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/health")
def health_page(
    request: Request,
    state: StateDep,
    ddoc_ui_key: Annotated[str | None, Cookie()] = None,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> Response:
    principal = signed_in(state, request, ddoc_ui_key)
    if principal is None:
        return RedirectResponse("/ui/login", status_code=303)
    with Session(state.engine) as session:
        report = learning.health(session, tenant_id=principal.tenant_id, days=days)
    return HTMLResponse(_page("Runbook health", _health_body(report, principal)))


# --- rendering ------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · dd0c/run</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2433; background: #f5f6f8; }}
header {{ background: #1d2433; color: #fff; padding: 12px 24px; display: flex; gap: 16px;
         align-items: baseline; }}
header h1 {{ font-size: 18px; margin: 0; }} header .meta {{ opacity: .75; }}
header form {{ margin-left: auto; }}
main {{ padding: 16px 24px; max-width: 1200px; }}
section {{ background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 12px 16px;
          margin-bottom: 16px; }}
h2 {{ font-size: 15px; margin: 0 0 8px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ border: 1px solid #dde1e8; border-radius: 6px; padding: 8px 12px; min-width: 130px; }}
.card b {{ display: block; font-size: 22px; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef0f4;
          vertical-align: top; }}
th {{ font-weight: 600; color: #4a5468; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.pill {{ border-radius: 10px; padding: 0 8px; font-size: 12px; background: #eef0f4; }}
.autopilot {{ background: #d9f2e3; }} .read_along {{ background: #fdf0d5; }}
.stale {{ color: #a3261b; }} .empty {{ color: #6b7385; font-style: italic; }}
code {{ font-size: 12px; }}
</style></head><body>{body}</body></html>"""


def _login_body(error: str | None) -> str:
    message = f'<p class="stale" role="alert">{_e(error)}</p>' if error else ""
    return f"""<header><h1>dd0c/run</h1></header><main><section>
<h2>Sign in</h2>{message}
<form method="post" action="/ui/login">
<label>API key <input type="password" name="api_key" autocomplete="off" size="60" required>
</label> <button type="submit">Sign in</button></form>
<p class="empty">Any role can read this page; the key stays in an HttpOnly cookie.</p>
</section></main>"""


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{value:.0%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 120 else f"{minutes:.0f} min"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else NONE


def _table(headers: list[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _runbook_cell(row: dict[str, Any]) -> str:
    return f"{_e(row['title'])}<br><code>{_e(row['runbook_id'])}</code> v{_e(row['version'])}"


def _health_body(report: dict[str, Any], principal: Principal) -> str:
    totals = report["totals"]
    trust = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(totals["by_trust_level"].items()))
    by_status = ", ".join(
        f"{_e(k)} {_e(v)}" for k, v in sorted(totals["executions_by_status"].items())
    )
    cards = [
        ("Runbooks", totals["runbooks"], trust or "none yet"),
        ("Incidents", totals["incidents"], f"last {report['period_days']} days"),
        ("Without a runbook", totals["incidents_without_runbook"], "coverage gaps below"),
        ("Executions", totals["executions"], by_status or "none"),
        ("Stale runbooks", totals["stale_runbooks"], "flagged for review"),
        ("Open suggestions", totals["open_suggestions"], "learned revisions"),
    ]
    card_html = "".join(
        f'<div class="card" data-total="{_e(label)}"><b>{_e(value)}</b>{_e(label)}'
        f"<br><small>{hint}</small></div>"
        for label, value, hint in cards
    )
    ranking = [
        "<tr>"
        f'<td class="num">{n}</td><td>{_runbook_cell(r)}</td>'
        f'<td><span class="pill {_e(r["trust_level"])}">{_e(r["trust_level"])}</span></td>'
        f'<td class="num">{_e(NONE if r["score"] is None else r["score"])}</td>'
        f'<td class="num">{_pct(r["success_rate"])}</td>'
        f'<td class="num">{_duration(r["median_time_to_resolve_seconds"])}</td>'
        f'<td class="num">{_e(r["executions_in_period"])}</td>'
        f'<td class="num{" stale" if r["stale"] else ""}">{_e(r["confidence"])}</td>'
        f"<td>{_e(', '.join(r['dead_steps']) or NONE)}</td>"
        f"<td>{_e(r['open_suggestion'] or NONE)}</td>"
        "</tr>"
        for n, r in enumerate(report["ranking"], 1)
    ]
    stale = [
        f'<tr><td>{_runbook_cell(r)}</td><td class="num stale">{_e(r["confidence"])}</td>'
        f"<td>{_e('; '.join(r['stale_reasons']))}</td></tr>"
        for r in report["stale"]
    ]
    gaps = [
        f"<tr><td>{_e(g['alert'])}</td><td>{_e(g['service'] or NONE)}</td>"
        f'<td class="num">{_e(g["incidents"])}</td><td class="num">{_e(g["alerts"])}</td>'
        f"<td>{_when(g['last_seen'])}</td>"
        f"<td>{'suggested only' if g['had_suggestions'] else 'no match'}</td></tr>"
        for g in report["coverage_gaps"]
    ]
    usage = [
        f'<tr><td>{_runbook_cell(r)}</td><td class="num">{_e(r["executions_in_period"])}</td>'
        f'<td class="num">{_e(r["executions_counted"])}</td></tr>'
        for r in report["usage"]
        if r["executions_in_period"]
    ]
    return f"""<header><h1>Runbook health</h1>
<span class="meta">tenant {_e(principal.tenant_id)} · last {_e(report["period_days"])} days ·
generated {_when(report["generated_at"])}</span>
<form method="post" action="/ui/logout"><button type="submit">Sign out</button></form></header>
<main>
<section id="totals"><h2>Totals</h2><div class="cards">{card_html}</div></section>
<section id="ranking"><h2>Effectiveness ranking</h2>{
        _table(
            [
                "#",
                "Runbook",
                "Trust",
                "Score",
                "Success",
                "Median time to resolve",
                "Executions",
                "Confidence",
                "Dead steps",
                "Suggestion",
            ],
            ranking,
            "No runbooks yet.",
        )
    }</section>
<section id="stale"><h2>Stale runbooks (review)</h2>{
        _table(["Runbook", "Confidence", "Why"], stale, "No stale runbooks.")
    }</section>
<section id="gaps"><h2>Coverage gaps: alerts with no runbook</h2>{
        _table(
            ["Alert", "Service", "Incidents", "Alerts", "Last seen", "Matching"],
            gaps,
            "Every alert in the period had a runbook.",
        )
    }</section>
<section id="usage"><h2>Usage</h2>{
        _table(
            ["Runbook", "Executions in period", "Finished (scored)"],
            usage,
            "No executions in the period.",
        )
    }</section>
</main>"""
