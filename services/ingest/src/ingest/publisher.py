"""Publishes one spooled upload to sales.raw (or its express lane) in one Kafka transaction.

Consumers read with isolation_level=read_committed, so a refused or interrupted upload is
never seen downstream: its transaction is aborted. The transactional id is derived from the
upload id, so a retry of the same upload (same Idempotency-Key), or the janitor that fails
an abandoned one, fences any zombie attempt: initialising a producer with that id aborts
the old open transaction, and the old producer can no longer commit.

Starting a producer (connect, FindCoordinator, InitProducerId) took most of a small
upload's request, so a few are started ahead (`ReadyProducers`), each for a new upload id of
its own: an upload that takes one gets that id, hence the same transactional id as always.
Producers are closed off the request's path (`BackgroundCloser`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal
from uuid import UUID

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sales_common.events import RAW_SCHEMA_VERSION, record_headers
from sales_common.kafka import BackgroundCloser, TransactionalProducer
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat
from sales_common.slices import TimeSlices

from ingest.config import IngestSettings
from ingest.metrics import IngestMetrics

log = get_logger(__name__)
_HEADERS = record_headers(schema_version=RAW_SCHEMA_VERSION)


def transactional_id(upload_id: UUID) -> str:
    return f"ingest-{upload_id}"


# Called after every record is acknowledged, before the commit, with one record's
# "topic/partition/offset"; False means this attempt no longer owns the upload: abort.
BeforeCommit = Callable[[str], Awaitable[bool]]
TransactionOutcome = Literal["committed", "aborted", "unknown"]
_FENCE_TIMEOUT_S = 15.0


class NotOwned(Exception):
    """The upload was taken over (or failed) while this attempt was publishing."""


class _FirstDelivery:
    """The delivery report of an upload's first record: where it landed (the probe)."""

    def __init__(self) -> None:
        self.position = ""
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.error = error
        else:
            self.position = f"{message.topic()}/{message.partition()}/{message.offset()}"


class ReadyProducer:
    """A producer started ahead of a new upload, with the upload id it was started for (its
    transactional id is that upload's). Handed out once: `take()` gives it to one user."""

    def __init__(self, upload_id: UUID, producer: TransactionalProducer, timeout_s: float) -> None:
        self.upload_id = upload_id
        self.timeout_s = timeout_s  # its transaction.timeout.ms
        self.started_at = time.monotonic()
        self._producer: TransactionalProducer | None = producer

    def take(self) -> TransactionalProducer | None:
        producer, self._producer = self._producer, None
        return producer


class ReadyProducers:
    """Keeps `transactions.ready_producers` producers started, each for a fresh upload id.

    Fencing is unchanged: nobody knows an upload id before its row exists, and the row is
    written after the producer's InitProducerId, so any later fence (a retry, the janitor)
    fences this producer, exactly as it fences one started on the request's path."""

    def __init__(
        self,
        settings: IngestSettings,
        make: Callable[[UUID, float], TransactionalProducer],
        timeout_s: float,
        closer: BackgroundCloser,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._settings = settings.transactions
        self._topic = settings.kafka.topics.raw_priority
        self._timeout_s = timeout_s  # each producer's transaction timeout
        self._make = make
        self._closer = closer
        self._heartbeat = heartbeat or Heartbeat()
        self._ready: deque[ReadyProducer] = deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._wanted = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures = 0
        self._retry_at = 0.0
        self._crashed: BaseException | None = None

    @property
    def count(self) -> int:
        return len(self._ready)

    def take(self) -> ReadyProducer | None:
        """A started producer and its upload id; None when none is ready (the upload then
        gets a new id and starts its producer itself)."""
        self._wanted.set()
        return self._ready.popleft() if self._ready else None

    def release(self, ready: ReadyProducer | None) -> None:
        """Close `ready`'s producer unless its upload took it."""
        producer = ready.take() if ready is not None else None
        if producer is not None:
            self._closer.close(producer)

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._crashed is not None:
                    raise self._crashed
                self._heartbeat.beat()
                self._wanted.clear()
                # The broker closes connections idle for 10 minutes: renewed well before.
                max_age_s = self._settings.ready_max_age_s
                while self._ready and time.monotonic() - self._ready[0].started_at > max_age_s:
                    self.release(self._ready.popleft())
                # One task per start: a slow one (librdkafka's 500 ms retry) holds up no other.
                wait_s = max(self._retry_at - time.monotonic(), 0.0) or 1.0
                if time.monotonic() >= self._retry_at:
                    while len(self._ready) + len(self._starting) < self._settings.ready_producers:
                        task = asyncio.create_task(self._start())
                        self._starting.add(task)
                        task.add_done_callback(self._started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), wait_s)
        finally:
            if self._starting:  # each bounded by its own timeout
                await asyncio.wait(set(self._starting))
            while self._ready:
                self.release(self._ready.popleft())

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._crashed = task.exception()  # not the broker: a bug, raised by run()
        self._wanted.set()

    async def _start(self) -> None:
        upload_id = uuid.uuid4()
        producer = self._make(upload_id, self._timeout_s)
        try:
            await producer.start(_FENCE_TIMEOUT_S)
            await producer.know(self._topic, _FENCE_TIMEOUT_S)
        except KafkaException as exc:  # the broker is away: uploads start their own meanwhile
            self._failures += 1
            self._retry_at = time.monotonic() + min(0.5 * 2**self._failures, 10.0)
            log.warning("ready_producer_failed", error=repr(exc)[:200], failures=self._failures)
            self._closer.close(producer)
            return
        self._failures = 0
        if self._stopping.is_set():
            self._closer.close(producer)
        else:
            self._ready.append(ReadyProducer(upload_id, producer, self._timeout_s))


