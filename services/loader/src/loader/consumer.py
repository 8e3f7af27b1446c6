"""Consume sales.validated and sales.rejected into PostgreSQL, exactly once.

The consumed offsets are stored in PostgreSQL in the same transaction as the rows ("storing
offsets outside Kafka" in the Kafka consumer documentation): a batch is either entirely
stored with its offsets, or not at all. On partition assignment the loader seeks to the
offsets stored in the database. Rows are also idempotent on `event_id`, so an instance that
lost its partitions but has not noticed yet (a zombie) can only write rows that are skipped.
Offsets are committed to Kafka afterwards, only so lag tools can see them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import ValidationError
from sales_common.codec import decode_rejected, decode_validated
from sales_common.consume import ConsumeLoop, Lanes, Position
from sales_common.db import is_transient_db_error
from sales_common.events import EXPRESS_COPY
from sales_common.kafka import source_of, with_backoff
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat
from sales_common.rejections import duplicate_transaction_id, unreadable
from sales_common.slices import TimeSlices
from sales_native import SalesCopy

from loader.config import LoaderSettings
from loader.metrics import LoaderMetrics
from loader.repository import (
    LoaderRepository,
    RejectionRow,
    SaleRow,
    rejection_row,
    sale_row,
)

log = get_logger(__name__)

# The uploads a main lane remembers it read unmarked records of, at most (then forgets them all).
_MAIN_UPLOADS_KEPT = 10_000


class Batch(NamedTuple):
    """A batch's rows as COPY takes them, and the offsets it moves to."""

    copied: SalesCopy  # sales read by the native path, in COPY's binary form
    sales: list[SaleRow]  # sales in a form only the Python decoder reads
    rejections: list[RejectionRow]
    offsets: dict[Position, int]
    uploads: set[str]  # the uploads whose counters the batch moves

    @property
    def sale_count(self) -> int:
        return self.copied.rows + len(self.sales)


