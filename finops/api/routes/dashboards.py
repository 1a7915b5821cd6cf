"""`GET /dashboards/...`: the finance, team and findings dashboards as HTML, their CSVs, and a browser login.

A browser cannot send `Authorization: Bearer`, so `GET /dashboards/login?key=fo_...` (or the form it shows,
which POSTs the key) checks the key and stores it in an HttpOnly, SameSite=Lax cookie limited to the
`/dashboards` path, then redirects into the dashboards; `GET /dashboards/logout` clears it. Every dashboard
route takes the bearer header or that cookie, with the API's role rules: a key scoped to teams sees only
its teams, a team filter naming another team is 403 `out_of_scope`, another team's dashboard is 404 like
one that does not exist. A browser without a (valid) key is sent to the login form; any other client gets
the API's 401.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

from finops.api.auth import Caller, Permission, authenticate, bearer, public
from finops.api.deps import DbDep, SettingsDep
from finops.api.errors import Forbidden, Unauthenticated, UnsupportedMediaType
from finops.api.routing import read_limited
from finops.dashboards.assets import plotly_js_gzip, plotly_js_name
from finops.dashboards.data import Context
from finops.dashboards.export import csv_text
from finops.dashboards.filters import ViewFilter, parse_filter
from finops.dashboards.page import Links, render_page
from finops.dashboards.views import build_view, load_frame
from finops.errors import InputError, NotFound
from finops.settings import Settings
from finops.store.db import Database
from finops.store.reports import latest_as_of, spend_teams

router = APIRouter(tags=["dashboards"])

COOKIE = "finops_key"
COOKIE_PATH = "/dashboards"
COOKIE_MAX_AGE_S = 12 * 3600
Names = Annotated[list[str] | None, Query(max_length=100)]
Text = Annotated[str | None, Query(max_length=40)]
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
}


# ------------------------------------------------------------------------------------- who is calling


async def _dashboard_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller | None:
    """The caller from the bearer header, else from the login cookie; None for a browser that has neither
    (or a stale cookie): its handler redirects it to the login form."""
    cookie = request.cookies.get(COOKIE)
    if credentials is None and cookie:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    try:
        caller = await authenticate(request, credentials)
    except Unauthenticated:
        if "text/html" in request.headers.get("accept", "") and request.headers.get("authorization") is None:
            return None
        raise
    if not caller.can(Permission.READ):
        raise Forbidden(
            "This key cannot read spend data; dashboards need a key with role admin, finance, owner or engineer."
        )
    return caller


_dashboard_caller.finops_access = Permission.READ  # type: ignore[attr-defined]
DashboardCaller = Annotated[Caller | None, Depends(_dashboard_caller)]


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"{_root(request)}/dashboards/login?{urlencode({'next': target})}", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


# -------------------------------------------------------------------------------------------- pages


@router.get("/dashboards", response_class=HTMLResponse, summary="The caller's dashboard")
def dashboards_home(request: Request, caller: DashboardCaller) -> Response:
    """A key of one team goes to its team's dashboard, any other to the finance overview."""
    if caller is None:
        return _login_redirect(request)
    if caller.teams is not None and len(caller.teams) == 1:
        (team,) = caller.teams
        return RedirectResponse(f"{_root(request)}/dashboards/teams/{quote(team, safe='')}", status_code=303)
    return RedirectResponse(f"{_root(request)}/dashboards/finance", status_code=303)


@router.get("/dashboards/finance", response_class=HTMLResponse, summary="Finance overview")
def finance_dashboard(
    request: Request,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    team: Names = None,
    grain: Text = None,
) -> Response:
    """Spend this month vs last, by team and feature over time, token vs GPU, top models, month-end forecasts
    against budgets, the named buckets and the reconciliation gap against provider bills."""
    if caller is None:
        return _login_redirect(request)
    ctx = _context(db, settings, caller, start, end, grain, team)
    return _page(request, "finance", ctx, caller)


@router.get("/dashboards/findings", response_class=HTMLResponse, summary="Findings")
def findings_dashboard(
    request: Request,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    team: Names = None,
    grain: Text = None,
) -> Response:
    """Retry storms, cost spikes and outlier requests with their dollars and the ids of their events."""
    if caller is None:
        return _login_redirect(request)
    ctx = _context(db, settings, caller, start, end, grain, team)
    return _page(request, "findings", ctx, caller)


@router.get("/dashboards/teams/{team}", response_class=HTMLResponse, summary="A team's dashboard")
def team_dashboard(
    request: Request,
    team: str,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    grain: Text = None,
) -> Response:
    """What a budget owner sees: the budget burn-down with its forecast cone and projected breach date, the
    team's features, models, open findings and alerts."""
    if caller is None:
        return _login_redirect(request)
    ctx = _context(db, settings, caller, start, end, grain, None, of_team=team)
    return _page(request, "team", ctx, caller)


