"""What the dashboard shows, read from the precomputed aggregates; used by the API and the page."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import parse_qsl
from uuid import UUID

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sales_common.logging import get_logger
from sales_common.uploads import UploadSummary

from dashboard.figures import money
from dashboard.models import (
    DayTotal,
    OtherProducts,
    PeriodTotals,
    ProductPage,
    ProductSort,
    ProductTotal,
    RejectedRow,
    RejectionPage,
    SortOrder,
    Summary,
    UploadDetail,
    UploadPage,
)
from dashboard.periods import FROM, TO, Period, period_of
from dashboard.repository import DashboardRepository

log = get_logger(__name__)

SUMMARY_DAYS = 31  # the daily series of all time, unless the caller asks for another span
MAX_DAYS = 366  # the longest daily series one summary holds


class SummaryQuery(NamedTuple):
    period: Period
    top: int
    days: int | None  # None: the whole period, at most MAX_DAYS; all time: SUMMARY_DAYS

    @property
    def series_days(self) -> int:
        if self.days is not None:
            return self.days
        return min(self.period.days or SUMMARY_DAYS, MAX_DAYS)


class SummaryParams(BaseModel):
    """The summary's query parameters."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: date | None = Field(default=None, alias="from", description=FROM)
    to: date | None = Field(default=None, description=TO)
    top: int | None = Field(
        default=None, ge=1, le=100, description="products listed one by one (default 10)"
    )
    days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DAYS,
        description="days in the daily series (default: the period's)",
    )

    @classmethod
    def openapi_parameters(cls) -> list[dict[str, Any]]:
        """These fields as OpenAPI query parameters, for a route that parses them itself."""
        properties = cls.model_json_schema(by_alias=True)["properties"]
        return [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": schema.get("description", ""),
                "schema": {k: v for k, v in schema.items() if k != "description"},
            }
            for name, schema in properties.items()
        ]


@functools.lru_cache(maxsize=1024)  # viewers ask the same few queries, many times a second
def summary_query(query_string: bytes, default_top: int) -> SummaryQuery:
    """The summary's query from its raw query string; a bad one raises a 422 as FastAPI would.
    Blank values count as absent (an empty date field of a form)."""
    values = {k: v for k, v in parse_qsl(query_string.decode("latin-1")) if v}
    try:
        params = SummaryParams.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("query", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
        ) from exc
    return SummaryQuery(period_of(params.from_, params.to), params.top or default_top, params.days)


async def read_summary(repo: DashboardRepository, query: SummaryQuery) -> Summary:
    period = query.period
    rows = await repo.top_products(period, query.top)
    top = [ProductTotal.model_validate(dict(r)) for r in rows if r["product"] is not None]
    rest = next((r for r in rows if r["product"] is None), None)
    previous_period = period.previous()
    previous = None
    if previous_period is not None:
        totals = await repo.period_totals(previous_period)
        assert totals is not None  # an aggregate without GROUP BY always answers one row
        previous = PeriodTotals(period=previous_period, **dict(totals))
    return Summary(
        period=period,
        total_sales=sum((r["total_amount"] for r in rows), Decimal("0.00")),
        valid_count=sum(r["sales_count"] for r in rows),
        product_count=sum(r["products"] for r in rows),
        products=top,
        other=None
        if rest is None
        else OtherProducts(
            product_count=rest["products"],
            total_amount=rest["total_amount"],
            quantity=rest["quantity"],
            sales_count=rest["sales_count"],
        ),
        daily=[
            DayTotal.model_validate(dict(r))
            for r in await repo.daily_totals(period, query.series_days)
        ],
        previous=previous,
        rejected_count=await repo.rejected_rows(),
        rejections_by_rule={r["rule"]: r["count"] for r in await repo.rule_counts()},
    )


class CachedSummary(NamedTuple):
    read_at: float
    summary: Summary
    body: bytes  # the JSON the API answers, serialised once


