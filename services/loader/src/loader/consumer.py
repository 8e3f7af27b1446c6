"""Consume sales.validated and sales.rejected into PostgreSQL, exactly once.

The consumed offsets are stored in PostgreSQL in the same transaction as the rows ("storing
offsets outside Kafka" in the Kafka consumer documentation): a batch is either entirely
stored with its offsets, or not at all. On partition assignment the loader seeks to the
offsets stored in the database. Rows are also idempotent on `event_id`, so an instance that
lost its partitions but has not noticed yet (a zombie) can only write rows that are skipped.
Offsets are committed to Kafka afterwards, only so lag tools can see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sales_common.codec import decode_rejected, decode_validated
from sales_common.db import is_transient_db_error
from sales_common.events import EXPRESS_COPY
from sales_common.kafka import AssignmentGuard, LagGauge, poll_express_first, with_backoff
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat
from sales_common.rejections import duplicate_transaction_id, unreadable

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


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: LoaderLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._loop.guard.lock:  # let the batch in flight finish first
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._loop.seek_to_stored(assigned)


class LoaderLoop:
    def __init__(
        self,
        settings: LoaderSettings,
        repository: LoaderRepository,
        metrics: LoaderMetrics,
        heartbeat: Heartbeat,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._stopping = asyncio.Event()
        self.guard = AssignmentGuard()
        self._lag = LagGauge(metrics.lag)
        topics = settings.kafka.topics
        # Each topic with its express-lane twin, which carries small uploads' rows first.
        self._topics = [
            topics.validated,
            topics.rejected,
            topics.validated_priority,
            topics.rejected_priority,
        ]
        self._sales_topics = frozenset((topics.validated, topics.validated_priority))
        self._express = frozenset((topics.validated_priority, topics.rejected_priority))
        self.consumer = AIOKafkaConsumer(
            **settings.kafka.consumer_options(),
            group_id=settings.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        self.consumer.subscribe(self._topics, listener=_Rebalance(self))
        await with_backoff(self.consumer.start, "consumer start", max_s=5)
        try:
            while not self._stopping.is_set():
                self._heartbeat.beat()
                epoch = await self.guard.epoch()
                batches = dict(
                    await poll_express_first(
                        self.consumer,
                        self._express,
                        timeout_ms=self._settings.fetch_timeout_ms,
                        max_records=self._settings.max_batch_records,
                    )
                )
                if batches:
                    async with self.guard.lock:
                        if self.guard.current(epoch):
                            await self._store(batches)
                        else:  # straddled a rebalance: drop, rewind what is still ours
                            owned = self.consumer.assignment()
                            await self._seek_to_stored([tp for tp in batches if tp in owned])
                await self._lag.update(self.consumer)
        finally:
            await self.consumer.stop()

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """On assignment. A partition with no stored offset is left to auto_offset_reset:
        an explicit seek to 0 here re-delivered records (aiokafka 0.14)."""
        async with self.guard.assigning():
            await self._seek_to_stored(partitions, from_beginning=False)
            log.info(
                "partitions_assigned",
                partitions=[f"{tp.topic}/{tp.partition}" for tp in partitions],
            )

    async def _seek_to_stored(
        self, partitions: list[TopicPartition], from_beginning: bool = True
    ) -> None:
        """Position `partitions` at the offsets committed with their rows in PostgreSQL."""
        if not partitions:
            return
        stored = await with_backoff(
            lambda: self._repo.stored_offsets(sorted({tp.topic for tp in partitions})),
            "read stored offsets",
            transient=is_transient_db_error,
        )
        unknown = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
        if from_beginning and unknown:
            beginnings = await self.consumer.beginning_offsets(unknown)
            stored.update({(tp.topic, tp.partition): beginnings[tp] for tp in unknown})
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])

    async def _store(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        # Decoded straight into the rows COPY takes.
        sales: list[SaleRow] = []
        rejections: list[RejectionRow] = []
        for tp, records in batches.items():
            main_topic = tp.topic not in self._express
            for record in records:
                # The validator wrote this copy's twin to the express lane in the same
                # transaction, and the twin is what gets stored: skipping this copy spares
                # a batch the slower path for events stored already.
                if main_topic and EXPRESS_COPY in record.headers:
                    continue
                try:
                    if tp.topic in self._sales_topics:
                        sales.append(sale_row(decode_validated(record.value or b"")))
                    else:
                        rejections.append(rejection_row(decode_rejected(record.value or b"")))
                except (ValidationError, ValueError) as exc:
                    rejections.append(
                        rejection_row(unreadable(record, f"not a valid record: {exc}", now))
                    )
        next_offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        offsets = {(tp.topic, tp.partition): offset for tp, offset in next_offsets.items()}

        async def attempt() -> tuple[int, int]:
            async with self._repo.transaction() as conn:
                sales_in, reused = await self._repo.store_sales(conn, sales)
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
        m.batch_rows.observe(len(sales) + len(rejections))
        m.rows.labels("sales", "inserted").inc(sales_in)
        m.rows.labels("sales", "duplicate").inc(len(sales) - sales_in)
        m.rows.labels("rejections", "inserted").inc(rejections_in)
        m.processed.labels("stored_valid").inc(sales_in)
        m.processed.labels("stored_rejected").inc(rejections_in)
        log.info(
            "batch_stored",
            sales=sales_in,
            rejections=rejections_in,
            skipped=len(sales) + len(rejections) - sales_in - rejections_in,
            partitions=len(batches),
            ms=round(elapsed * 1000, 1),
        )
        with contextlib.suppress(KafkaError):  # for lag tools only; the database is the truth
            await self.consumer.commit(next_offsets)
