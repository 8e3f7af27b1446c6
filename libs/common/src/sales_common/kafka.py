"""Kafka plumbing shared by the services: librdkafka clients driven from asyncio, topics,
retries.

confluent-kafka (librdkafka) replaced aiokafka by an A/B in `make bench`: it spends about a
quarter of aiokafka's CPU per record, and speaks KIP-447 (transactions fenced by consumer
group generation). Its calls that wait for the broker block, so they run in a worker thread;
`produce()` only appends to librdkafka's queue and runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from sales_common.logging import get_logger
from sales_common.settings import ClientConfig, KafkaSettings
from sales_common.slices import TimeSlices

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

_ADMIN_TIMEOUT_S = 15.0
Headers = list[tuple[str, bytes]]
# One record to produce: topic, key, value, headers.
Outgoing = tuple[str, bytes, bytes, Headers]
# What Producer.produce takes as headers. Named once: `cast()` of the written-out type
# evaluated it (three generic aliases) per record, ~0.4 us of a ~2 us produce.
_ProduceHeaders = list[tuple[str, str | bytes | None]]


class KafkaProbe:
    """A metadata round trip to the cluster: the readiness check for Kafka."""

    def __init__(self, settings: KafkaSettings, timeout_s: float = 2.0) -> None:
        self._admin = AdminClient(settings.client_config())
        self._timeout_s = timeout_s

    async def check(self) -> None:
        await asyncio.to_thread(self._admin.list_topics, timeout=self._timeout_s)

    async def close(self) -> None:
        """Nothing to release: librdkafka frees the admin client with its last reference."""


async def ensure_topics(
    settings: KafkaSettings, partitions: dict[str, int] | None = None, replication: int = 1
) -> None:
    """Create the pipeline's topics that are missing, and hold sales.raw and its lane to
    their retention (on topics made before too): they carry customer ids, encrypted."""
    counts = {**DEFAULT_PARTITIONS, **(partitions or {})}
    names = settings.topics.names()
    retention = {"retention.ms": str(settings.topics.raw_retention_ms)}
    kept_short = {names["raw"], names["raw_priority"]}
    admin = AdminClient(settings.client_config())
    metadata = await asyncio.to_thread(admin.list_topics, timeout=_ADMIN_TIMEOUT_S)
    wanted = [
        NewTopic(
            names[role],
            num_partitions=count,
            replication_factor=replication,
            config=retention if names[role] in kept_short else {},
        )
        for role, count in counts.items()
        if names[role] not in metadata.topics
    ]
    made = set()
    for name, future in admin.create_topics(wanted).items() if wanted else ():
        try:
            await asyncio.wrap_future(future)
            made.add(name)
        except KafkaException as exc:
            # Another process may create them concurrently; that is fine.
            if error_of(exc).code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    # Topics made before (or by a concurrent process) may carry the broker's default.
    older = [ConfigResource(ResourceType.TOPIC, name) for name in sorted(kept_short - made)]
    for resource in older:
        resource.add_incremental_config(
            ConfigEntry(
                "retention.ms",
                retention["retention.ms"],
                incremental_operation=AlterConfigOpType.SET,
            )
        )

    async def alter() -> None:
        for future in admin.incremental_alter_configs(older).values():
            await asyncio.wrap_future(future)

    if older:  # a topic just made elsewhere may not be known to every broker yet
        await with_backoff(alter, "sales.raw retention", _unknown_topic_too, attempts=10)


def _unknown_topic_too(error: BaseException) -> bool:
    unknown = (
        isinstance(error, KafkaException)
        and error_of(error).code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    )
    return unknown or is_transient(error)


async def delete_topics(settings: KafkaSettings, names: list[str]) -> None:
    admin = AdminClient(settings.client_config())
    metadata = await asyncio.to_thread(admin.list_topics, timeout=_ADMIN_TIMEOUT_S)
    doomed = [name for name in names if name in metadata.topics]
    for future in admin.delete_topics(doomed).values() if doomed else ():
        with contextlib.suppress(KafkaException):  # deleted meanwhile
            await asyncio.wrap_future(future)


def error_of(exc: KafkaException) -> KafkaError:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(KafkaError._FAIL, str(exc))


# Codes librdkafka does not mark retriable, yet a broker restart is exactly when they come.
_OUTAGE_CODES = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


def is_transient(error: BaseException) -> bool:
    """Kafka errors marked retriable or typical of an outage, and socket errors
    (TimeoutError and ConnectionError are OSErrors)."""
    if isinstance(error, KafkaException):
        kafka_error = error_of(error)
        if kafka_error.fatal():
            return False
        return kafka_error.retriable() or kafka_error.code() in _OUTAGE_CODES
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


def source_of(message: Message) -> str:
    """Where a record was read: topic/partition/offset."""
    return f"{message.topic()}/{message.partition()}/{message.offset()}"


# Producers whose librdkafka call never returned: kept referenced, because destroying one
# (when the garbage collector frees it, on the event loop's thread) would block as well.
_WEDGED: list[Producer] = []
# Time a librdkafka call gets beyond its own timeout before it is given up.
_GRACE_S = 5.0


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if not future.done():  # given up already
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]


async def call_in_thread(call: Callable[[], T], limit_s: float) -> T:
    """`call()` in a thread of its own, awaited at most `limit_s`. librdkafka's transactional
    calls can block past their own timeout (seen: send_offsets_to_transaction waiting
    forever after a broker restart left the transaction needing an epoch bump); a daemon
    thread left behind then holds neither a shared worker pool nor the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = call()
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, name="librdkafka-call", daemon=True).start()
    return await asyncio.wait_for(future, limit_s)


