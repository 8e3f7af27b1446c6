"""Kafka plumbing shared by the services: clients, topics, retries, lag."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.producer.message_accumulator import BatchBuilder
from murmurhash2 import murmurhash2
from prometheus_client import Gauge

from sales_common.logging import get_logger
from sales_common.settings import KafkaSettings

log = get_logger(__name__)
T = TypeVar("T")

# Partition counts: sales.raw and sales.validated bound how many validators and loaders can
# work in parallel; rejections are rarer, and the express lane carries small uploads only.
DEFAULT_PARTITIONS = {
    "raw": 6,
    "validated": 6,
    "rejected": 3,
    "raw_priority": 3,
    "validated_priority": 3,
    "rejected_priority": 3,
}


class KafkaProbe:
    """A metadata round trip to the cluster: the readiness check for Kafka."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._client = AIOKafkaClient(**settings.client_options())
        self._started = False

    async def check(self) -> None:
        if not self._started:
            await self._client.bootstrap()
            self._started = True
        await self._client.fetch_all_metadata()

    async def close(self) -> None:
        await self._client.close()


Headers = list[tuple[str, bytes]]


_KAFKA_MURMUR2_SEED = 0x9747B28C


def default_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a keyed record: murmur2(key) mod partitions.

    The C murmurhash2 gives the same hash as aiokafka's pure-Python murmur2, which took a
    third of ingest's CPU time.
    """
    hashed: int = murmurhash2(key, _KAFKA_MURMUR2_SEED)
    return (hashed & 0x7FFFFFFF) % partitions


class KeyedBatches:
    """Produce through aiokafka's batch API: a record is appended to the open batch of its
    partition, and a full batch is handed over whole, instead of one `send()` (a future and
    a queue lookup) per record.

    The partition is `default_partition`, as `send()` and the Java client pick it. Memory
    stays bounded: `send_batch` waits while that partition's previous batch is queued.
    Inside a transaction, call `flush()` before committing (see there).
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], BatchBuilder] = {}
        self._partitions: dict[str, int] = {}
        self._sent: list[asyncio.Future[object]] = []

    async def add(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self._producer.partitions_for(topic))
        partition = default_partition(key, count)
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            await self._send(batch, topic, partition)
            batch = self._open[(topic, partition)] = self._producer.create_batch()
            # An empty batch takes any record; the broker enforces its own size limit.
            batch.append(key=key, value=value, timestamp=None, headers=headers)

    async def flush(self) -> list[Any]:
        """Hand over every open batch, then wait until the broker acknowledged all of them.

        aiokafka commits a transaction even when one of its batches failed (the commit only
        waits for the batches to finish): the consumed offsets would be committed without
        the records. A batch that failed raises here instead, so the caller aborts. Seen
        when the broker restarted: OutOfOrderSequenceNumber, and the upload never completed.
        """
        open_batches, self._open = self._open, {}
        for (topic, partition), batch in open_batches.items():
            await self._send(batch, topic, partition)
        sent, self._sent = self._sent, []
        return list(await asyncio.gather(*sent))  # RecordMetadata of each batch

    async def _send(self, batch: BatchBuilder, topic: str, partition: int) -> None:
        self._sent.append(await self._producer.send_batch(batch, topic, partition=partition))


async def ensure_topics(
    settings: KafkaSettings, partitions: dict[str, int] | None = None, replication: int = 1
) -> None:
    counts = {**DEFAULT_PARTITIONS, **(partitions or {})}
    names = settings.topics.model_dump()
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name=names[role], num_partitions=count, replication_factor=replication)
            for role, count in counts.items()
            if names[role] not in existing
        ]
        if wanted:
            # Another process may create them concurrently; that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def is_transient(error: BaseException) -> bool:
    """Kafka errors marked retriable, Kafka's own timeout (marked not retriable, yet a
    broker restart is exactly when it happens), and socket errors (TimeoutError and
    ConnectionError are OSErrors)."""
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False)) or isinstance(error, KafkaTimeoutError)
    return isinstance(error, OSError)


async def with_backoff(
    operation: Callable[[], Awaitable[T]],
    what: str,
    transient: Callable[[BaseException], bool] = is_transient,
    initial_s: float = 0.2,
    max_s: float = 10.0,
    attempts: int | None = None,
) -> T:
    """Retry `operation` on transient errors with capped, jittered exponential backoff."""
    delay = initial_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            if not transient(exc) or (attempts is not None and attempt >= attempts):
                raise
            log.warning("retrying", operation=what, attempt=attempt, error=repr(exc)[:200])
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, max_s)


class LagGauge:
    """Consumer lag per partition, refreshed at most every `every_s` (it runs in the poll
    loop, which turns several times a second under load).

    Lag = end of the partition (last stable offset under read_committed) - position: the
    consumer's own position, not "last record + 1", because a transactional partition ends
    with a commit marker that the position moves past but no record carries.
    """

    def __init__(self, gauge: Gauge, every_s: float = 1.0) -> None:
        self._gauge = gauge
        self._every_s = every_s
        self._due = 0.0

    async def update(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self._every_s
        for tp in consumer.assignment():
            try:
                position = await asyncio.wait_for(consumer.position(tp), 0.5)
            except (TimeoutError, KafkaError):
                continue
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is not None:
                lag = max(end - position, 0)
                self._gauge.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)


async def poll_express_first(
    consumer: AIOKafkaConsumer, express: frozenset[str], timeout_ms: int, max_records: int
) -> list[tuple[TopicPartition, list[ConsumerRecord]]]:
    """One poll, small uploads first: records buffered for the express-lane topics are
    taken before the main topics are read, and lead the returned batches. Kafka has no
    priorities inside a topic, so the lanes are separate topics."""
    lane = [tp for tp in consumer.assignment() if tp.topic in express]
    batches: dict[TopicPartition, list[ConsumerRecord]] = {}
    if lane:
        batches = await consumer.getmany(*lane, timeout_ms=0, max_records=max_records)
    if not batches:
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    return sorted(batches.items(), key=lambda item: item[0].topic not in express)


class AssignmentGuard:
    """The rule for batches that straddle a rebalance, shared by every consumer loop.

    aiokafka runs the rebalance listener while the loop may be inside getmany(); the records
    it returns may predate the listener's seeks or follow them. The listener works inside
    `assigning()` (which bumps an epoch under the lock); the loop reads the epoch with
    `epoch()` before fetching and processes a batch (holding `lock`) only if `current()`
    still says so. Otherwise it must drop the batch *and* rewind to the durable offset:
    dropping alone skips records, processing produces them twice (both seen in fault tests).
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._epoch = 0

    @contextlib.asynccontextmanager
    async def assigning(self) -> AsyncIterator[None]:
        async with self.lock:
            self._epoch += 1
            yield

    async def epoch(self) -> int:
        async with self.lock:  # never mid-assignment: its seeks are all done or not begun
            return self._epoch

    def current(self, epoch: int) -> bool:
        """Under `lock`: no assignment happened since `epoch` was read."""
        return epoch == self._epoch
