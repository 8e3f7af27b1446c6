"""The web page for people: log in, look at the figures, log out.

The session is a short-lived JWT in a cookie: HttpOnly, SameSite=Strict, Secure when served
over TLS. Failed logins are limited per user and per address (throttle.py, 429 once exceeded).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sales_common.auth import (
    SCOPE_SALES_READ,
    Principal,
    TokenIssuer,
    TokenVerifier,
    hash_secret,
    verify_secret,
)
from sales_common.errors import Unauthorized

from dashboard.deps import SettingsDep, StateDep, ThrottleDep
from dashboard.pages import APP_JS, STYLE, dashboard_body, layout, login_page
from dashboard.service import SUMMARY_DAYS, read_upload
from dashboard.state import DashboardState

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "sales_session"
# Verifying a made-up user costs as much as a real one, so timing does not reveal names.
_DUMMY_HASH = hash_secret("no user has this password")


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


async def _viewer(request: Request, verifier: TokenVerifier) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        principal = await verifier.verify(token)
    except Unauthorized:
        return None
    return principal if SCOPE_SALES_READ in principal.scopes else None


@router.get("/static/app.css")
async def app_css() -> Response:
    return Response(STYLE, media_type="text/css", headers={"Cache-Control": "max-age=300"})


@router.get("/static/app.js")
async def app_js() -> Response:
    return Response(APP_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


@router.get("/login")
async def login_form() -> HTMLResponse:
    return HTMLResponse(login_page())


@router.post("/login")
async def login(
    request: Request,
    settings: SettingsDep,
    throttle: ThrottleDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    address = request.client.host if request.client else "unknown"
    keys = [f"user:{username}", f"address:{address}"]
    if throttle.blocked(keys):
        window = settings.login_limits.window_s
        return HTMLResponse(
            login_page("Too many failed attempts; try again later.", username),
            status_code=429,
            headers={"Retry-After": str(window)},
        )
    user = settings.users.get(username)
    valid = (
        verify_secret(password, user.password_hash if user else _DUMMY_HASH) and user is not None
    )
    if not valid or user is None:
        throttle.fail(keys)
        return HTMLResponse(login_page("Wrong user name or password.", username), status_code=401)
    throttle.clear(keys)
    issuer = TokenIssuer(settings.auth, ttl_s=settings.session_ttl_s)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        issuer.issue(username, user.scopes),
        max_age=settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def _body(state: DashboardState, upload: UUID | None) -> str:
    repo = state.repository
    summary = orjson.loads(await state.summary_cache.get(repo, SUMMARY_DAYS))
    uploads = [dict(r) for r in await repo.recent_uploads(20)]
    selected = None
    if upload is not None:
        detail = await read_upload(repo, upload, limit=500)
        selected = detail.model_dump(mode="json") if detail else None
    return dashboard_body(summary, uploads, selected, state.settings.refresh_s)


@router.get("/")
async def page(
    request: Request, state: StateDep, upload: Annotated[UUID | None, Query()] = None
) -> Response:
    principal = await _viewer(request, state.token_verifier)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return HTMLResponse(layout("Sales pipeline", await _body(state, upload), principal.subject))


@router.get("/ui/live")
async def live(
    request: Request, state: StateDep, upload: Annotated[UUID | None, Query()] = None
) -> Response:
    if await _viewer(request, state.token_verifier) is None:
        raise Unauthorized("log in again")
    return HTMLResponse(await _body(state, upload))
