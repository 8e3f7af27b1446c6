"""The one consume loop (sales_common.consume.ConsumeLoop) on the real broker: a consumer
replaced while the loop runs (what GroupWatch triggers) rejoins, and nothing is lost or
handled twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from devstack.pipeline import delete_topics
from prometheus_client import CollectorRegistry, Gauge
from sales_common.consume import ConsumeLoop, Position, committed_offsets
from sales_common.observability import Heartbeat
from sales_common.settings import KafkaSettings

from tests.helpers import eventually

pytestmark = pytest.mark.integration


class Recorder:
    """Keeps each record's value and commits its offsets to Kafka, as its store."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def handle(self, records: list[Message], consumer: Consumer) -> None:
        self.values += [record.value() or b"" for record in records]
        offsets = [
            TopicPartition(r.topic() or "", r.partition() or 0, (r.offset() or 0) + 1)
            for r in records
        ]
        await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)

    async def resume_offsets(self, partitions: list[Position]) -> None:
        return None

    async def close(self) -> None:
        pass


@pytest.fixture
async def topic(kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    name = f"loop-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka_settings.client_config())
    await asyncio.wrap_future(admin.create_topics([NewTopic(name, 3, 1)])[name])
    yield name
    await delete_topics(kafka_settings, [name])


async def assigned(consumer: Consumer, partitions: int, what: str) -> None:
    """Poll a subscribed consumer until its group gave it `partitions` partitions."""

    def poll() -> int:
        consumer.poll(0.2)
        return len(consumer.assignment())

    await eventually(lambda: asyncio.to_thread(poll), lambda n: n == partitions, what=what)


async def offset_committed_and_another_pending(
    settings: KafkaSettings, topic: str, group: str, committed: int, pending: int
) -> tuple[Consumer, Producer]:
    """A member of `group` holding `topic`'s three partitions, and a transactional producer
    that committed offset `committed` of partition 0 for the group and carries `pending` in
    a transaction it leaves open (as a validator killed mid-batch does)."""
    member = Consumer(settings.consumer_config(group))
    member.subscribe([topic])
    await assigned(member, 3, "the member's partitions")
    producer = Producer(settings.producer_config(f"{group}-{uuid.uuid4().hex[:8]}"))
    await asyncio.to_thread(producer.init_transactions, 30)
    metadata = member.consumer_group_metadata()
    for offset, commit in ((committed, True), (pending, False)):
        producer.begin_transaction()
        offsets = [TopicPartition(topic, 0, offset)]
        await asyncio.to_thread(producer.send_offsets_to_transaction, offsets, metadata, 30)
        if commit:
            await asyncio.to_thread(producer.commit_transaction, 30)
    return member, producer


def produce(settings: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = Producer({**settings.client_config(), "enable.idempotence": True})
    for n, value in enumerate(values):
        producer.produce(topic, value, str(n).encode())
    assert producer.flush(30) == 0


async def test_a_replaced_consumer_rejoins_and_nothing_is_lost_or_handled_twice(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    recorder = Recorder()
    lag = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    loop = ConsumeLoop(
        "test",
        kafka_settings.consumer_config(f"loop-{uuid.uuid4().hex[:8]}"),
        [topic],
        recorder,
        Heartbeat(),
        lag,
        max_records=7,
    )
    running = asyncio.create_task(loop.run())
    try:
        before = [f"before-{n}".encode() for n in range(50)]
        await asyncio.to_thread(produce, kafka_settings, topic, before)

        async def handled() -> int:
            return len(recorder.values)

        await eventually(handled, lambda n: n >= 50, what="records before the replacement")
        loop.replace_consumer()

        async def replaced() -> int:
            return loop.consumers_replaced

        await eventually(replaced, lambda n: n == 1, what="the consumer to be replaced")
        after = [f"after-{n}".encode() for n in range(50)]
        await asyncio.to_thread(produce, kafka_settings, topic, after)
        await eventually(handled, lambda n: n >= 100, what="records after the replacement")
        assert sorted(recorder.values) == sorted(before + after)
    finally:
        loop.stop()
        await running


async def test_committed_offsets_wait_for_a_transaction_that_carries_them(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    """What a rewind seeks to: while a transaction that carries a partition's offsets is
    not settled (even one whose commit returned a moment ago: its markers are written after),
    the broker answers UNSTABLE_OFFSET_COMMIT (KIP-447's require_stable, which librdkafka asks
    for under read_committed). committed_offsets must wait for the offset, never take the
    partition as having none (that would rewind it to its beginning and redo its batches)."""
    group = f"unstable-{uuid.uuid4().hex[:8]}"
    consumer, producer = await offset_committed_and_another_pending(
        kafka_settings, topic, group, committed=5, pending=42
    )
    try:
        waiting = asyncio.create_task(committed_offsets(consumer, [(topic, 0)]))
        # The transaction with offset 42 is open: no answer yet, least of all "none".
        done, _ = await asyncio.wait({waiting}, timeout=3)
        assert not done, f"returned {waiting.result()} while the offset was unsettled"
        await asyncio.to_thread(producer.commit_transaction, 30)
        assert await asyncio.wait_for(waiting, 60) == {(topic, 0): 42}
    finally:
        await asyncio.to_thread(consumer.close)


async def test_a_partition_whose_offsets_a_transaction_carries_starts_at_its_committed_offset(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    """Assigned while a transaction that carries its offsets is open (a validator killed
    mid-batch leaves one until the broker aborts it), a partition's records are handled from
    its stable committed offset once the transaction settles, even when a rebalance comes
    meanwhile.

    librdkafka's own offset fetch for an assignment retries UNSTABLE_OFFSET_COMMIT for as
    long as the assignment does not change; after a rebalance, the reply to the old fetch
    is taken for the new one's, and the partition starts at `auto.offset.reset`, its
    beginning. Without the loop's check, offsets 0-4 are handled (again)."""
    values = [f"r-{n}".encode() for n in range(10)]
    producer = Producer({**kafka_settings.client_config(), "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert await asyncio.to_thread(producer.flush, 30) == 0

    group = f"unsettled-{uuid.uuid4().hex[:8]}"
    member, transactional = await offset_committed_and_another_pending(
        kafka_settings, topic, group, committed=5, pending=8
    )
    await asyncio.to_thread(member.close)  # its partitions go to the loop below

    recorder = Recorder()
    lag = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    loop = ConsumeLoop(
        "test",
        kafka_settings.consumer_config(group),
        [topic],
        recorder,
        Heartbeat(),
        lag,
        max_records=100,
    )
    running = asyncio.create_task(loop.run())
    # A member of the same group on another topic: its join and leave rebalance the group
    # and leave the loop's partitions with the loop.
    other = f"{topic}-other"
    admin = AdminClient(kafka_settings.client_config())
    await asyncio.wrap_future(admin.create_topics([NewTopic(other, 1, 1)])[other])
    try:
        joiner = Consumer(kafka_settings.consumer_config(group))
        joiner.subscribe([other])
        await assigned(joiner, 1, "the other member's partition")
        await asyncio.to_thread(joiner.close)
        done, _ = await asyncio.wait({running}, timeout=3)
        assert not done, "the loop stopped"
        assert recorder.values == [], "handled records while the offsets were unsettled"
        await asyncio.to_thread(transactional.abort_transaction, 30)

        async def handled() -> list[bytes]:
            return list(recorder.values)

        await eventually(handled, lambda got: len(got) >= 5, what="the records after offset 5")
        assert recorder.values == values[5:]
    finally:
        loop.stop()
        await running
        await delete_topics(kafka_settings, [other])
