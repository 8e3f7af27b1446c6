"""Publishes one spooled upload to sales.raw (or its express lane) in one Kafka transaction.

Consumers read with isolation_level=read_committed, so a refused or interrupted upload is
never seen downstream: its transaction is aborted. The transactional id is derived from the
upload id, so a retry of the same upload (same Idempotency-Key), or the janitor that fails
an abandoned one, fences any zombie attempt: initialising a producer with that id aborts
the old open transaction, and the old producer can no longer commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sales_common.events import record_headers
from sales_common.kafka import KeyedBatches

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


class RawPublisher:
    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings

    def timeout_s(self, spooled_bytes: int) -> float:
        """Long enough to publish `spooled_bytes` at the slowest accepted pace, no longer."""
        limits = self._settings.transactions
        needed = limits.min_timeout_s + spooled_bytes / limits.min_publish_bytes_per_s
        return min(needed, limits.max_timeout_s)

    def _producer(self, upload_id: UUID, timeout_s: float) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._settings.kafka.transactional_producer_options(transactional_id(upload_id)),
            transaction_timeout_ms=int(timeout_s * 1000),
        )

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
            await producer.start()
            await producer.begin_transaction()
            committed = False
            try:
                batches = KeyedBatches(producer)
                for count, (key, value) in enumerate(records, 1):
                    # Waits only while the partition's previous batch is queued, which
                    # bounds memory; delivery errors surface in flush().
                    await batches.add(topic, key, value, _HEADERS)
                    if count % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                acknowledged = await batches.flush()
                probe = (
                    ""
                    if not acknowledged
                    else "/".join(
                        str(x)
                        for x in (
                            acknowledged[0].topic,
                            acknowledged[0].partition,
                            acknowledged[0].offset,
                        )
                    )
                )
                # Checked after our producer's InitProducerId: a retry that took over before
                # it is seen here; one after it fences this producer, so the commit fails.
                if not await before_commit(probe):
                    raise NotOwned(str(upload_id))
                await producer.commit_transaction()
                committed = True
            finally:
                # A failed flush or commit is aborted too, or the open transaction holds
                # back read_committed readers of these partitions until it times out.
                if not committed:
                    with contextlib.suppress(KafkaError):
                        await producer.abort_transaction()
        finally:
            await producer.stop()

    async def fence(self, upload_id: UUID) -> None:
        """Abort whatever transaction an earlier attempt of this upload left open."""
        producer = self._producer(upload_id, self._settings.transactions.min_timeout_s)
        try:
            # InitProducerId: aborts the open transaction and bumps the epoch. Bounded: the
            # janitor must not hang on a broker that does not answer.
            await asyncio.wait_for(producer.start(), _FENCE_TIMEOUT_S)
        finally:
            await producer.stop()

    async def outcome(self, probe: str, wait_s: float = 10.0) -> TransactionOutcome:
        """Whether the fenced transaction that wrote `probe` (topic/partition/offset) was
        committed: a read_committed reader returns that record, or moves past it when the
        transaction was aborted. 'unknown' while an older open transaction hides it."""
        topic, partition, offset = probe.rsplit("/", 2)
        tp = TopicPartition(topic, int(partition))
        consumer = AIOKafkaConsumer(
            **self._settings.kafka.client_options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, int(offset))
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                if any(r.offset == int(offset) for r in fetched.get(tp, [])):
                    return "committed"
                if await consumer.position(tp) > int(offset):
                    return "aborted"
            return "unknown"
        finally:
            await consumer.stop()
