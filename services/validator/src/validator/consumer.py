"""Consume sales.raw, transform, produce to sales.validated / sales.rejected: exactly once.

Each polled batch is one Kafka transaction holding its output records and the consumed
offsets. Consumers of the output read with isolation_level=read_committed, so they see
each output once.

Fencing (KIP-447). One transactional producer per lane and process, whatever the number
of partitions; the consumed offsets are committed with the consumer's group metadata
(member id and generation). A validator that lost its partitions in a rebalance but has
not noticed yet (a zombie) carries an old generation: the broker refuses its offsets,
so its transaction aborts and only the new owner's output counts. As in Kafka Streams'
exactly-once v2, the transactional id is unique per process, and a dead process's open
transaction is aborted by the broker after `transaction_timeout_ms`.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import ValidationError
from sales_common.codec import (
    RawRowsStruct,
    RejectedSaleStruct,
    ValidatedSaleStruct,
    decode_raw,
    encode_struct,
)
from sales_common.consume import ConsumeLoop, Lanes, Position, RetryBatch
from sales_common.events import record_headers
from sales_common.kafka import (
    Outgoing,
    TransactionalProducer,
    error_of,
    source_of,
    with_backoff,
)
from sales_common.logging import get_logger
from sales_common.observability import Heartbeat
from sales_common.pii import CustomerHasher, FieldCipher, UnreadableCustomerId
from sales_common.rejections import unreadable, unreadable_customer_id
from sales_common.slices import TimeSlices

from validator.config import ValidatorSettings
from validator.metrics import ValidatorMetrics
from validator.rules import PackRules, native_rows

log = get_logger(__name__)
_HEADERS = record_headers()
_EXPRESS_COPY_HEADERS = record_headers(express_copy=True)
# A row the native path encoded: the key and value of its sales.validated record.
EncodedSale = tuple[bytes, bytes]
Result = ValidatedSaleStruct | RejectedSaleStruct | EncodedSale


class ValidatorHandler:
    """Validates one lane's batches, each in one transaction."""

    def __init__(
        self,
        settings: ValidatorSettings,
        metrics: ValidatorMetrics,
        hasher: CustomerHasher,
        cipher: FieldCipher,
        lane: str,
        express: bool,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._hasher = hasher
        self._cipher = cipher
        self._lane = lane
        # A small upload's outputs also go to the loader's express lane; sales.validated
        # still carries every valid row once, so its readers keep one topic.
        self._express = express
        # Rows that keep every rule go from cells to record in Rust; the rest, and any row
        # it is unsure of, through the Python rules (None: those take every row).
        self._native = native_rows(settings.rules, settings.pii)
        if self._native is None:
            log.warning("native_rules_off", lane=lane, reason="rules table or limits")
        # The lanes share this process's event loop: the main lane's batches are bulk work,
        # done in slices between which the express lane gets its turn.
        self._bulk = None if express else TimeSlices()
        self._timeout_s = settings.transaction_timeout_ms / 1000
        self._transactional_id = (
            f"{settings.transactional_id_prefix}-{lane}-{uuid.uuid4().hex[:12]}"
        )
        self._producer: TransactionalProducer | None = None

    async def resume_offsets(self, partitions: list[Position]) -> None:
        return None  # the offsets our transactions committed to Kafka

    async def handle(self, records: list[Message], consumer: Consumer) -> None:
        """One transaction: the batch's outputs and its input offsets, or nothing."""
        started = time.monotonic()
        results = await self.transform(records, datetime.now(UTC))
        outgoing = self._outgoing(results)
        next_offsets: dict[Position, int] = {}
        for record in records:  # in order within a partition: the last one wins
            next_offsets[(record.topic() or "", record.partition() or 0)] = (
                record.offset() or 0
            ) + 1
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        producer = await self._ready_producer()
        try:
            producer.begin()
            await producer.send_all(outgoing, self._bulk)
            await producer.commit(self._timeout_s, offsets, consumer.consumer_group_metadata())
        except KafkaException as exc:
            self._metrics.aborted.inc()
            error = error_of(exc)
            log.warning("transaction_aborted", lane=self._lane, error=str(error)[:200])
            # Fatal (fenced, say) or not even abortable: a new producer, a new epoch.
            if error.fatal() or not await producer.abort(self._timeout_s):
                await self._drop_producer()
            raise RetryBatch from exc
        self._count(results)
        self._metrics.batch_seconds.observe(time.monotonic() - started)

    async def close(self) -> None:
        await self._drop_producer()

    async def _ready_producer(self) -> TransactionalProducer:
        if self._producer is None:
            producer = TransactionalProducer(
                self._settings.kafka.producer_config(
                    self._transactional_id,
                    self._settings.transaction_timeout_ms,
                    # Small uploads' batches: lingering only delayed their commit (a
                    # transaction of this lane's shape, p99 45 -> 14 ms: BENCHMARKS.md).
                    linger_ms=0 if self._express else None,
                    # Its output partitions are on every broker anyway; started on a batch's
                    # path (the first, or after a failure), it must not wait 0.5 s.
                    eager_connections=True,
                )
            )
            await with_backoff(lambda: producer.start(self._timeout_s), "producer start", max_s=5)
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.close()

    async def transform(self, records: list[Message], now: datetime) -> list[Result]:
        """Each record's rows validated (or rejected, each with its reasons), in order; on
        the main lane in slices, between which the express lane gets its turn."""
        bulk = self._bulk
        if bulk is not None:
            bulk.restart()
        results: list[Result] = []
        stamp = msgspec.json.encode(now).decode()  # validated_at as each record writes it
        for record in records:
            self._transform_record(record, now, stamp, results)
            if bulk is not None and bulk.due():
                await bulk.give_way()
        return results

    def _transform_record(
        self, record: Message, now: datetime, stamp: str, results: list[Result]
    ) -> None:
        """One sales.raw record's rows, appended to `results`."""
        try:
            packs = decode_raw(record.value() or b"")
        except (ValidationError, ValueError) as exc:
            # Kept whole: ingest writes every record of an upload, so one that is not
            # a sales.raw record at all has no row to trust.
            results.append(unreadable(source_of(record), f"not a sales.raw record: {exc}", now))
            return
        offset = 0  # of the pack's first row in the record
        for pack in packs:
            self._transform_pack(pack, record, offset, now, stamp, results)
            offset += len(pack.rows)

    def _transform_pack(
        self,
        pack: RawRowsStruct,
        record: Message,
        offset: int,
        now: datetime,
        stamp: str,
        results: list[Result],
    ) -> None:
        cipher = self._cipher
        pack_rules = PackRules(pack, self._settings.rules, self._hasher, now)

        def unreadable_id(index: int, exc: UnreadableCustomerId) -> RejectedSaleStruct:
            return unreadable_customer_id(
                pack_rules.upload_id,
                pack_rules.row_number(index),
                pack_rules.fields(index),
                str(exc),
                now,
            )

        count = len(pack.rows)
        try:
            # The ids ingest encrypted, in clear only in this process's memory.
            ids = _customer_ids(cipher, pack)
        except UnreadableCustomerId as exc:  # the rows are readable, their ids are not
            results.extend(unreadable_id(index, exc) for index in range(count))
            return
        column = pack_rules.customer_column
        encoded = None
        if self._native is not None and column is None:
            try:
                encoded = pack_rules.encode_valid(self._native, ids, stamp)
            except Exception as exc:  # a fault of the fast path: the Python rules decide
                log.error("native_rules_failed", error=repr(exc)[:200])
        for index in range(count):
            if encoded is not None and (sale := encoded[index]) is not None:
                results.append(sale)
                continue
            try:
                if column is None:  # ids sealed per record (RawRows, RawPack) or none at all
                    customer_id = None if ids is None else ids[index]
                else:
                    customer_id = _customer_id_of_old_row(cipher, pack_rules, index, column, ids)
                results.append(pack_rules.validate(index, customer_id))
            except UnreadableCustomerId as exc:
                results.append(unreadable_id(index, exc))
            except ValueError as exc:  # no rule foresaw it: kept
                source = f"{source_of(record)}#{offset + index}"
                results.append(unreadable(source, f"not a valid row: {exc}", now))

    def _outgoing(self, results: list[Result]) -> list[Outgoing]:
        # `type() is`, not isinstance(): msgspec's Struct classes check instances in Python
        # (StructMeta.__instancecheck__), ~0.2 us a row; the Structs have no subclasses.
        topics = self._settings.kafka.topics
        validated, rejected = topics.validated, topics.rejected
        if self._express:  # each record encoded once, sent twice: the copy and its twin
            twins = {topic: topics.priority_of(topic) for topic in (validated, rejected)}
            outgoing: list[Outgoing] = []
            for result in results:
                if isinstance(result, tuple):
                    topic, (key, value) = validated, result
                else:
                    topic = rejected if type(result) is RejectedSaleStruct else validated
                    key, value = result.event_id.encode(), encode_struct(result)
                outgoing.append((topic, key, value, _EXPRESS_COPY_HEADERS))
                outgoing.append((twins[topic], key, value, _HEADERS))
            return outgoing
        return [
            (validated, result[0], result[1], _HEADERS)
            if isinstance(result, tuple)
            else (
                rejected if type(result) is RejectedSaleStruct else validated,
                result.event_id.encode(),
                encode_struct(result),
                _HEADERS,
            )
            for result in results
        ]

    def _count(self, results: list[Result]) -> None:
        # Tallied first: a labelled counter lookup per row cost more than the rules did. Most
        # rows are valid, so only the rejections are looked at one by one.
        rejections = [result for result in results if type(result) is RejectedSaleStruct]
        outcomes = Counter(
            "unreadable" if rejection.upload_id is None else "rejected" for rejection in rejections
        )
        if valid := len(results) - len(rejections):
            outcomes["valid"] = valid
            self._metrics.native_rows.inc(sum(type(result) is tuple for result in results))
        rules = Counter(
            violation.rule for rejection in rejections for violation in rejection.violations
        )
        for outcome, count in outcomes.items():
            self._metrics.rows.labels(outcome).inc(count)
            self._metrics.processed.labels("valid" if outcome == "valid" else "rejected").inc(count)
        for rule, count in rules.items():
            self._metrics.rejections.labels(rule).inc(count)


def _customer_ids(cipher: FieldCipher, pack: RawRowsStruct) -> list[str | None] | None:
    """Each row's customer id (None: the row has none), or None for a record without sealed
    ids (a file without the column, or written before packs)."""
    if pack.customer_ids is None:
        return None
    # The token is bound to the first row and the count; the ids go to the rows by position.
    return cipher.open_ids(pack.customer_ids, pack.upload_id, pack.first_row, len(pack.rows))


def _customer_id_of_old_row(
    cipher: FieldCipher,
    pack_rules: PackRules,
    index: int,
    column: int,
    ids: list[str | None] | None,
) -> str | None:
    """The customer id of a row written before `RawRows` whose fields held one, as the
    validator read it then: a pack's sealed id first; else the row's own, decrypted if it was
    sealed on its own. This path can go once every ingest writes RawRows and sales.raw's
    retention (a day) has passed."""
    if ids is not None and ids[index] is not None:
        return ids[index]
    value = pack_rules.cell(index, column)
    if ids is None and value:
        return cipher.reveal(value, pack_rules.upload_id, pack_rules.row_number(index))
    return value


def validator_lanes(
    settings: ValidatorSettings, metrics: ValidatorMetrics, heartbeats: dict[str, Heartbeat]
) -> Lanes:
    """The main lane (sales.raw) and the express lane (small uploads), each with its own
    consumer group and producer, so a big upload never queues a small one."""
    topics = settings.kafka.topics
    hasher = CustomerHasher(settings.pii)
    cipher = FieldCipher(settings.pii_encryption)
    loops = []
    for lane, topic, group in (
        ("main", topics.raw, settings.group_id),
        ("express", topics.raw_priority, f"{settings.group_id}.express"),
    ):
        loops.append(
            ConsumeLoop(
                f"validator-{lane}",
                settings.kafka.consumer_config(group),
                [topic],
                ValidatorHandler(
                    settings, metrics, hasher, cipher, lane, express=lane == "express"
                ),
                heartbeats[lane],
                metrics.lag,
                settings.max_batch_records,
                stuck_after_s=settings.kafka.consumer_stuck_s,
            )
        )
    return Lanes(*loops)