Delivered = Callable[[KafkaError | None, Message], None]
# Serve librdkafka's delivery reports every this many records, so they never pile up.
_POLL_EVERY = 1000


class TransactionalProducer:
    """A librdkafka transactional producer for asyncio.

    A record that fails delivery puts the transaction in an abortable state, so
    `commit()` raises instead of committing without it (aiokafka needed a check of its
    own for that). `send_all` waits, off the event loop, while librdkafka's queue is
    full: memory stays bounded whatever the caller feeds it.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._producer = Producer(config)
        self._unpolled = 0
        # How long send_all waits for room in librdkafka's queue: a transaction that failed
        # ("requires epoch bump") keeps its records queued until it is aborted, so waiting
        # longer than the transaction may live would wait forever.
        self._max_wait_s = float(config.get("transaction.timeout.ms", 60_000)) / 1000
        self._wedged = False

    async def _call(self, call: Callable[[], T], timeout_s: float, what: str) -> T:
        """A blocking librdkafka call with `timeout_s` of its own; one that does not return
        in time wedges the producer: it is given up (fatal), never called again."""
        try:
            return await call_in_thread(call, timeout_s + _GRACE_S)
        except SystemError as exc:
            # confluent-kafka 2.16 raises this when a fatal error (fenced, say) meets a
            # delivery report callback in flush(); the error itself is lost.
            raise KafkaException(
                KafkaError(KafkaError._FATAL, f"{what} failed: {exc}", fatal=True)
            ) from exc
        except TimeoutError:
            self._wedged = True
            _WEDGED.append(self._producer)
            log.error("producer_wedged", call=what, after_s=timeout_s + _GRACE_S)
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"{what} did not return", fatal=True)
            ) from None

    async def start(self, timeout_s: float = 30.0) -> None:
        """InitProducerId: fences every earlier producer with this transactional id and
        aborts the transaction it left open. (Why one start in six took 0.5 s: see
        KafkaSettings.producer_config's `eager_connections`.)"""
        producer = self._producer
        await self._call(lambda: producer.init_transactions(timeout_s), timeout_s, "init")

    async def know(self, topic: str, timeout_s: float = 10.0) -> None:
        """Fetch `topic`'s metadata, so that a first record to it finds its partitions'
        leaders known. After `start()`: asked before, it made a slow start of a sparsely
        connected producer more likely (one in three)."""
        producer = self._producer
        await self._call(lambda: producer.list_topics(topic, timeout_s), timeout_s, "metadata")

    def begin(self) -> None:
        self._producer.begin_transaction()

    async def send_all(
        self,
        records: Iterable[Outgoing],
        bulk: TimeSlices | None = None,
        first: Delivered | None = None,
    ) -> int:
        """Queue `records` in the open transaction; returns how many. `first` hears the
        delivery report of the first one. `bulk`: this is bulk work, which gives other
        tasks a turn between records once its slice is spent (sales_common.slices).

        It runs for every output record, so a record that finds room costs one produce()
        call and a few additions; waiting for room is `_produce_when_room`."""
        producer = self._producer
        produce = producer.produce
        count = 0
        unpolled = self._unpolled
        for topic, key, value, headers in records:
            try:
                if count or first is None:
                    produce(topic, value, key, headers=cast(_ProduceHeaders, headers))
                else:
                    produce(
                        topic, value, key, headers=cast(_ProduceHeaders, headers), on_delivery=first
                    )
            except BufferError:  # librdkafka's queue is full: wait for deliveries
                await self._produce_when_room(
                    (topic, key, value, headers), None if count else first
                )
            count += 1
            unpolled += 1
            if unpolled >= _POLL_EVERY:
                producer.poll(0)
                unpolled = 0
            if bulk is not None and bulk.due():
                await bulk.give_way()
        self._unpolled = unpolled
        return count

    async def _produce_when_room(self, record: Outgoing, on_delivery: Delivered | None) -> None:
        """Queue `record` once librdkafka's queue has room, serving delivery reports off
        the event loop meanwhile; raises once the wait outlasts the transaction."""
        topic, key, value, headers = record
        producer = self._producer
        blocked_since = time.monotonic()
        while time.monotonic() - blocked_since <= self._max_wait_s:
            await asyncio.to_thread(producer.poll, 0.05)
            with contextlib.suppress(BufferError):
                producer.produce(
                    topic,
                    value,
                    key,
                    headers=cast(_ProduceHeaders, headers),
                    on_delivery=on_delivery,
                )
                return
        raise KafkaException(KafkaError(KafkaError._QUEUE_FULL, "no room for records: aborting"))

    async def flush(self, timeout_s: float) -> None:
        """Wait until every queued record is acknowledged (or failed)."""
        producer = self._producer
        remaining = await self._call(lambda: producer.flush(timeout_s), timeout_s, "flush")
        if remaining:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{remaining} unsent"))

    async def commit(
        self,
        timeout_s: float,
        offsets: list[TopicPartition] | None = None,
        group_metadata: object | None = None,
    ) -> None:
        """Commit the transaction, with the consumed `offsets` of the group whose
        `consumer_group_metadata()` is given (KIP-447: a zombie of an older group
        generation is refused here, so its transaction aborts)."""
        producer = self._producer
        if offsets:
            await self._call(
                lambda: producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s),
                timeout_s,
                "send_offsets_to_transaction",
            )
        await self._call(lambda: producer.commit_transaction(timeout_s), timeout_s, "commit")

    async def abort(self, timeout_s: float = 10.0, attempts: int = 6) -> bool:
        """Abort the open transaction. An abort that times out (a broker restarting) is
        resumed, as librdkafka asks; False when it fails for good: the producer is unusable,
        make a new one (the broker aborts the transaction at its timeout)."""
        producer = self._producer
        for attempt in range(1, attempts + 1):
            if self._wedged:
                return False
            try:
                await self._call(lambda: producer.abort_transaction(timeout_s), timeout_s, "abort")
                return True
            except KafkaException as exc:
                error = error_of(exc)
                log.warning("abort_failed", attempt=attempt, error=str(error)[:200])
                if not error.retriable():
                    return False
        return False

    async def close(self, timeout_s: float = 30.0) -> None:
        """Release the producer. Never raises: closing aborts an open transaction, which
        fails on a fenced producer, and a fenced one is exactly what gets closed. Bounded: a
        producer whose coordinator does not answer must not hold the caller."""
        if self._wedged:  # a call of it never returned: closing would not either
            return
        try:
            await self._call(self._producer.close, timeout_s, "close")
        except KafkaException as exc:
            log.debug("producer_close_failed", error=str(exc)[:200])


class BackgroundCloser:
    """Closes producers off the caller's path (a request answers once its transaction is
    decided, not once librdkafka's threads have stopped), and keeps every close it started
    until `drain()`, so none is lost at shutdown."""

    def __init__(self) -> None:
        self._closing: set[asyncio.Task[None]] = set()

    def close(self, producer: TransactionalProducer) -> None:
        task = asyncio.create_task(producer.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @property
    def pending(self) -> int:
        return len(self._closing)

    async def drain(self) -> None:
        """Wait for every close started so far (each is bounded by its own timeout)."""
        while self._closing:
            await asyncio.wait(set(self._closing))
