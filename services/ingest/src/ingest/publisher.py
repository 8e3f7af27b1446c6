"""Publishes one spooled upload to sales.raw (or its express lane) in one Kafka transaction.

Consumers read with isolation_level=read_committed, so a refused or interrupted upload is
never seen downstream: its transaction is aborted. The transactional id is derived from the
upload id, so a retry of the same upload (same Idempotency-Key), or the janitor that fails
an abandoned one, fences any zombie attempt: initialising a producer with that id aborts
the old open transaction, and the old producer can no longer commit. Producers are closed off
the request's path (`BackgroundCloser`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal
from uuid import UUID

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sales_common.events import record_headers
from sales_common.kafka import BackgroundCloser, TransactionalProducer

from ingest.config import IngestSettings

_HEADERS = record_headers()
# Publishing a big upload must not starve the event loop: requests, lease renewals and
# small uploads get a turn every this many records (about a millisecond of work).
_YIELD_EVERY = 200


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


class RawPublisher:
    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings
        self._closer = BackgroundCloser()

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
        """After the last upload: every producer closed."""
        await self._closer.drain()

    async def publish(
        self,
        upload_id: UUID,
        topic: str,
        records: Iterable[tuple[bytes, bytes]],
        timeout_s: float,
        before_commit: BeforeCommit,
    ) -> None:
        """All of `records` in one committed transaction, or none of them (raises)."""
        producer = self._producer(upload_id, timeout_s)
        try:
            await producer.start(_FENCE_TIMEOUT_S)
            producer.begin()
            committed = False
            try:
                first = _FirstDelivery()
                await producer.send_all(
                    ((topic, key, value, _HEADERS) for key, value in records),
                    yield_every=_YIELD_EVERY,
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
