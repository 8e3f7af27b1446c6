"""The services' Kafka client layer (sales_common.kafka, librdkafka) against the real
broker, checked with an independent client (aiokafka) where records are read back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from devstack.pipeline import delete_topics
from sales_common.kafka import BackgroundCloser, TransactionalProducer, ensure_topics, error_of
from sales_common.settings import KafkaSettings, TopicSettings

from tests.helpers import consume_quiet, eventually

pytestmark = pytest.mark.integration
MakeTopic = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_topic(kafka_settings: KafkaSettings) -> AsyncIterator[MakeTopic]:
    """Creates topics of the test's shape; deletes them after."""
    created: list[str] = []

    async def make(partitions: int = 3, max_message_bytes: int = 1_048_588) -> str:
        name = f"client-{uuid.uuid4().hex[:8]}"
        admin = AdminClient(kafka_settings.client_config())
        config = {"max.message.bytes": str(max_message_bytes)}
        futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)])
        await asyncio.wrap_future(futures[name])
        created.append(name)
        return name

    yield make
    await delete_topics(kafka_settings, created)


async def started(settings: KafkaSettings, transactional_id: str = "") -> TransactionalProducer:
    producer = TransactionalProducer(
        settings.producer_config(transactional_id or f"test-{uuid.uuid4().hex[:8]}")
    )
    await producer.start()
    return producer


