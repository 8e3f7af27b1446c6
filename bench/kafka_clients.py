"""Kafka client A/B and batching, against the dev-stack broker, in one run:
`uv run python -m bench.kafka_clients --records 200000` (also `make bench`'s `kafka`
section).

A: aiokafka (what the services used) vs confluent-kafka (librdkafka, what they use now),
   client CPU per record for a transactional produce (acks=all, idempotent, one
   transaction) and a read_committed consume of the same records.
B: librdkafka producer batch.size (16 KiB, 256 KiB, 1 MiB; linger 5 ms): client and broker
   CPU per record.
Records are sales.raw-sized (~220 B, keyed by a 64-hex event id). CPU is process time
(every thread), so a noisy machine changes it less than wall time; runs alternate and the
median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer
from devstack.config import StackConfig
from sales_common.kafka import TransactionalProducer, delete_topics, ensure_topics
from sales_common.settings import KafkaSettings, TopicSettings

from bench.cpu import process_cpu_s

_VALUE = json.dumps(
    {
        "upload_id": str(uuid.UUID(int=1)),
        "row_number": 1,
        "fields": {"product": "Halal Chicken 1kg", "price": "12.50", "quantity": "3"},
        "filename": "sales.csv",
        "received_at": "2026-11-26T12:00:00+00:00",
    }
).encode()


def records(count: int) -> list[tuple[bytes, bytes]]:
    return [(f"{n:064x}".encode(), _VALUE) for n in range(count)]


def settings_for(bootstrap: str, topic: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, topics=TopicSettings(raw=topic))


async def produce_confluent(settings: KafkaSettings, rows: list[tuple[bytes, bytes]]) -> None:
    producer = TransactionalProducer(settings.producer_config(f"bench-{uuid.uuid4().hex[:8]}"))
    await producer.start()
    try:
        producer.begin()
        await producer.send_all((settings.topics.raw, k, v, []) for k, v in rows)
        await producer.commit(120)
    finally:
        await producer.close()


async def produce_aiokafka(settings: KafkaSettings, rows: list[tuple[bytes, bytes]]) -> None:
    """aiokafka at its fastest, as the services drove it: whole batches per partition
    (`create_batch`/`send_batch`), not one `send()` future per record."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        transactional_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.producer_linger_ms,
        max_batch_size=settings.producer_batch_bytes,
    )
    await producer.start()
    topic = settings.topics.raw
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    try:
        async with producer.transaction():
            open_batches: dict[int, Any] = {}
            sent = []
            for key, value in rows:
                partition = partitioner(key, partitions, partitions)
                batch = open_batches.get(partition)
                if batch is None:
                    batch = open_batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = open_batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for partition, batch in open_batches.items():
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def consume_confluent(settings: KafkaSettings, count: int) -> None:
    consumer = Consumer(settings.consumer_config(f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.topics.raw])
    seen = 0
    try:
        while seen < count:
            batch = await asyncio.to_thread(consumer.consume, 5000, 0.5)
            seen += sum(1 for m in batch if m.error() is None and m.value() is not None)
    finally:
        consumer.close()


async def consume_aiokafka(settings: KafkaSettings, count: int) -> None:
    consumer = AIOKafkaConsumer(
        settings.topics.raw,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(b) for b in batches.values())
    finally:
        await consumer.stop()


def cpu_us_per_record(work: Callable[[], Any], count: int, broker_pid: int) -> dict[str, float]:
    """Client process time and broker CPU per record for `work`."""
    broker_before, client_before = process_cpu_s(broker_pid), time.process_time()
    wall = time.perf_counter()
    asyncio.run(work())
    wall = time.perf_counter() - wall
    client = time.process_time() - client_before
    broker = process_cpu_s(broker_pid) - broker_before
    return {
        "client_us": client * 1e6 / count,
        "broker_us": broker * 1e6 / count,
        "records_per_s": count / wall,
    }


def measure(count: int, runs: int) -> dict[str, Any]:
    config = StackConfig()
    broker_pid = int((config.run_dir / "kafka.pid").read_text().split()[0])
    rows = records(count)
    samples: dict[str, list[dict[str, float]]] = {}

    def sample(name: str, work: Callable[[], Any]) -> None:
        samples.setdefault(name, []).append(cpu_us_per_record(work, count, broker_pid))

    for _ in range(runs):
        for client in ("aiokafka", "confluent-kafka"):
            settings = settings_for(config.bootstrap_servers, f"bench-{uuid.uuid4().hex[:8]}")
            asyncio.run(ensure_topics(settings, partitions={"raw": 6}))
            try:
                if client == "aiokafka":
                    sample("produce/aiokafka", partial(produce_aiokafka, settings, rows))
                    sample("consume/aiokafka", partial(consume_aiokafka, settings, count))
                else:
                    sample("produce/confluent-kafka", partial(produce_confluent, settings, rows))
                    sample("consume/confluent-kafka", partial(consume_confluent, settings, count))
            finally:
                asyncio.run(delete_topics(settings, list(settings.topics.names().values())))
        for batch_kib in (16, 256, 1024):
            settings = settings_for(config.bootstrap_servers, f"bench-{uuid.uuid4().hex[:8]}")
            settings.producer_batch_bytes = batch_kib * 1024
            asyncio.run(ensure_topics(settings, partitions={"raw": 6}))
            try:
                sample(f"batch.size {batch_kib} KiB", partial(produce_confluent, settings, rows))
            finally:
                asyncio.run(delete_topics(settings, list(settings.topics.names().values())))
    return {
        name: {key: statistics.median(s[key] for s in runs_) for key in runs_[0]}
        | {"n": len(runs_)}
        for name, runs_ in samples.items()
    }


def markdown(results: dict[str, Any], count: int) -> str:
    lines = [
        f"| Kafka, {count:,} records of {len(_VALUE)} B, 6 partitions | client CPU µs/record"
        " | broker CPU µs/record | records/s |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['client_us']:.2f} | {r['broker_us']:.2f} | {r['records_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = measure(args.records, args.runs)
    table = markdown(results, args.records)
    print(table)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
