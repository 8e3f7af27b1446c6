"""The dashboard's read API: summary, recent uploads, an upload's detail and its rejections."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sales_common.auth import SCOPE_SALES_READ, Principal, require_scope
from sales_common.errors import NotFound

from dashboard.export import csv_lines
from dashboard.repository import DashboardRepository
from dashboard.service import SUMMARY_DAYS, Summary, SummaryCache, UploadDetail, read_upload

router = APIRouter()
ReaderDep = Annotated[Principal, Depends(require_scope(SCOPE_SALES_READ))]


@router.get("/api/v1/summary", response_model=Summary)
async def summary(
    request: Request, _: ReaderDep, days: Annotated[int, Query(ge=1, le=366)] = SUMMARY_DAYS
) -> Response:
    """Totals from the aggregate tables, at most `summary_cache_s` old."""
    cache: SummaryCache = request.state.summary_cache
    body = await cache.get(request.state.repository, days)
    return Response(body, media_type="application/json")


@router.get("/api/v1/uploads", response_model=list[dict[str, Any]])
async def recent_uploads(
    request: Request, _: ReaderDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[dict[str, Any]]:
    repo: DashboardRepository = request.state.repository
    return [dict(r) for r in await repo.recent_uploads(limit)]


@router.get("/api/v1/uploads/{upload_id}", response_model=UploadDetail)
async def upload_detail(
    request: Request,
    upload_id: UUID,
    _: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> UploadDetail:
    repo: DashboardRepository = request.state.repository
    detail = await read_upload(repo, upload_id, limit, offset)
    if detail is None:
        raise NotFound(f"upload {upload_id} not found")
    return detail


REJECTION_COLUMNS = ["row_number", "rules", "messages", "product", "price", "quantity", "date"]


@router.get("/api/v1/uploads/{upload_id}/rejections.csv", response_class=StreamingResponse)
async def rejections_csv(request: Request, upload_id: UUID, _: ReaderDep) -> StreamingResponse:
    """An upload's rejected rows with every reason, as CSV (formula cells neutralised)."""
    repo: DashboardRepository = request.state.repository
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
