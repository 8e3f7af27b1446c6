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
from collections.abc import Iterable
from uuid import UUID

from aiokafka import AIOKafkaProducer
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
                await batches.flush()
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
            await producer.start()  # InitProducerId: aborts the open transaction, bumps the epoch
        finally:
            await producer.stop()
