"""Every database statement of the dashboard; sales figures come from the aggregate tables only.

`product_totals` answers all time (a row per product); `daily_product_totals` any range of days
(a row per day and product), never `sales`. An upload's status is also what ingest's status
URL answers, so that query lives once in sales_common.uploads and is delegated to from here.
The one write is an erasure, whose SQL is the function erase_customer (0007_erasures.sql, as
0008_daily_product_deltas.sql redefines it).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
from sales_common.db import Pool
from sales_common.uploads import UploadStatus, fetch_upload

from dashboard.models import ProductSort, SortOrder
from dashboard.periods import Period

_ALL_TIME_PRODUCTS = "SELECT product, total_amount, quantity, sales_count FROM product_totals"
_PERIOD_PRODUCTS = """
SELECT product, sum(total_amount) AS total_amount, sum(quantity)::bigint AS quantity,
       sum(sales_count)::bigint AS sales_count
FROM daily_product_totals WHERE day BETWEEN $1 AND $2 GROUP BY product
"""

# The top products one by one, the rest as one row whose product is null; `products` counts them.
_TOP_PRODUCTS = """
WITH p AS ({source}), ranked AS (
    SELECT p.*, CASE WHEN row_number() OVER (ORDER BY total_amount DESC, product) <= {top}
                THEN product END AS shown
    FROM p
)
SELECT shown AS product, sum(total_amount) AS total_amount, sum(quantity)::bigint AS quantity,
       sum(sales_count)::bigint AS sales_count, count(*)::int AS products
FROM ranked GROUP BY shown
ORDER BY shown IS NULL, sum(total_amount) DESC, shown
"""

# Column names from this table only, never from the request.
_SORT_COLUMNS: dict[ProductSort, str] = {
    "total_amount": "total_amount",
    "quantity": "quantity",
    "sales_count": "sales_count",
    "product": "product",
}


def _products_source(period: Period) -> tuple[str, list[object]]:
    """Per-product totals of the period, as SQL and its arguments ($1, $2 when a range)."""
    if period.all_time:
        return _ALL_TIME_PRODUCTS, []
    return _PERIOD_PRODUCTS, list(period.bounds())


def _next(args: list[object], extra: int = 0) -> str:
    """The placeholder after `args` (and `extra` more)."""
    return f"${len(args) + 1 + extra}"


class DashboardRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def top_products(self, period: Period, top: int) -> list[asyncpg.Record]:
        source, args = _products_source(period)
        return await self._pool.fetch(
            _TOP_PRODUCTS.format(source=source, top=_next(args)), *args, top
        )

    async def products(
        self, period: Period, sort: ProductSort, order: SortOrder, limit: int | None, offset: int
    ) -> list[asyncpg.Record]:
        """A page of the period's products; `limit` None: all of them."""
        source, args = _products_source(period)
        direction = "DESC" if order == "desc" else "ASC"
        return await self._pool.fetch(
            f"SELECT * FROM ({source}) p ORDER BY {_SORT_COLUMNS[sort]} {direction}, product"  # noqa: S608 - see _SORT_COLUMNS
            f" LIMIT {_next(args)} OFFSET {_next(args, 1)}",
            *args,
            limit,
            offset,
        )

    async def product_count(self, period: Period) -> int:
        source, args = _products_source(period)
        return int(await self._pool.fetchval(f"SELECT count(*) FROM ({source}) p", *args))  # noqa: S608 - constants

    async def period_totals(self, period: Period) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT coalesce(sum(total_amount), 0) AS total_sales,"
            " coalesce(sum(sales_count), 0)::bigint AS valid_count"
            " FROM daily_product_totals WHERE day BETWEEN $1 AND $2",
            *period.bounds(),
        )

    async def daily_totals(self, period: Period, days: int) -> list[asyncpg.Record]:
        """The latest `days` days with sales in the period."""
        return await self._pool.fetch(
            "SELECT day, sum(total_amount) AS total_amount, sum(sales_count)::bigint AS sales_count"
            " FROM daily_product_totals WHERE day BETWEEN $1 AND $2"
            " GROUP BY day ORDER BY day DESC LIMIT $3",
            *period.bounds(),
            days,
        )

    async def rejected_rows(self) -> int:
        count = await self._pool.fetchval("SELECT rejected_rows FROM rejection_totals")
        return int(count or 0)

    async def rule_counts(self) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT rule, count FROM rejection_rule_counts ORDER BY count DESC, rule"
        )

    async def upload(self, upload_id: UUID) -> UploadStatus | None:
        return await fetch_upload(self._pool, upload_id)

    async def recent_uploads(
        self, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[asyncpg.Record]:
        """Newest first; `after`: the (created_at, upload_id) of the last one already shown."""
        columns = (
            "SELECT upload_id, filename, status, rows_total, valid_count, rejected_count,"
            " valid_amount, created_at, completed_at FROM uploads"
        )
        order = " ORDER BY created_at DESC, upload_id DESC LIMIT $1"
        if after is None:
            return await self._pool.fetch(columns + order, limit)
        return await self._pool.fetch(
            columns + " WHERE (created_at, upload_id) < ($2, $3)" + order, limit, *after
        )

    async def rejections(
        self, upload_id: UUID, limit: int, offset: int = 0, after_row: int | None = None
    ) -> list[asyncpg.Record]:
        """By row number, from `offset` or after the row `after_row` (a cursor)."""
        return await self._pool.fetch(
            "SELECT row_number, fields, violations FROM rejections"
            " WHERE upload_id = $1 AND ($4::int IS NULL OR row_number > $4)"
            " ORDER BY row_number LIMIT $2 OFFSET $3",
            upload_id,
            limit,
            offset,
            after_row,
        )

    async def erase_customer(
        self, hashes: list[str], mode: str, requested_by: str
    ) -> asyncpg.Record:
        """Erase the rows carrying any of `hashes` (one customer under each key) and record
        the request; its id, time and the rows found."""
        row = await self._pool.fetchrow(
            "SELECT erasure_id, requested_at, sales_rows, rejection_rows"
            " FROM erase_customer($1::text[], $2, $3)",
            hashes,
            mode,
            requested_by,
        )
        assert row is not None  # the function returns one row
        return row
