"""Bounded waits and small Kafka/HTTP helpers for tests against real infrastructure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sales_common.auth import TokenIssuer
from sales_common.events import RawSale, ValidatedSale, event_id_for
from sales_common.settings import AuthSettings, KafkaSettings

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    timeout_s: float = 30,
    what: str = "",
) -> T:
    """Poll `probe` until `check(result)`; fail with the last value after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what}: last value {value!r}"
            )
        await asyncio.sleep(0.05)


Topics = str | Sequence[str]


def raw_sale(
    upload: str,
    number: int,
    fields: dict[str, str],
    field_count: int | None = None,
    column_count: int | None = None,
    source_filename: str = "f.csv",
    received_at: datetime | None = None,
) -> RawSale:
    """A row in the form ingest wrote before RawRows (a `RawSale`); the counts default to
    the number of fields."""
    return RawSale(
        upload_id=upload,
        row_number=number,
        fields=fields,
        field_count=len(fields) if field_count is None else field_count,
        column_count=len(fields) if column_count is None else column_count,
        source_filename=source_filename,
        received_at=received_at or datetime(2026, 11, 26, 12, tzinfo=UTC),
    )


def aiokafka_options(settings: KafkaSettings) -> dict[str, object]:
    """Options of aiokafka, the tests' independent Kafka client: what the services write
    (through librdkafka) is checked with another implementation of the protocol."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile)
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return options


def aiokafka_transactional(settings: KafkaSettings, transactional_id: str) -> AIOKafkaProducer:
    """An aiokafka producer with `transactional_id`: a zombie, or a bystander, in tests."""
    return AIOKafkaProducer(
        **aiokafka_options(settings),
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
    )


def _reader(settings: KafkaSettings, topic: Topics) -> AIOKafkaConsumer:
    """A read_committed consumer of `topic` (or several) from its start, in a group of its
    own."""
    return AIOKafkaConsumer(
        *([topic] if isinstance(topic, str) else topic),
        **aiokafka_options(settings),
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )


async def consume(
    settings: KafkaSettings, topic: Topics, expected: int, timeout_s: float = 30
) -> list[ConsumerRecord]:
    """Read `topic` from the start with read_committed until `expected` records (or timeout)."""
    consumer = _reader(settings, topic)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def consume_quiet(
    settings: KafkaSettings, topic: Topics, idle_s: float = 1.5
) -> list[ConsumerRecord]:
    """Everything committed in `topic`: read until the end offsets are reached."""
    consumer = _reader(settings, topic)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        await eventually(lambda: _assigned(consumer), bool, 15, "partition assignment")
        ends = await consumer.end_offsets(list(consumer.assignment()))
        deadline = time.monotonic() + idle_s + 30
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
    finally:
        await consumer.stop()
    return records


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    if not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    return bool(consumer.assignment())


async def produce(
    settings: KafkaSettings,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def bearer(auth: AuthSettings, *scopes: str, subject: str = "test-client") -> dict[str, str]:
    return {"Authorization": f"Bearer {TokenIssuer(auth).issue(subject, list(scopes))}"}


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in-process."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as client:
            yield client


def run_cli(
    ingest_url: str,
    dashboard_url: str,
    client_id: str,
    secret: str,
    *args: str,
    timeout_s: float = 180,
) -> subprocess.CompletedProcess[str]:
    """The sales-pipeline client as a user runs it, configured by its environment only."""
    env = {
        **os.environ,
        "SALES_INGEST_URL": ingest_url,
        "SALES_DASHBOARD_URL": dashboard_url,
        "SALES_CLIENT_ID": client_id,
        "SALES_CLIENT_SECRET": secret,
        "HOME": "/nonexistent",
    }
    return subprocess.run(
        [sys.executable, "-m", "sales_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def validated_sale(
    upload: str,
    row: int,
    product: str,
    price: str,
    quantity: int,
    day: date | None = date(2026, 11, 1),
    *,
    txn: str | None = None,
    validated_at: datetime | None = None,
) -> ValidatedSale:
    """A sales.validated record as the validator writes it (the amount exact to the cent)."""
    return ValidatedSale(
        event_id=event_id_for(upload, row, txn),
        upload_id=upload,
        row_number=row,
        transaction_id=txn,
        product=product,
        price=Decimal(price),
        quantity=quantity,
        amount=(Decimal(price) * quantity).quantize(Decimal("0.01")),
        sale_date=day,
        validated_at=validated_at or datetime.now(UTC),
    )


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DAY = date(2000, 1, 1)


def _numeric(raw: bytes) -> Decimal:
    """PostgreSQL's binary numeric (digit count, weight, sign, display scale, base-10000
    digits) as the exact Decimal, whatever its length."""
    count, weight, sign, _ = struct.unpack_from(">hhHh", raw)
    digits = struct.unpack_from(f">{count}H", raw, 8)
    assert sign == 0
    assert all(d < 10_000 for d in digits)
    assert len(raw) == 8 + 2 * count
    text = "".join(f"{d:04d}" for d in digits) or "0"
    return Decimal((0, tuple(int(c) for c in text), 4 * (weight - count + 1)))


def copied_sales(payload: bytes) -> list[tuple[object, ...]]:
    """The rows of a binary COPY of the loader's sales (loader.repository._SALES_COLUMNS:
    text, uuid, int4, text, text, numeric, int4, numeric, char, text, date, timestamptz),
    read back as Python values (the decimals exact, as written): a test's independent reader."""
    kinds = ("text", "uuid", "int4", "text", "text", "numeric", "int4", "numeric", "text",
             "text", "date", "timestamptz")  # fmt: skip
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00"
    at = 19  # the signature, flags and header extension length
    rows: list[tuple[object, ...]] = []
    while (count := struct.unpack_from(">h", payload, at)[0]) != -1:
        at += 2
        assert count == len(kinds)
        row: list[object] = []
        for kind in kinds:
            (length,) = struct.unpack_from(">i", payload, at)
            at += 4
            if length == -1:
                row.append(None)
                continue
            raw = payload[at : at + length]
            at += length
            if kind == "text":
                row.append(raw.decode())
            elif kind == "uuid":
                row.append(str(uuid.UUID(bytes=raw)))
            elif kind == "int4":
                row.append(struct.unpack(">i", raw)[0])
            elif kind == "numeric":
                row.append(_numeric(raw))
            elif kind == "date":
                row.append(_PG_EPOCH_DAY + timedelta(days=struct.unpack(">i", raw)[0]))
            else:
                row.append(_PG_EPOCH + timedelta(microseconds=struct.unpack(">q", raw)[0]))
        rows.append(tuple(row))
    assert at + 2 == len(payload), "nothing after the trailer"
    return rows
