"""Publishes one upload's rows to sales.raw inside one Kafka transaction.

Consumers read with isolation_level=read_committed, so a refused or interrupted upload is
never seen downstream: its transaction is aborted. The transactional id is derived from the
upload id, so a retry of the same upload (same Idempotency-Key) fences any zombie attempt:
initialising the producer aborts the old open transaction and the old producer can no
longer commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sales_common.events import record_headers
from sales_common.kafka import KeyedBatches

from ingest.config import IngestSettings

_HEADERS = record_headers()


class RawTransaction:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._batches = KeyedBatches(producer)
        self._topic = topic
        self.finished = False

    async def send(self, key: bytes, value: bytes) -> None:
        # Waits only when the partition's previous batch is still queued, which bounds
        # memory; delivery errors surface at commit.
        await self._batches.add(self._topic, key, value, _HEADERS)

    async def commit(self) -> None:
        # Finished only once committed: a failed flush or commit must still be aborted, or
        # the open transaction holds back read_committed readers of these partitions.
        await self._batches.flush()
        await self._producer.commit_transaction()
        self.finished = True

    async def abort(self) -> None:
        if not self.finished:
            self.finished = True
            with contextlib.suppress(KafkaError):
                await self._producer.abort_transaction()


class RawPublisher:
    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings

    @contextlib.asynccontextmanager
    async def transaction(self, upload_id: UUID) -> AsyncIterator[RawTransaction]:
        settings = self._settings
        producer = AIOKafkaProducer(
            **settings.kafka.transactional_producer_options(f"ingest-{upload_id}"),
            transaction_timeout_ms=settings.transaction_timeout_ms,
        )
        try:
            await producer.start()
            await producer.begin_transaction()
            txn = RawTransaction(producer, settings.kafka.topics.raw)
            try:
                yield txn
            finally:
                await txn.abort()
        finally:
            await producer.stop()
