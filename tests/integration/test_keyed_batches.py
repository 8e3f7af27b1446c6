"""KeyedBatches against the real broker: a batch the broker refuses must fail the flush,
or a transaction would commit its consumed offsets without its records."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from sales_common.kafka import KeyedBatches, default_partition
from sales_common.settings import KafkaSettings

from tests.helpers import consume_quiet

pytestmark = pytest.mark.integration


async def _topic(settings: KafkaSettings, max_message_bytes: int) -> str:
    name = f"keyed-batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name=name,
                    num_partitions=3,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": str(max_message_bytes)},
                )
            ]
        )
    finally:
        await admin.close()
    return name


async def _transactional(settings: KafkaSettings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **settings.transactional_producer_options(f"test-{uuid.uuid4().hex[:8]}")
    )
    await producer.start()
    return producer


async def test_a_refused_batch_fails_the_flush(kafka_settings: KafkaSettings) -> None:
    topic = await _topic(kafka_settings, max_message_bytes=2_000)
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
    kafka_settings: KafkaSettings,
) -> None:
    topic = await _topic(kafka_settings, max_message_bytes=1_048_588)
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
