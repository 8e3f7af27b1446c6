"""What the dashboard shows, read from the precomputed aggregates; used by the API and the page."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel
from sales_common.uploads import UploadStatus

from dashboard.repository import DashboardRepository


class ProductTotal(BaseModel):
    product: str
    total_amount: Decimal
    quantity: int
    sales_count: int


class DayTotal(BaseModel):
    day: date
    total_amount: Decimal
    sales_count: int


class Summary(BaseModel):
    total_sales: Decimal
    valid_count: int
    rejected_count: int
    products: list[ProductTotal]
    rejections_by_rule: dict[str, int]
    daily: list[DayTotal]


class RejectedRow(BaseModel):
    row_number: int | None
    fields: dict[str, str]
    violations: list[dict[str, str]]


class UploadDetail(UploadStatus):
    rejections: list[RejectedRow]


SUMMARY_DAYS = 31  # the daily series shown unless the caller asks for another span


async def read_summary(repo: DashboardRepository, days: int = SUMMARY_DAYS) -> Summary:
    products = [ProductTotal.model_validate(dict(r)) for r in await repo.product_totals()]
    return Summary(
        total_sales=sum((p.total_amount for p in products), Decimal("0.00")),
        valid_count=sum(p.sales_count for p in products),
        rejected_count=await repo.rejected_rows(),
        products=products,
        rejections_by_rule={r["rule"]: r["count"] for r in await repo.rule_counts()},
        daily=[DayTotal.model_validate(dict(r)) for r in await repo.daily_totals(days)],
    )


class SummaryCache:
    """The summary, serialised, reused for `ttl_s`: many viewers polling (the API and the
    page's live refresh alike) cost one read.

    Concurrent misses share one read (a lock), so a burst cannot stampede the database.
    """

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[int, tuple[float, bytes]] = {}
        self._lock = asyncio.Lock()

    async def get(self, repo: DashboardRepository, days: int) -> bytes:
        entry = self._entries.get(days)
        if entry is not None and time.monotonic() - entry[0] < self._ttl_s:
            return entry[1]
        async with self._lock:
            entry = self._entries.get(days)
            if entry is None or time.monotonic() - entry[0] >= self._ttl_s:
                body = (await read_summary(repo, days)).model_dump_json().encode()
                entry = (time.monotonic(), body)
                self._entries[days] = entry
        return entry[1]


async def read_upload(
    repo: DashboardRepository, upload_id: UUID, limit: int = 1000, offset: int = 0
) -> UploadDetail | None:
    status = await repo.upload(upload_id)
    if status is None:
        return None
    rows = await repo.rejections(upload_id, limit, offset)
    return UploadDetail(
        **status.model_dump(), rejections=[RejectedRow.model_validate(dict(r)) for r in rows]
    )