class RawPublisher:
    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._closer = BackgroundCloser()
        ready_timeout_s = self.timeout_s(settings.transactions.ready_max_bytes)
        self.ready = ReadyProducers(
            settings, self._producer, ready_timeout_s, self._closer, heartbeat
        )
        if metrics is not None:
            metrics.ready_producers.set_function(lambda: self.ready.count)

    def timeout_s(self, spooled_bytes: int) -> float:
        """Long enough to publish `spooled_bytes` at the slowest accepted pace, no longer."""
        limits = self._settings.transactions
        needed = limits.min_timeout_s + spooled_bytes / limits.min_publish_bytes_per_s
        return min(needed, limits.max_timeout_s)

    def _producer(self, upload_id: UUID, timeout_s: float) -> TransactionalProducer:
        return TransactionalProducer(
            self._settings.kafka.producer_config(
                transactional_id(upload_id),
                transaction_timeout_ms=int(timeout_s * 1000),
                eager_connections=True,  # a producer an upload: its start is what counts
            )
        )

    @property
    def closing(self) -> int:
        """Producers still being closed in the background."""
        return self._closer.pending

    async def close(self) -> None:
        """After the last upload and the ready producers' loop: every producer closed."""
        await self._closer.drain()

    async def publish(
        self,
        upload_id: UUID,
        topic: str,
        records: Iterable[tuple[bytes, bytes]],
        timeout_s: float,
        before_commit: BeforeCommit,
        ready: ReadyProducer | None = None,
        bulk: TimeSlices | None = None,
    ) -> None:
        """All of `records` in one committed transaction, or none of them (raises). `ready`:
        the producer started ahead for this upload id, used when its timeout suffices.
        `bulk`: a big upload's slices, between which requests and small uploads get their
        turn (packing a record is CPU work in the event loop)."""
        producer = None
        if ready is not None and ready.upload_id == upload_id and ready.timeout_s >= timeout_s:
            producer = ready.take()
        try:
            if self._metrics is not None:
                self._metrics.producers.labels("ready" if producer else "started").inc()
            if producer is None:
                producer = self._producer(upload_id, timeout_s)
                await producer.start(_FENCE_TIMEOUT_S)
            producer.begin()
            committed = False
            try:
                first = _FirstDelivery()
                await producer.send_all(
                    ((topic, key, value, _HEADERS) for key, value in records),
                    bulk=bulk,
                    first=first,
                )
                # Every record acknowledged: a failed one makes the commit fail anyway,
                # but the probe must name a record that is really in the log.
                await producer.flush(timeout_s)
                if first.error is not None:
                    raise KafkaException(first.error)
                # Checked after our producer's InitProducerId: a retry that took over before
                # it is seen here; one after it fences this producer, so the commit fails.
                if not await before_commit(first.position):
                    raise NotOwned(str(upload_id))
                await producer.commit(timeout_s)
                committed = True
            finally:
                # A failed flush or commit is aborted too, or the open transaction holds
                # back read_committed readers of these partitions until it times out.
                if not committed:
                    await producer.abort()
        finally:
            if producer is not None:
                self._closer.close(producer)

    async def fence(self, upload_id: UUID) -> None:
        """Abort whatever transaction an earlier attempt of this upload left open."""
        producer = self._producer(upload_id, self._settings.transactions.min_timeout_s)
        try:
            # InitProducerId: aborts the open transaction and bumps the epoch. Bounded: the
            # janitor must not hang on a broker that does not answer.
            await producer.start(_FENCE_TIMEOUT_S)
        finally:
            self._closer.close(producer)

    async def outcome(self, probe: str, wait_s: float = 10.0) -> TransactionOutcome:
        """Whether the fenced transaction that wrote `probe` (topic/partition/offset) was
        committed: a read_committed reader returns that record, or reaches the end of the
        partition's stable part beyond it without it when the transaction was aborted.
        'unknown' while an older open transaction hides it."""
        topic, partition, offset_text = probe.rsplit("/", 2)
        offset = int(offset_text)
        consumer = Consumer(
            {
                **self._settings.kafka.client_config(),
                "group.id": f"ingest-outcome-{uuid.uuid4()}",  # never joined nor committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Reaching the last stable offset is reported: how an abort shows.
                "enable.partition.eof": True,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, int(partition), offset)])
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                for message in await asyncio.to_thread(consumer.consume, 100, 0.5):
                    error = message.error()
                    if error is None:
                        return "committed" if message.offset() == offset else "aborted"
                    if (
                        error.code() == KafkaError._PARTITION_EOF
                        and (message.offset() or 0) > offset
                    ):
                        return "aborted"
            return "unknown"
        finally:
            await asyncio.to_thread(consumer.close)
