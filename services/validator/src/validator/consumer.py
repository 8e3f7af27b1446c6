"""Consume sales.raw, transform, produce to sales.validated / sales.rejected: exactly once.

Each batch of one input partition is one Kafka transaction holding its output records and
the consumed offsets (`send_offsets_to_transaction`). Consumers of the output read with
isolation_level=read_committed, so they see each output once.

Fencing. aiokafka speaks the transaction protocol before KIP-447: the broker cannot fence a
zombie by consumer-group generation. So, as in Kafka Streams' original exactly-once mode,
there is one transactional producer per *input partition*, with transactional_id
`<prefix>-<topic>-<partition>`. Whoever owns partition p after a rebalance initialises the
producer for p, which aborts any open transaction of the previous owner and bumps the
producer epoch: the previous owner (a zombie that has not noticed it lost p) can then
neither produce nor commit for p. Only after that do we read the committed offset for p, so
we resume exactly where the last committed transaction ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, ProducerFenced
from pydantic import ValidationError
from sales_common.codec import (
    RejectedSaleStruct,
    ValidatedSaleStruct,
    decode_raw,
    encode_struct,
)
from sales_common.events import record_headers
from sales_common.kafka import (
    AssignmentGuard,
    KeyedBatches,
    LagGauge,
    poll_express_first,
    with_backoff,
)
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat
from sales_common.pii import CustomerHasher
from sales_common.rejections import unreadable

from validator.config import ValidatorSettings
from validator.metrics import ValidatorMetrics
from validator.rules import validate

log = get_logger(__name__)
_HEADERS = record_headers()
_EXPRESS_COPY_HEADERS = record_headers(express_copy=True)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ValidatorLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._loop.acquire(assigned)


class ValidatorLoop:
    def __init__(
        self, settings: ValidatorSettings, metrics: ValidatorMetrics, heartbeat: Heartbeat
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._heartbeat = heartbeat
        self._hasher = CustomerHasher(settings.pii)
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        # Its lock is held while a transaction is in flight, so a rebalance waits for it.
        self._guard = AssignmentGuard()
        self._lag = LagGauge(metrics.lag)
        self._stopping = asyncio.Event()
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
        topics = self._settings.kafka.topics
        self.consumer.subscribe([topics.raw, topics.raw_priority], listener=_Rebalance(self))
        await with_backoff(self.consumer.start, "consumer start", max_s=5)
        try:
            while not self._stopping.is_set():
                self._heartbeat.beat()
                epoch = await self._guard.epoch()
                batches = await poll_express_first(
                    self.consumer,
                    frozenset({topics.raw_priority}),
                    timeout_ms=500,
                    max_records=self._settings.max_batch_records,
                )
                for tp, records in batches:
                    if self._stopping.is_set():
                        break
                    async with self._guard.lock:
                        if tp not in self._producers:
                            continue  # not ours any more
                        if self._guard.current(epoch):
                            await self._process(tp, records)
                        else:  # straddled a rebalance: drop, rewind
                            await self._seek_to_committed(tp)
                await self._lag.update(self.consumer)
        finally:
            async with self._guard.lock:
                await self._close_producers(list(self._producers))
            await self.consumer.stop()

    async def acquire(self, partitions: list[TopicPartition]) -> None:
        async with self._guard.assigning():
            for tp in partitions:
                self._producers[tp] = await self._start_producer(tp)
                # Without a committed offset, leave tp to auto_offset_reset: an explicit
                # seek to 0 here re-delivered records (aiokafka 0.14).
                await self._seek_to_committed(tp, from_beginning=False)
            log.info("partitions_assigned", partitions=[tp.partition for tp in partitions])

    async def _seek_to_committed(self, tp: TopicPartition, from_beginning: bool = True) -> None:
        """Position tp at the offset the last committed transaction left."""
        committed = await with_backoff(lambda: self.consumer.committed(tp), "committed offset")
        if committed is None and from_beginning:
            committed = (await self.consumer.beginning_offsets([tp]))[tp]
        if committed is not None:
            self.consumer.seek(tp, committed)

    async def _start_producer(self, tp: TopicPartition) -> AIOKafkaProducer:
        prefix = self._settings.transactional_id_prefix
        producer = AIOKafkaProducer(
            **self._settings.kafka.transactional_producer_options(
                f"{prefix}-{tp.topic}-{tp.partition}"
            )
        )
        # start() runs InitProducerId: fences the previous owner of this partition.
        await with_backoff(producer.start, "producer start", max_s=5)
        return producer

    async def release(self, partitions: list[TopicPartition]) -> None:
        async with self._guard.lock:
            await self._close_producers(partitions)

    async def _close_producers(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            producer = self._producers.pop(tp, None)
            if producer is not None:
                with contextlib.suppress(KafkaError):
                    await producer.stop()

    def _transform(
        self, records: list[ConsumerRecord], now: datetime
    ) -> list[ValidatedSaleStruct | RejectedSaleStruct]:
        results: list[ValidatedSaleStruct | RejectedSaleStruct] = []
        for record in records:
            try:
                raw = decode_raw(record.value or b"")
                results.append(validate(raw, self._settings.rules, self._hasher, now))
            except (ValidationError, ValueError) as exc:
                results.append(unreadable(record, f"not a sales.raw record: {exc}", now))
        return results

    def _count(self, results: list[ValidatedSaleStruct | RejectedSaleStruct]) -> None:
        # Tallied first: a labelled counter lookup per row cost more than the rules did.
        outcomes: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for result in results:
            if isinstance(result, RejectedSaleStruct):
                outcomes["unreadable" if result.upload_id is None else "rejected"] += 1
                rules.update(violation.rule for violation in result.violations)
            else:
                outcomes["valid"] += 1
        for outcome, count in outcomes.items():
            self._metrics.rows.labels(outcome).inc(count)
            self._metrics.processed.labels("valid" if outcome == "valid" else "rejected").inc(count)
        for rule, count in rules.items():
            self._metrics.rejections.labels(rule).inc(count)

    async def _process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """One transaction: the batch's outputs and its input offset, or nothing."""
        topics = self._settings.kafka.topics
        producer = self._producers[tp]
        started = time.monotonic()
        results = self._transform(records, datetime.now(UTC))
        # A small upload's outputs also go to the loader's express lane; sales.validated
        # still carries every valid row once, so its readers keep one topic.
        express = tp.topic == topics.raw_priority
        try:
            async with producer.transaction():
                batches = KeyedBatches(producer)
                for result in results:
                    topic = (
                        topics.rejected
                        if isinstance(result, RejectedSaleStruct)
                        else topics.validated
                    )
                    key, value = result.event_id.encode(), encode_struct(result)
                    if express:
                        await batches.add(topic, key, value, _EXPRESS_COPY_HEADERS)
                        await batches.add(topics.priority_of(topic), key, value, _HEADERS)
                    else:
                        await batches.add(topic, key, value, _HEADERS)
                await batches.flush()
                await producer.send_offsets_to_transaction(
                    {tp: records[-1].offset + 1}, self._settings.group_id
                )
        except ProducerFenced:
            # Another instance owns this partition now; the rebalance takes it from us.
            log.warning("producer_fenced", partition=tp.partition)
            await self._close_producers([tp])
            return
        except KafkaError as exc:
            self._metrics.aborted.inc()
            log.warning("transaction_aborted", partition=tp.partition, error=repr(exc)[:200])
            await self._restart_partition(tp)
            return
        self._count(results)
        self._metrics.batch_seconds.observe(time.monotonic() - started)

    async def _restart_partition(self, tp: TopicPartition) -> None:
        """After a failed transaction: a fresh producer (new epoch) and a rewind to the last
        committed offset, so the batch is fetched and produced again, once."""
        await self._close_producers([tp])
        self._producers[tp] = await self._start_producer(tp)
        await self._seek_to_committed(tp)