class LoaderHandler:
    """Stores one lane's batches, each in one PostgreSQL transaction with its offsets."""

    def __init__(
        self,
        settings: LoaderSettings,
        repository: LoaderRepository,
        metrics: LoaderMetrics,
        express: bool,
    ) -> None:
        self._repo = repository
        self._metrics = metrics
        topics = settings.kafka.topics
        self._sales_topics = frozenset((topics.validated, topics.validated_priority))
        # The validator wrote each express-lane record's twin to the main topic too,
        # marked as a copy; the express lane stores it, the main lane skips the copy.
        self._skip_copies = not express
        # The lanes share this process's event loop: the main lane decodes its batches in
        # slices between which the express lane gets its turn.
        self._bulk = None if express else TimeSlices()
        # Uploads this lane has read an unmarked record of: see `rows`.
        self._main_uploads: set[str] = set()

    async def resume_offsets(self, partitions: list[Position]) -> dict[Position, int]:
        """The offsets committed with their rows in PostgreSQL."""
        stored = await with_backoff(
            lambda: self._repo.stored_offsets(sorted({topic for topic, _ in partitions})),
            "read stored offsets",
            transient=is_transient_db_error,
        )
        return {position: stored[position] for position in partitions if position in stored}

    async def close(self) -> None:
        """The repository's pool belongs to the service."""

    async def rows(self, records: list[Message], now: datetime) -> Batch:
        """The batch decoded straight into the rows COPY takes, and the offsets it moves to;
        on the main lane in slices, between which the express lane gets its turn. A sale in
        the validator's own form is read by the native path (sales_native.SalesCopy), any
        other by the Python decoder, which accepts it or explains why not.

        Reading a record's headers builds them as Python objects, 1-3 us a record, more than
        decoding it. An upload takes one lane as a whole (ingest picks it by its row count), so
        once a main lane has read an unmarked record of an upload, it no longer looks at the
        headers of that upload's records. Were one of them an express copy after all, it would
        be stored like a replay: the idempotent merge keeps the row and every counter once,
        whichever of the copy and its twin comes first.
        """
        copied, native = SalesCopy(), True
        sales: list[SaleRow] = []
        rejections: list[RejectionRow] = []
        offsets: dict[Position, int] = {}
        uploads: set[str] = set()
        sales_topics, skip_copies, bulk = self._sales_topics, self._skip_copies, self._bulk
        main_uploads = self._main_uploads
        if len(main_uploads) > _MAIN_UPLOADS_KEPT:
            main_uploads.clear()
        if bulk is not None:
            bulk.restart()
        for record in records:
            if bulk is not None and bulk.due():
                await bulk.give_way()
            topic = record.topic() or ""
            offsets[(topic, record.partition() or 0)] = (record.offset() or 0) + 1
            try:
                if topic in sales_topics:
                    value = record.value() or b""
                    # Once a sale is the Python decoder's, so are the batch's later ones: the
                    # staged rows keep Kafka's order (of two with one transaction_id, the
                    # first is stored, the other rejected as a reuse).
                    upload = copied.append(value) if native else None
                    row = None
                    if upload is None:
                        native = False
                        sale = decode_validated(value)
                        upload, row = sale.upload_id, sale_row(sale)
                    if skip_copies and upload not in main_uploads:
                        if EXPRESS_COPY in (record.headers() or ()):
                            if row is None:
                                copied.undo()
                            continue
                        main_uploads.add(upload)
                    if row is not None:
                        if upload not in uploads:
                            _check_upload_id(upload)
                        sales.append(row)
                    uploads.add(upload)
                else:
                    rejection = decode_rejected(record.value() or b"")
                    upload = rejection.upload_id
                    if skip_copies and upload not in main_uploads:
                        if EXPRESS_COPY in (record.headers() or ()):
                            continue
                        if upload is not None:  # an unreadable record's: not one upload's
                            main_uploads.add(upload)
                    if upload is not None and upload not in uploads:
                        _check_upload_id(upload)
                        uploads.add(upload)
                    rejections.append(rejection_row(rejection))
            except (ValidationError, ValueError) as exc:
                if skip_copies and EXPRESS_COPY in (record.headers() or ()):
                    continue
                rejections.append(
                    rejection_row(unreadable(source_of(record), f"not a valid record: {exc}", now))
                )
        return Batch(copied, sales, rejections, offsets, uploads)

    async def handle(self, records: list[Message], consumer: Consumer) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        batch = await self.rows(records, now)
        rejections, offsets = batch.rejections, batch.offsets

        async def attempt() -> tuple[int, int]:
            async with self._repo.transaction(batch.uploads) as conn:
                sales_in, reused = await self._repo.store_sales(conn, batch.sales, batch.copied)
                extra = [rejection_row(duplicate_transaction_id(r, now)) for r in reused]
                rejections_in = await self._repo.store_rejections(conn, rejections + extra)
                await self._repo.save_offsets(conn, offsets)
            return sales_in, rejections_in

        def transient(error: BaseException) -> bool:
            retry = is_transient_db_error(error)
            if retry:
                self._metrics.retries.inc()
            return retry

        sales_in, rejections_in = await with_backoff(attempt, "store batch", transient=transient)

        elapsed = time.monotonic() - started
        m = self._metrics
        m.batch_seconds.observe(elapsed)
        m.batch_rows.observe(batch.sale_count + len(rejections))
        m.rows.labels("sales", "inserted").inc(sales_in)
        m.rows.labels("sales", "duplicate").inc(batch.sale_count - sales_in)
        m.rows.labels("rejections", "inserted").inc(rejections_in)
        m.processed.labels("stored_valid").inc(sales_in)
        m.processed.labels("stored_rejected").inc(rejections_in)
        log.info(
            "batch_stored",
            sales=sales_in,
            rejections=rejections_in,
            skipped=len(records) - sales_in - rejections_in,
            partitions=len(offsets),
            ms=round(elapsed * 1000, 1),
        )
        try:  # for lag tools only; the database is the truth
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException as exc:
            log.debug("offset_commit_failed", error=str(exc)[:200])


def _check_upload_id(upload: str) -> None:
    """A record's upload id must be a UUID (the uploads' key): one that is not would fail the
    batch's transaction at every retry; raised, the record is kept as unreadable. The native
    path reads only UUIDs."""
    try:
        uuid.UUID(upload)
    except ValueError:
        raise ValueError(f"upload_id is not a UUID: {upload[:60]!r}") from None


def loader_lanes(
    settings: LoaderSettings,
    repository: LoaderRepository,
    metrics: LoaderMetrics,
    heartbeats: dict[str, Heartbeat],
) -> Lanes:
    """The main lane and the express lane (small uploads' rows), each with its own
    consumer group, so a big upload's rows never queue a small one's."""
    topics = settings.kafka.topics
    loops = []
    for lane, lane_topics, group in (
        ("main", [topics.validated, topics.rejected], settings.group_id),
        (
            "express",
            [topics.validated_priority, topics.rejected_priority],
            f"{settings.group_id}.express",
        ),
    ):
        loops.append(
            ConsumeLoop(
                f"loader-{lane}",
                settings.kafka.consumer_config(group),
                lane_topics,
                LoaderHandler(settings, repository, metrics, express=lane == "express"),
                heartbeats[lane],
                metrics.lag,
                settings.max_batch_records,
                poll_timeout_s=settings.fetch_timeout_ms / 1000,
                stuck_after_s=settings.kafka.consumer_stuck_s,
            )
        )
    return Lanes(*loops)