async def test_a_transaction_with_an_undeliverable_record_aborts(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """The rule aiokafka needed KeyedBatches.flush for: a record the broker refuses fails
    the commit, so no transaction commits its offsets without its records."""
    topic = await make_topic(max_message_bytes=2_000)
    producer = await started(kafka_settings)
    try:
        producer.begin()
        await producer.send_all(
            [(topic, b"small", b"fits", []), (topic, b"too-big", b"x" * 10_000, [])]
        )
        with pytest.raises(KafkaException) as refused:
            await producer.commit(10)
        assert error_of(refused.value).txn_requires_abort()
        assert await producer.abort()
    finally:
        await producer.close()
    assert await consume_quiet(kafka_settings, topic) == []


async def test_a_zombie_producer_is_fenced(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """Starting a producer with the same transactional id aborts the zombie's open
    transaction, and the zombie can no longer commit."""
    topic = await make_topic()
    transactional_id = f"test-{uuid.uuid4().hex[:8]}"
    zombie = await started(kafka_settings, transactional_id)
    successor: TransactionalProducer | None = None
    try:
        zombie.begin()
        await zombie.send_all([(topic, b"k", b"from the zombie", [])])
        await zombie.flush(10)
        successor = await started(kafka_settings, transactional_id)
        successor.begin()
        await successor.send_all([(topic, b"k", b"from the successor", [])])
        await successor.commit(10)
        with pytest.raises(KafkaException) as fenced:
            await zombie.commit(10)
        assert error_of(fenced.value).fatal()
    finally:
        await zombie.close()
        if successor is not None:
            await successor.close()
    records = await consume_quiet(kafka_settings, topic)
    assert [r.value for r in records] == [b"from the successor"]


async def test_a_producer_fenced_before_its_first_record_fails_as_fatal(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """A producer started ahead and fenced before it writes (a retry took its upload over):
    its flush fails with a fatal KafkaException, also with a delivery report callback on the
    record (confluent-kafka raises a SystemError there), and nothing is visible."""
    topic = await make_topic()
    transactional_id = f"test-{uuid.uuid4().hex[:8]}"
    zombie = await started(kafka_settings, transactional_id)
    successor = await started(kafka_settings, transactional_id)
    reports: list[KafkaError | None] = []
    try:
        zombie.begin()
        await zombie.send_all(
            [(topic, b"k", b"from the zombie", [])], first=lambda error, _: reports.append(error)
        )
        with pytest.raises(KafkaException) as fenced:
            await zombie.flush(10)
        assert error_of(fenced.value).fatal()
        assert not await zombie.abort()
    finally:
        for producer in (zombie, successor):
            await producer.close()
    assert await consume_quiet(kafka_settings, topic) == []


async def test_producers_closed_in_the_background_are_all_closed_by_drain(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """What ingest does after each upload: the request does not wait for the close, and
    shutdown waits for every close started."""
    topic = await make_topic()
    closer = BackgroundCloser()
    producers = [await started(kafka_settings) for _ in range(3)]
    for n, producer in enumerate(producers):
        producer.begin()
        await producer.send_all([(topic, b"k", f"record {n}".encode(), [])])
        await producer.commit(10)
    for producer in producers:
        closer.close(producer)
    assert closer.pending == 3
    await closer.drain()
    assert closer.pending == 0
    assert len(await consume_quiet(kafka_settings, topic)) == 3


async def test_read_committed_never_sees_aborted_records(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    topic = await make_topic(partitions=1)
    producer = await started(kafka_settings)
    try:
        for outcome in ("aborted", "committed", "aborted"):
            producer.begin()
            await producer.send_all(
                [(topic, b"k", f"{outcome} {n}".encode(), []) for n in range(50)]
            )
            if outcome == "committed":
                await producer.commit(10)
            else:
                await producer.flush(10)  # in the log, then aborted
                assert await producer.abort()
    finally:
        await producer.close()
    values = [r.value for r in await consume_quiet(kafka_settings, topic)]
    assert values == [f"committed {n}".encode() for n in range(50)]


async def test_keyed_records_land_on_the_java_clients_partition(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """librdkafka's default partitioner differs from Java's; the services set murmur2."""
    topic = await make_topic(partitions=6)
    keys = [f"event-{n}".encode() for n in range(300)]
    producer = await started(kafka_settings)
    try:
        producer.begin()
        await producer.send_all([(topic, key, b"v", []) for key in keys])
        await producer.commit(10)
    finally:
        await producer.close()
    records = await consume_quiet(kafka_settings, topic)
    partitions = list(range(6))
    assert sorted(r.key or b"" for r in records) == sorted(keys)
    assert all(r.partition == DefaultPartitioner()(r.key, partitions, partitions) for r in records)


async def test_offsets_of_an_older_group_generation_are_refused(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    """KIP-447: a member that lost its partitions in a rebalance (a zombie holding the
    group metadata of the older generation) cannot commit offsets in a transaction."""
    topic = await make_topic(partitions=2)
    group = f"test-{uuid.uuid4().hex[:8]}"
    first = Consumer(kafka_settings.consumer_config(group))
    second = Consumer(kafka_settings.consumer_config(group))
    producer = await started(kafka_settings)
    try:
        first.subscribe([topic])
        await poll_until(lambda: len(first.assignment()) == 2, first)
        stale = first.consumer_group_metadata()
        second.subscribe([topic])
        await poll_until(lambda: len(second.assignment()) == 1, first, second)
        producer.begin()
        await producer.send_all([(topic, b"k", b"output of a zombie", [])])
        with pytest.raises(KafkaException):
            await producer.commit(10, [TopicPartition(topic, 0, 1)], stale)
        assert await producer.abort()
        # The current generation's metadata commits.
        producer.begin()
        await producer.commit(10, [TopicPartition(topic, 0, 0)], first.consumer_group_metadata())
    finally:
        await producer.close()
        for consumer in (first, second):
            await asyncio.to_thread(consumer.close)
    assert await consume_quiet(kafka_settings, topic) == []


async def poll_until(done: Callable[[], bool], *consumers: Consumer, timeout_s: float = 30) -> None:
    """Poll every consumer (rebalances happen inside poll) until `done()`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "no rebalance within the deadline"
        await asyncio.gather(*(asyncio.to_thread(c.consume, 1, 0.2) for c in consumers))


async def test_sales_raw_is_held_to_its_retention_new_or_old(kafka_settings: KafkaSettings) -> None:
    """sales.raw carries customer ids (encrypted): its retention is the setting's, also on a
    topic that existed before; the public topics keep the broker's."""
    settings = kafka_settings.model_copy(deep=True)
    settings.topics = TopicSettings(
        raw=f"r{uuid.uuid4().hex[:8]}.raw",
        validated=f"r{uuid.uuid4().hex[:8]}.validated",
        rejected=f"r{uuid.uuid4().hex[:8]}.rejected",
        raw_retention_ms=3_600_000,
    )
    admin = AdminClient(settings.client_config())
    made_before = admin.create_topics([NewTopic(settings.topics.raw_priority, 1, 1)])
    await asyncio.wrap_future(made_before[settings.topics.raw_priority])
    try:
        await ensure_topics(settings)

        async def retention(topic: str) -> str:
            futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
            (described,) = [await asyncio.wrap_future(f) for f in futures.values()]
            return str(described["retention.ms"].value)

        # A broker applies an altered config from its metadata log, a moment later.
        for topic in (settings.topics.raw, settings.topics.raw_priority):
            await eventually(partial(retention, topic), lambda ms: ms == "3600000", 15, topic)
        assert await retention(settings.topics.validated) == "604800000"  # the broker's
    finally:
        await delete_topics(settings, list(settings.topics.names().values()))
