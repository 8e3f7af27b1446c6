"""The web page for people: log in, look at the figures, log out.

The session is a short-lived JWT in a cookie: HttpOnly, SameSite=Strict, Secure when served
over TLS. Failed logins are limited per user and per address (throttle.py, 429 once exceeded).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sales_common.auth import (
    SCOPE_SALES_READ,
    Principal,
    TokenIssuer,
    TokenVerifier,
    hash_secret,
    verify_secret,
)
from sales_common.errors import Unauthorized, UnprocessableContent

from dashboard.api import product_csv_response, rejections_csv_response
from dashboard.deps import SettingsDep, StateDep, ThrottleDep
from dashboard.models import ProductSort, SortOrder
from dashboard.pages import (
    APP_JS,
    PRODUCTS_PAGE_SIZE,
    STYLE,
    PageView,
    dashboard_body,
    layout,
    login_page,
)
from dashboard.periods import ALL_TIME, Period, today_utc
from dashboard.service import (
    SummaryQuery,
    product_table,
    read_products,
    read_upload,
    read_uploads,
)
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


def _period(start: str | None, end: str | None) -> tuple[Period, str | None]:
    """The page's range; a bad one is shown as an error over all time, not a bare 422."""
    try:
        return Period.model_validate({"from": start or None, "to": end or None}), None
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        return ALL_TIME, f"That range cannot be shown ({reason}); showing all time."


async def _body(state: DashboardState, params: PageParams) -> str:
    repo = state.repository
    period, error = _period(params.start, params.end)
    top = state.settings.top_products
    summary = await state.summary_cache.get(repo, SummaryQuery(period, top, None))
    all_time = summary
    if not period.all_time:
        all_time = await state.summary_cache.get(repo, SummaryQuery(ALL_TIME, top, None))
    selected = None
    if params.upload is not None:
        selected = await read_upload(repo, params.upload, limit=500)
    view = PageView(
        summary=summary.summary,
        all_time=all_time.summary,
        products=await read_products(
            repo, period, params.sort, params.order, PRODUCTS_PAGE_SIZE, params.offset
        ),
        product_sort=params.sort,
        product_order=params.order,
        products_offset=params.offset,
        uploads=await read_uploads(repo, 20, params.uploads),
        uploads_cursor=params.uploads,
        selected=selected,
        today=today_utc(),
        refresh_s=state.settings.refresh_s,
        error=error,
    )
    return dashboard_body(view)


class PageParams(BaseModel):
    """The page's query: the range, the products table's sort and page, the uploads page."""

    model_config = ConfigDict(populate_by_name=True)

    start: str | None = Field(default=None, alias="from", max_length=20)
    end: str | None = Field(default=None, alias="to", max_length=20)
    sort: ProductSort = "total_amount"
    order: SortOrder = "desc"
    offset: int = Field(default=0, ge=0, le=10_000_000)
    uploads: str | None = Field(default=None, max_length=200)
    upload: UUID | None = None


PageQuery = Annotated[PageParams, Query()]


@router.get("/")
async def page(request: Request, state: StateDep, params: PageQuery) -> Response:
    principal = await _viewer(request, state.token_verifier)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return HTMLResponse(layout("Sales pipeline", await _body(state, params), principal.subject))


@router.get("/ui/live")
async def live(request: Request, state: StateDep, params: PageQuery) -> Response:
    if await _viewer(request, state.token_verifier) is None:
        raise Unauthorized("log in again")
    return HTMLResponse(await _body(state, params))


# The page's downloads: the API's CSV, authorised by the session cookie (a link carries no
# bearer token).
@router.get("/ui/products.csv")
async def products_csv(request: Request, state: StateDep, params: PageQuery) -> Response:
    if await _viewer(request, state.token_verifier) is None:
        raise Unauthorized("log in again")
    period, error = _period(params.start, params.end)
    if error is not None:
        raise UnprocessableContent(error)
    rows = await product_table(state.repository, period, params.sort, params.order)
    return product_csv_response(rows, period)


@router.get("/ui/uploads/{upload_id}/rejections.csv")
async def rejections_csv(upload_id: UUID, request: Request, state: StateDep) -> Response:
    if await _viewer(request, state.token_verifier) is None:
        raise Unauthorized("log in again")
    return await rejections_csv_response(state.repository, upload_id)