class SummaryCache:
    """Summaries, serialised, reused for `ttl_s`: many viewers polling (the API and the
    page's live refresh alike) cost one read per query.

    A query in use is read again in the background once its entry is half its `ttl_s` old,
    so readers keep getting the entry they have instead of queueing behind the read each
    time it expires (which put the read's time on the dashboard's p99 once a second); an
    entry is never served older than `ttl_s`. Concurrent misses of one query share one
    read (a lock per query), so a burst cannot stampede the database; at most
    `max_entries` queries are kept, so callers asking for ever new ranges cannot grow it
    without bound.
    """

    def __init__(self, ttl_s: float, max_entries: int = 256) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[SummaryQuery, CachedSummary] = OrderedDict()
        self._locks: dict[SummaryQuery, asyncio.Lock] = {}
        self._refreshes: dict[SummaryQuery, asyncio.Task[CachedSummary]] = {}

    async def get(self, repo: DashboardRepository, query: SummaryQuery) -> CachedSummary:
        entry = self._entries.get(query)
        if entry is not None:
            age = time.monotonic() - entry.read_at
            if age < self._ttl_s:
                if age >= self._ttl_s / 2 and query not in self._refreshes:
                    self._refresh(repo, query)
                return entry
        return await self._read(repo, query, reuse_younger_than_s=self._ttl_s)

    def _refresh(self, repo: DashboardRepository, query: SummaryQuery) -> None:
        task = asyncio.create_task(self._read(repo, query, reuse_younger_than_s=self._ttl_s / 2))
        self._refreshes[query] = task
        task.add_done_callback(functools.partial(self._refreshed, query))

    def _refreshed(self, query: SummaryQuery, task: asyncio.Task[CachedSummary]) -> None:
        del self._refreshes[query]
        if not task.cancelled() and (error := task.exception()) is not None:
            # Readers read it themselves once the entry expires, and get the error then.
            log.warning("summary_refresh_failed", error=repr(error)[:200])

    async def _read(
        self, repo: DashboardRepository, query: SummaryQuery, reuse_younger_than_s: float
    ) -> CachedSummary:
        lock = self._locks.setdefault(query, asyncio.Lock())
        async with lock:
            # Read by whoever held the lock before us: reused.
            entry = self._entries.get(query)
            if entry is not None and time.monotonic() - entry.read_at < reuse_younger_than_s:
                return entry
            started = time.monotonic()  # the entry's age counts from the start of its read
            summary = await read_summary(repo, query)
            entry = CachedSummary(started, summary, summary_json(summary))
            self._entries[query] = entry
            self._entries.move_to_end(query)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            # Locks of evicted queries, and of reads that failed, go too once unused.
            for key in [k for k, v in self._locks.items() if not v.locked()]:
                if key not in self._entries:
                    del self._locks[key]
        return entry

    async def close(self) -> None:
        """Stop the background reads (before the pool they read from closes)."""
        for task in list(self._refreshes.values()):
            task.cancel()
        await asyncio.gather(*self._refreshes.values(), return_exceptions=True)


def summary_json(summary: Summary) -> bytes:
    return summary.model_dump_json(by_alias=True).encode()


async def read_products(
    repo: DashboardRepository,
    period: Period,
    sort: ProductSort,
    order: SortOrder,
    limit: int,
    offset: int,
) -> ProductPage:
    rows = await repo.products(period, sort, order, limit, offset)
    count = await repo.product_count(period)
    return ProductPage(
        period=period,
        product_count=count,
        items=[ProductTotal.model_validate(dict(r)) for r in rows],
        next_offset=offset + limit if offset + limit < count else None,
    )


PRODUCT_COLUMNS = ["product", "total_amount", "quantity", "sales_count"]


async def product_table(
    repo: DashboardRepository, period: Period, sort: ProductSort, order: SortOrder
) -> Iterator[list[object]]:
    """Every product of the period, as the CSV export's rows (exact amounts)."""
    rows = await repo.products(period, sort, order, limit=None, offset=0)
    return ([r["product"], money(r["total_amount"]), r["quantity"], r["sales_count"]] for r in rows)


def _bad_cursor() -> RequestValidationError:
    # As a validation error, so the 422 has the same shape as any other bad parameter.
    return RequestValidationError(
        [
            {
                "loc": ("query", "cursor"),
                "msg": "not a cursor this API gave out",
                "type": "value_error",
            }
        ]
    )


def _encode_cursor(*parts: str | int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[object]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(parts, list):
        raise _bad_cursor()
    return parts


def _upload_position(cursor: str) -> tuple[datetime, UUID]:
    parts = _decode_cursor(cursor)
    try:
        created_at, upload_id = parts
        position = datetime.fromisoformat(str(created_at)), UUID(str(upload_id))
    except ValueError as exc:
        raise _bad_cursor() from exc
    if position[0].tzinfo is None:  # compared with a timestamptz: must say its zone
        raise _bad_cursor()
    return position


async def read_uploads(repo: DashboardRepository, limit: int, cursor: str | None) -> UploadPage:
    after = None if cursor is None else _upload_position(cursor)
    rows = await repo.recent_uploads(limit + 1, after)  # one more: is there a next page?
    items = [UploadSummary.model_validate(dict(r)) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return UploadPage(
        items=items,
        next_cursor=None
        if last is None
        else _encode_cursor(last.created_at.isoformat(), str(last.upload_id)),
    )


async def read_rejections(
    repo: DashboardRepository, upload_id: UUID, limit: int, cursor: str | None
) -> RejectionPage:
    after_row = None
    if cursor is not None:
        parts = _decode_cursor(cursor)
        if len(parts) != 1 or not isinstance(parts[0], int) or not -(2**31) <= parts[0] < 2**31:
            raise _bad_cursor()
        after_row = parts[0]
    rows = await repo.rejections(upload_id, limit + 1, after_row=after_row)
    items = [RejectedRow.model_validate(dict(r)) for r in rows[:limit]]
    last = items[-1].row_number if len(rows) > limit else None
    return RejectionPage(items=items, next_cursor=None if last is None else _encode_cursor(last))


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
