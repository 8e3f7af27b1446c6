"""KeyedBatches against the real broker: a batch the broker refuses must fail the flush,
or a transaction would commit its consumed offsets without its records."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from devstack.pipeline import delete_topics
from sales_common.kafka import KeyedBatches, default_partition
from sales_common.settings import KafkaSettings

from tests.helpers import consume_quiet

pytestmark = pytest.mark.integration
MakeTopic = Callable[[int], Awaitable[str]]


@pytest.fixture
async def make_topic(kafka_settings: KafkaSettings) -> AsyncIterator[MakeTopic]:
    """Creates topics with a max.message.bytes of the test's choosing; deletes them after."""
    created: list[str] = []

    async def make(max_message_bytes: int) -> str:
        name = f"keyed-batches-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(**kafka_settings.client_options())
        await admin.start()
        try:
            config = {"max.message.bytes": str(max_message_bytes)}
            await admin.create_topics([NewTopic(name, 3, 1, topic_configs=config)])
        finally:
            await admin.close()
        created.append(name)
        return name

    yield make
    await delete_topics(kafka_settings, created)


async def _transactional(settings: KafkaSettings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **settings.transactional_producer_options(f"test-{uuid.uuid4().hex[:8]}")
    )
    await producer.start()
    return producer


async def test_a_refused_batch_fails_the_flush(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    topic = await make_topic(2_000)
    producer = await _transactional(kafka_settings)

    async def produce_too_big() -> None:
        async with producer.transaction():
            batches = KeyedBatches(producer)
            await batches.add(topic, b"too-big", b"x" * 10_000, [])
            await batches.flush()

    try:
        with pytest.raises(KafkaError):
            await produce_too_big()
    finally:
        await producer.stop()


async def test_flushed_records_are_committed_once_on_their_key_partition(
    kafka_settings: KafkaSettings, make_topic: MakeTopic
) -> None:
    topic = await make_topic(1_048_588)
    producer = await _transactional(kafka_settings)
    keys = [f"event-{n}".encode() for n in range(500)]
    try:
        async with producer.transaction():
            batches = KeyedBatches(producer)
            for key in keys:
                await batches.add(topic, key, b"v:" + key, [])
            await batches.flush()
    finally:
        await producer.stop()
    records = await consume_quiet(kafka_settings, topic)
    assert sorted(r.key for r in records) == sorted(keys)
    assert all(r.partition == default_partition(r.key, 3) for r in records)
