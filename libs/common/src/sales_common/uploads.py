"""An upload's status as users see it; read by ingest (status URL) and dashboard."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from sales_common.db import Pool

UploadState = Literal["receiving", "committing", "processing", "complete", "failed"]


class UploadSummary(BaseModel):
    """An upload as lists show it (the dashboard's recent uploads)."""

    upload_id: UUID
    filename: str
    status: UploadState
    rows_total: int | None
    valid_count: int
    rejected_count: int
    valid_amount: Decimal
    created_at: datetime
    completed_at: datetime | None


class UploadStatus(UploadSummary):
    """One upload in full, as its status URL answers."""

    content_sha256: str | None
    reload: bool
    error: str | None


_COLUMNS = ", ".join(UploadStatus.model_fields)


async def fetch_upload(pool: Pool, upload_id: UUID) -> UploadStatus | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM uploads WHERE upload_id = $1", upload_id)  # noqa: S608 - column list is a constant
    return UploadStatus.model_validate(dict(row)) if row else None