# --------------------------------------------------------------------------------------------- CSVs


@router.get("/dashboards/finance/{item}.csv", summary="CSV of a finance overview chart")
def finance_csv(
    item: str,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    team: Names = None,
    grain: Text = None,
) -> Response:
    """The data behind one chart, exact to the last digit."""
    caller = _required(caller)
    ctx = _context(db, settings, caller, start, end, grain, team)
    return _csv("finance", item, ctx)


@router.get("/dashboards/findings/{item}.csv", summary="CSV of a findings chart or table")
def findings_csv(
    item: str,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    team: Names = None,
    grain: Text = None,
) -> Response:
    caller = _required(caller)
    ctx = _context(db, settings, caller, start, end, grain, team)
    return _csv("findings", item, ctx)


@router.get("/dashboards/teams/{team}/{item}.csv", summary="CSV of a team dashboard chart or table")
def team_csv(
    team: str,
    item: str,
    caller: DashboardCaller,
    db: DbDep,
    settings: SettingsDep,
    start: Text = None,
    end: Text = None,
    grain: Text = None,
) -> Response:
    caller = _required(caller)
    ctx = _context(db, settings, caller, start, end, grain, None, of_team=team)
    return _csv("team", item, ctx)


# ---------------------------------------------------------------------------------- login, assets


