"""Every database read of the dashboard; the summary reads only precomputed aggregates.

An upload's status is also what ingest's status URL answers, so that query lives once in
sales_common.uploads and is delegated to from here.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from sales_common.db import Pool
from sales_common.uploads import UploadStatus, fetch_upload


class DashboardRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def product_totals(self) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT product, total_amount, quantity, sales_count FROM product_totals"
            " ORDER BY total_amount DESC, product"
        )

    async def rejected_rows(self) -> int:
        count = await self._pool.fetchval("SELECT rejected_rows FROM rejection_totals")
        return int(count or 0)

    async def rule_counts(self) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT rule, count FROM rejection_rule_counts ORDER BY count DESC, rule"
        )

    async def daily_totals(self, days: int) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT day, total_amount, sales_count FROM daily_totals ORDER BY day DESC LIMIT $1",
            days,
        )

    async def upload(self, upload_id: UUID) -> UploadStatus | None:
        return await fetch_upload(self._pool, upload_id)

    async def recent_uploads(self, limit: int) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT upload_id, filename, status, rows_total, valid_count, rejected_count,"
            " valid_amount, created_at, completed_at FROM uploads"
            " ORDER BY created_at DESC LIMIT $1",
            limit,
        )

    async def rejections(self, upload_id: UUID, limit: int, offset: int) -> list[asyncpg.Record]:
        return await self._pool.fetch(
            "SELECT row_number, fields, violations FROM rejections WHERE upload_id = $1"
            " ORDER BY row_number LIMIT $2 OFFSET $3",
            upload_id,
            limit,
            offset,
        )
