"""Every SQL statement of the ingest service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
from sales_common.db import Pool
from sales_common.uploads import UploadStatus, fetch_upload

from ingest.publisher import TransactionOutcome


class ContentAlreadyUploaded(Exception):
    pass


class UploadsRepository:
    def __init__(self, pool: Pool, lease_ttl_s: float) -> None:
        self._pool = pool
        self._lease_ttl_s = lease_ttl_s

    async def status(self, upload_id: UUID) -> UploadStatus | None:
        """What the status URL shows (the query is shared with the dashboard)."""
        return await fetch_upload(self._pool, upload_id)

    async def find_by_idempotency_key(self, key: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT upload_id, status, attempt, rows_total FROM uploads WHERE idempotency_key = $1",
            key,
        )

    async def create(
        self, upload_id: UUID, filename: str, idempotency_key: str | None, reload: bool
    ) -> bool:
        """Insert a new upload; False when another request holds the idempotency key."""
        status = await self._pool.execute(
            "INSERT INTO uploads"
            " (upload_id, filename, idempotency_key, reload, status, lease_until)"
            " VALUES ($1, $2, $3, $4, 'receiving', now() + make_interval(secs => $5))"
            " ON CONFLICT (idempotency_key) DO NOTHING",
            upload_id,
            filename,
            idempotency_key,
            reload,
            self._lease_ttl_s,
        )
        return bool(status == "INSERT 0 1")

    async def start_new_attempt(self, upload_id: UUID, filename: str) -> int | None:
        """Take the upload over for a new attempt; None when it is processing or complete
        by now (an earlier attempt committed meanwhile: the caller replays it)."""
        attempt: int | None = await self._pool.fetchval(
            "UPDATE uploads SET attempt = attempt + 1, status = 'receiving', filename = $2,"
            " error = NULL, content_sha256 = NULL, rows_total = NULL, commit_probe = NULL,"
            " lease_until = now() + make_interval(secs => $3)"
            " WHERE upload_id = $1 AND status IN ('receiving', 'committing', 'failed')"
            " RETURNING attempt",
            upload_id,
            filename,
            self._lease_ttl_s,
        )
        return attempt

    async def mark_committing(
        self, upload_id: UUID, attempt: int, content_sha256: str, rows_total: int
    ) -> bool:
        """Claim the content hash before publishing; raises ContentAlreadyUploaded for a
        live duplicate. False when this attempt no longer owns the upload (a retry took it
        over, or the janitor failed it)."""
        try:
            status = await self._pool.execute(
                "UPDATE uploads SET status = 'committing', content_sha256 = $3, rows_total = $4"
                " WHERE upload_id = $1 AND attempt = $2 AND status = 'receiving'",
                upload_id,
                attempt,
                content_sha256,
                rows_total,
            )
        except asyncpg.UniqueViolationError as exc:
            raise ContentAlreadyUploaded(content_sha256) from exc
        return bool(status == "UPDATE 1")

    async def mark_processing(self, upload_id: UUID, attempt: int) -> None:
        # The status trigger turns this into 'complete' when every row is already counted.
        await self._pool.execute(
            "UPDATE uploads SET status = 'processing'"
            " WHERE upload_id = $1 AND attempt = $2 AND status = 'committing'",
            upload_id,
            attempt,
        )

    async def record_commit_probe(self, upload_id: UUID, attempt: int, probe: str) -> bool:
        """Just before the Kafka commit: one record of the transaction, for the janitor.
        False when this attempt no longer owns the upload."""
        status = await self._pool.execute(
            # Not 'failed' (the janitor's verdict); a header-only upload is 'complete' already.
            "UPDATE uploads SET commit_probe = $3"
            " WHERE upload_id = $1 AND attempt = $2 AND status <> 'failed'",
            upload_id,
            attempt,
            probe,
        )
        return bool(status == "UPDATE 1")

    async def mark_failed(self, upload_id: UUID, attempt: int, error: str) -> None:
        # Never over 'processing' or 'complete': those were committed to Kafka already.
        await self._pool.execute(
            "UPDATE uploads SET status = 'failed', error = $3"
            " WHERE upload_id = $1 AND attempt = $2 AND status IN ('receiving', 'committing')",
            upload_id,
            attempt,
            error,
        )

    async def discard(self, upload_id: UUID, attempt: int) -> None:
        """Forget a refused upload entirely: nothing of it is kept."""
        await self._pool.execute(
            "DELETE FROM uploads WHERE upload_id = $1 AND attempt = $2", upload_id, attempt
        )

    async def find_live_by_content(self, content_sha256: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT upload_id, status, rows_total FROM uploads"
            " WHERE content_sha256 = $1 AND NOT reload AND status <> 'failed'",
            content_sha256,
        )

    async def renew_leases(self, upload_ids: list[UUID]) -> None:
        await self._pool.execute(
            "UPDATE uploads SET lease_until = now() + make_interval(secs => $2)"
            " WHERE upload_id = ANY($1::uuid[]) AND status IN ('receiving', 'committing')",
            upload_ids,
            self._lease_ttl_s,
        )

    async def settle_abandoned(
        self, settle: Callable[[UUID, str | None], Awaitable[TransactionOutcome]], limit: int = 20
    ) -> dict[UUID, TransactionOutcome]:
        """Uploads whose lease ran out (their instance died): `settle` fences one that was
        publishing and says whether its transaction committed. Committed ones go on to
        'processing' (the loader completes them); the rest fail; 'unknown' ones wait for
        the next round. The rows stay locked meanwhile and SKIP LOCKED passes them by, so
        any number of janitors can run."""
        settled: dict[UUID, TransactionOutcome] = {}
        async with self._pool.acquire() as conn, conn.transaction():
            abandoned = await conn.fetch(
                "SELECT upload_id, attempt, status, commit_probe FROM uploads"
                " WHERE status IN ('receiving', 'committing') AND lease_until < now()"
                " ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            for row in abandoned:
                probe = row["commit_probe"] if row["status"] == "committing" else None
                outcome: TransactionOutcome = "aborted"
                if row["status"] == "committing":
                    outcome = await settle(row["upload_id"], probe)
                if outcome == "unknown":
                    continue
                settled[row["upload_id"]] = outcome
                await conn.execute(
                    "UPDATE uploads SET status = $3, error = $4"
                    " WHERE upload_id = $1 AND attempt = $2",
                    row["upload_id"],
                    row["attempt"],
                    "processing" if outcome == "committed" else "failed",
                    None
                    if outcome == "committed"
                    else f"abandoned while {row['status']}: the ingest instance stopped"
                    " renewing its lease; retry with the same Idempotency-Key",
                )
        return settled