@router.get("/dashboards/login", response_class=HTMLResponse, dependencies=[public()], summary="Browser login")
async def login_page(
    request: Request,
    key: Annotated[str | None, Query(max_length=200)] = None,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> Response:
    """With `key`: check it, keep it in an HttpOnly cookie for `/dashboards`, redirect to `next` (a
    dashboard path). Without: a form that asks for the key."""
    if key is None:
        return _login_form(next_path, None, 200)
    return await _login(request, key, next_path)


@router.post("/dashboards/login", response_class=HTMLResponse, dependencies=[public()], summary="Browser login form")
async def login_form_post(request: Request) -> Response:
    """The login form's POST (`application/x-www-form-urlencoded`: `key`, `next`)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "The login form is sent as application/x-www-form-urlencoded; send `key=...`.",
            accepted=["application/x-www-form-urlencoded"],
        )
    settings = request.app.state.finops.settings
    body = await read_limited(request, settings.api_max_body_bytes, "FINOPS_API_MAX_BODY_BYTES")
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    return await _login(request, fields.get("key", [""])[0], fields.get("next", [""])[0] or None)


@router.get("/dashboards/logout", dependencies=[public()], summary="Browser logout")
async def logout(request: Request) -> Response:
    """Forget the key cookie and go back to the login form."""
    response = RedirectResponse(f"{_root(request)}/dashboards/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.get("/dashboards/static/{name}", dependencies=[public()], summary="plotly.js for the dashboards")
async def static_asset(request: Request, name: str) -> Response:
    """The plotly.js bundled with the `plotly` package (no CDN), gzipped, cached for good (the name changes
    with the content)."""
    if name != plotly_js_name():
        raise NotFound("No dashboard asset with that name.")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(plotly_js_gzip(), media_type="text/javascript", headers=headers)
    return Response(gzip.decompress(plotly_js_gzip()), media_type="text/javascript", headers=headers)


async def _login(request: Request, key: str, next_path: str | None) -> Response:
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key.strip())
    try:
        await authenticate(request, credentials)
    except Unauthenticated:
        return _login_form(next_path, "That key is not valid: it is unknown, revoked, or mistyped.", 401)
    target = next_path if _is_dashboard_path(next_path) else "/dashboards"
    response = RedirectResponse(f"{_root(request)}{target}", status_code=303)
    response.set_cookie(
        COOKIE,
        key.strip(),
        max_age=COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _is_dashboard_path(path: str | None) -> bool:
    """Only a path of this site's dashboards: never another host (`//evil`, `/\\evil`) or a scheme."""
    return path is not None and path.startswith("/dashboards") and "\\" not in path and "//" not in path


def _login_form(next_path: str | None, problem: str | None, status: int) -> HTMLResponse:
    from html import escape

    message = f'<p class="problem">{escape(problem)}</p>' if problem else ""
    hidden = ""
    if next_path is not None and _is_dashboard_path(next_path):
        hidden = f'<input type="hidden" name="next" value="{escape(next_path)}">'
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "<title>finops · log in</title><style>body{font:15px system-ui,sans-serif;margin:12vh auto;max-width:440px;"
        "color:#1d2430}input[type=password]{width:100%;padding:8px;margin:8px 0}button{padding:7px 16px;"
        "background:#1f4e79;color:#fff;border:0;border-radius:5px}.problem{color:#b00020}</style></head><body>"
        "<h1>finops dashboards</h1><p>Paste an API key (<code>finops keys create --role finance</code>). "
        f'It is kept in a cookie of this site for 12 hours.</p>{message}<form method="post" action="login">'
        '<input type="password" name="key" placeholder="fo_..." autocomplete="off" required autofocus>'
        f'{hidden}<button type="submit">Open the dashboards</button></form></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers=_SECURITY_HEADERS)


# ------------------------------------------------------------------------------------------ helpers


def _required(caller: Caller | None) -> Caller:
    if caller is None:
        raise Unauthenticated(
            "This route needs an API key: send `Authorization: Bearer <key>` or log in at /dashboards/login."
        )
    return caller


def _context(
    db: Database,
    settings: Settings,
    caller: Caller,
    start: str | None,
    end: str | None,
    grain: str | None,
    team: list[str] | None,
    *,
    of_team: str | None = None,
) -> Context:
    """What a view reads: the caller's filter (`_filter`), and for a team's view that team, once the caller
    may see it (`_visible_team`)."""
    if of_team is not None:
        _visible_team(db, caller, of_team)
    view_filter = _filter(db, caller, start, end, grain, team)
    return Context(db, view_filter, settings.api_query_time_limit_ms, team=of_team)


def _filter(
    db: Database, caller: Caller, start: str | None, end: str | None, grain: str | None, team: list[str] | None
) -> ViewFilter:
    """The view's filter: the caller's teams (`OutOfScope` for another team), and for a key that sees every
    team, only teams that have spend (an unknown name is an `InputError`)."""
    teams = caller.team_filter(team)
    if teams is not None and caller.teams is None:
        known = set(spend_teams(db, teams=teams))
        unknown = [t for t in teams if t not in known]
        if unknown:
            raise InputError(
                f"Team '{unknown[0][:100]}' has no spend in the database; pick teams from the dashboard's list.",
                parameter="team",
            )
    last_run = latest_as_of(db)
    return parse_filter(
        start=start, end=end, grain=grain, teams=teams, as_of=last_run or datetime.now(UTC), ran=last_run is not None
    )


def _visible_team(db: Database, caller: Caller, team: str) -> None:
    """Another team's dashboard, or one of a team with no spend, is `NotFound` (the same answer)."""
    if not caller.can_see(team) or not spend_teams(db, teams=[team]):
        raise NotFound("No team dashboard with that name.")


def _page(request: Request, name: str, ctx: Context, caller: Caller) -> Response:
    root = _root(request)
    query = urlencode(ctx.filter.query(), doseq=True)
    shared = urlencode({k: v for k, v in ctx.filter.query().items() if k != "team"}, doseq=True)
    here = f"{root}/dashboards/teams/{quote(ctx.team, safe='')}" if ctx.team else f"{root}/dashboards/{name}"
    csv_query = shared if ctx.team else query
    links = Links(
        finance=f"{root}/dashboards/finance?{query}",
        findings=f"{root}/dashboards/findings?{query}",
        team=_team_link(root, shared),
        csv=lambda item: f"{here}/{quote(item)}.csv?{csv_query}",
        plotly_src=f"{root}/dashboards/static/{plotly_js_name()}",
        form_action=here,
        logout=f"{root}/dashboards/logout",
    )
    scope = ", ".join(sorted(caller.teams)) if caller.teams is not None else "every team"
    who = f"{caller.role.value} key {caller.key_id}{f' ({caller.name})' if caller.name else ''} · {scope}"
    teams = spend_teams(ctx.db, teams=sorted(caller.teams) if caller.teams is not None else None)
    text = render_page(build_view(name, ctx), links, teams=teams, who=who)
    return _compressed(request, text.encode(), "text/html; charset=utf-8")


def _team_link(root: str, query: str) -> Callable[[str], str]:
    return lambda team: f"{root}/dashboards/teams/{quote(team, safe='')}?{query}"


def _csv(view: str, item: str, ctx: Context) -> Response:
    text = csv_text(load_frame(view, item, ctx))
    name = f"{view}{'-' + ctx.team if ctx.team else ''}-{item}.csv".replace('"', "")
    headers = {**_SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{quote(name)}"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


def _compressed(request: Request, body: bytes, media_type: str) -> Response:
    headers = {**_SECURITY_HEADERS, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 1024:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body, compresslevel=5)
    return Response(body, media_type=media_type, headers=headers)
