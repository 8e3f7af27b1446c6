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

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sales_common.events import (
    RejectedSale,
    ValidatedSale,
    Violation,
    decode,
    event_id_for,
    unreadable_record,
)
from sales_common.kafka import update_lag, with_backoff
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat

from loader.config import LoaderSettings
from loader.metrics import LoaderMetrics
from loader.repository import LoaderRepository

log = get_logger(__name__)


def is_transient_db_error(error: BaseException) -> bool:
    return isinstance(
        error,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.SerializationError
        | asyncpg.DeadlockDetectedError,
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: LoaderLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._loop.lock:  # let the batch in flight finish first
            for tp in revoked:
                self._loop.positions.pop(tp, None)

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
        self.lock = asyncio.Lock()
        self.positions: dict[TopicPartition, int] = {}
        # Bumped by every assignment: a batch fetched before it may predate our seek.
        self.assignment_epoch = 0
        topics = settings.kafka.topics
        self._validated, self._rejected = topics.validated, topics.rejected
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
        self.consumer.subscribe([self._validated, self._rejected], listener=_Rebalance(self))
        await with_backoff(self.consumer.start, "consumer start", max_s=5)
        try:
            while not self._stopping.is_set():
                self._heartbeat.beat()
                async with self.lock:  # never mid-assignment: the seeks are done or not begun
                    epoch = self.assignment_epoch
                batches = await self.consumer.getmany(
                    timeout_ms=self._settings.fetch_timeout_ms,
                    max_records=self._settings.max_batch_records,
                )
                if batches:
                    async with self.lock:
                        if epoch == self.assignment_epoch:
                            await self._store(batches)
                        else:
                            # A rebalance finished during the fetch: these records may come
                            # from before or after its seeks. Drop them and rewind what we own
                            # to the stored offsets, so nothing is skipped or stored twice.
                            await self._rewind([tp for tp in batches if tp in self.positions])
                await update_lag(self.consumer, self._metrics.lag)
        finally:
            await self.consumer.stop()

    async def _rewind(self, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        stored = await with_backoff(
            lambda: self._repo.stored_offsets(sorted({tp.topic for tp in partitions})),
            "read stored offsets",
            transient=is_transient_db_error,
        )
        unknown = [tp for tp in partitions if (tp.topic, tp.partition) not in stored]
        beginnings = await self.consumer.beginning_offsets(unknown) if unknown else {}
        for tp in partitions:
            self.consumer.seek(tp, stored.get((tp.topic, tp.partition), beginnings.get(tp, 0)))

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            self.assignment_epoch += 1
            stored = await with_backoff(
                lambda: self._repo.stored_offsets(sorted({tp.topic for tp in partitions})),
                "read stored offsets",
                transient=is_transient_db_error,
            )
            for tp in partitions:
                offset = stored.get((tp.topic, tp.partition))
                if offset is not None:
                    self.consumer.seek(tp, offset)
                # else: a fresh assignment starts from auto_offset_reset ("earliest")
                self.positions[tp] = offset or 0
            log.info(
                "partitions_assigned",
                partitions=[f"{tp.topic}/{tp.partition}" for tp in partitions],
            )

    async def _store(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        sales: list[ValidatedSale] = []
        rejections: list[RejectedSale] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    if tp.topic == self._validated:
                        sales.append(decode(ValidatedSale, record.value or b""))
                    else:
                        rejections.append(decode(RejectedSale, record.value or b""))
                except (ValidationError, ValueError) as exc:
                    source = f"{record.topic}/{record.partition}/{record.offset}"
                    rejections.append(unreadable_record(source, f"not a valid record: {exc}", now))
        offsets = {
            (tp.topic, tp.partition): records[-1].offset + 1 for tp, records in batches.items()
        }

        async def attempt() -> tuple[int, int]:
            async with self._repo.transaction() as conn:
                sales_in, reused = await self._repo.store_sales(conn, sales)
                extra = [_reused_transaction_id(r, now) for r in reused]
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
        for tp, records in batches.items():
            self.positions[tp] = records[-1].offset + 1
        with contextlib.suppress(KafkaError):  # for lag tools only; the database is the truth
            await self.consumer.commit({tp: self.positions[tp] for tp in batches})


def _reused_transaction_id(row: asyncpg.Record, now: datetime) -> RejectedSale:
    upload_id, row_number = str(row["upload_id"]), row["row_number"]
    fields = {
        "transaction_id": row["transaction_id"] or "",
        "product": row["product"],
        "price": str(row["price"]),
        "quantity": str(row["quantity"]),
    }
    if row["customer_hash"]:
        fields["customer_id"] = row["customer_hash"]
    if row["sale_date"]:
        fields["date"] = row["sale_date"].isoformat()
    return RejectedSale(
        event_id=event_id_for(upload_id, row_number, None),
        upload_id=upload_id,
        row_number=row_number,
        fields=fields,
        violations=[
            Violation(
                field="transaction_id",
                rule="duplicate",
                message=f"transaction_id already stored from upload {row['first_upload_id']} "
                f"row {row['first_row_number']}",
            )
        ],
        pii_key_id=row["pii_key_id"],
        rejected_at=now,
    )
