"""The dashboard's read API: summary, products, recent uploads, an upload and its rejections.

Every route needs a bearer token with the `sales:read` scope. Sales figures cover a `from`..`to`
range of days (inclusive, UTC; either end open), answered from the aggregate tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sales_common.errors import NotFound

from dashboard.deps import ReaderDep, RepositoryDep
from dashboard.export import csv_lines
from dashboard.models import (
    ProductPage,
    ProductSort,
    RejectionPage,
    SortOrder,
    Summary,
    UploadDetail,
    UploadPage,
)
from dashboard.periods import FROM, TO, Period, period_of
from dashboard.repository import DashboardRepository
from dashboard.service import (
    PRODUCT_COLUMNS,
    SummaryParams,
    product_table,
    read_products,
    read_rejections,
    read_upload,
    read_uploads,
    summary_query,
)
from dashboard.state import DashboardState

router = APIRouter()

# `from` and `to`; a reversed range is a 422 like any bad parameter (period_of).
FromQuery = Annotated[date | None, Query(alias="from", description=FROM)]
ToQuery = Annotated[date | None, Query(description=TO)]
SortQuery = Annotated[ProductSort, Query(description="the column to sort by")]
OrderQuery = Annotated[SortOrder, Query(description="ascending or descending")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


@router.get(
    "/api/v1/summary",
    response_model=Summary,
    openapi_extra={"parameters": SummaryParams.openapi_parameters()},
    # What FastAPI declares for the routes whose parameters it parses.
    responses={
        422: {
            "description": "Validation Error",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        }
    },
)
async def summary(request: Request, _: ReaderDep) -> Response:
    """Sales totals of the period with the top products and the rest as one, the daily series,
    and the previous period of the same length; at most `summary_cache_s` old."""
    # The query string is parsed here, once per distinct string (summary_query): as FastAPI
    # parameters, from/to/top/days cost this route a fifth of its CPU on every request.
    # The state is read from the request, not taken as a dependency: FastAPI's resolution of
    # each dependency costs this, the hottest route, ~5% of its CPU.
    state = DashboardState.of(request)
    query = summary_query(request.scope["query_string"], state.settings.top_products)
    cached = await state.summary_cache.get(state.repository, query)
    return Response(cached.body, media_type="application/json")


@router.get("/api/v1/products", response_model=ProductPage)
async def products(
    _: ReaderDep,
    repo: RepositoryDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    sort: SortQuery = "total_amount",
    order: OrderQuery = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ProductPage:
    """Every product sold in the period, a page at a time."""
    return await read_products(repo, period_of(from_, to), sort, order, limit, offset)


@router.get("/api/v1/products.csv", response_class=StreamingResponse)
async def products_csv(
    _: ReaderDep,
    repo: RepositoryDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    sort: SortQuery = "total_amount",
    order: OrderQuery = "desc",
) -> StreamingResponse:
    """Every product sold in the period as CSV, exact amounts."""
    period = period_of(from_, to)
    return product_csv_response(await product_table(repo, period, sort, order), period)


def product_csv_response(rows: Iterable[Iterable[object]], period: Period) -> StreamingResponse:
    """The CSV download of the API and of the page (which logs in with a cookie, not a token)."""
    name = "all-time" if period.all_time else f"{period.from_ or 'start'}_{period.to or 'end'}"
    return StreamingResponse(
        csv_lines(PRODUCT_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="products-{name}.csv"'},
    )


@router.get("/api/v1/uploads", response_model=UploadPage)
async def recent_uploads(
    _: ReaderDep,
    repo: RepositoryDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: CursorQuery = None,
) -> UploadPage:
    """Uploads, newest first, a page at a time."""
    return await read_uploads(repo, limit, cursor)


@router.get("/api/v1/uploads/{upload_id}", response_model=UploadDetail)
async def upload_detail(
    upload_id: UUID,
    _: ReaderDep,
    repo: RepositoryDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UploadDetail:
    detail = await read_upload(repo, upload_id, limit, offset)
    if detail is None:
        raise NotFound(f"upload {upload_id} not found")
    return detail


@router.get("/api/v1/uploads/{upload_id}/rejections", response_model=RejectionPage)
async def upload_rejections(
    upload_id: UUID,
    _: ReaderDep,
    repo: RepositoryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: CursorQuery = None,
) -> RejectionPage:
    """An upload's rejected rows with every reason, by row number, a page at a time."""
    if await repo.upload(upload_id) is None:
        raise NotFound(f"upload {upload_id} not found")
    return await read_rejections(repo, upload_id, limit, cursor)


REJECTION_COLUMNS = ["row_number", "rules", "messages", "product", "price", "quantity", "date"]


@router.get("/api/v1/uploads/{upload_id}/rejections.csv", response_class=StreamingResponse)
async def rejections_csv(upload_id: UUID, _: ReaderDep, repo: RepositoryDep) -> StreamingResponse:
    """An upload's rejected rows with every reason, as CSV (formula cells neutralised)."""
    return await rejections_csv_response(repo, upload_id)


async def rejections_csv_response(repo: DashboardRepository, upload_id: UUID) -> StreamingResponse:
    """The CSV download of the API and of the page."""
    if await repo.upload(upload_id) is None:
        raise NotFound(f"upload {upload_id} not found")
    rows = await repo.rejections(upload_id, limit=1_000_000, offset=0)
    table = (
        [
            r["row_number"],
            " ".join(v["rule"] for v in r["violations"]),
            "; ".join(v["message"] for v in r["violations"]),
            *(r["fields"].get(c, "") for c in ("product", "price", "quantity", "date")),
        ]
        for r in rows
    )
    return StreamingResponse(
        csv_lines(REJECTION_COLUMNS, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejections-{upload_id}.csv"'},
    )
