"""ingest against the real broker and database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException
from ingest.config import IngestSettings
from ingest.main import create_app
from ingest.publisher import RawPublisher, transactional_id
from sales_common.events import RawSale, raw_sales
from sales_common.lifecycle import background_loop
from sales_common.pii import EncryptionSettings
from sales_common.settings import AuthSettings, KafkaSettings, PostgresSettings

from tests.conftest import DATA
from tests.helpers import (
    aiokafka_transactional,
    bearer,
    consume,
    consume_quiet,
    eventually,
    serve,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    kafka_settings: KafkaSettings,
    postgres_settings: PostgresSettings,
    auth_settings: AuthSettings,
    encryption_settings: EncryptionSettings,
) -> IngestSettings:
    return IngestSettings(
        kafka=kafka_settings,
        postgres=postgres_settings,
        auth=auth_settings,
        pii_encryption=encryption_settings,
        log_json=False,
    )


def rows_of(records: list[ConsumerRecord[bytes, bytes]]) -> list[RawSale]:
    """The rows in sales.raw records (ingest packs several rows of an upload a record)."""
    return [row for record in records for row in raw_sales(record.value or b"")]


def raw_lanes(settings: IngestSettings) -> list[str]:
    """sales.raw and its express lane: small uploads go to the latter."""
    return [settings.kafka.topics.raw, settings.kafka.topics.raw_priority]


def csv_body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def as_uploader(settings: IngestSettings, **headers: str) -> dict[str, str]:
    """Headers of an authenticated text/csv upload."""
    return {**bearer(settings.auth, "uploads:write"), "Content-Type": "text/csv", **headers}


async def test_upload_streams_every_row_to_sales_raw(
    settings: IngestSettings, database: str
) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads?filename=sales.csv",
            content=csv_body("sales.csv"),
            headers=as_uploader(settings),
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["rows"] == 6
        assert body["duplicate"] is False
        status = await client.get(
            body["status_url"], headers=bearer(settings.auth, "uploads:write")
        )
        assert status.json()["status"] == "processing"
        assert status.json()["rows_total"] == 6

    records = await consume_quiet(settings.kafka, raw_lanes(settings))
    assert len(records) == 1  # six rows of one upload: one packed record
    raws = sorted(rows_of(records), key=lambda r: r.row_number)
    assert [r.row_number for r in raws] == [1, 2, 3, 4, 5, 6]
    assert raws[0].fields == {"product": "Halal Laptop", "price": "999.99", "quantity": "2"}
    assert {r.upload_id for r in raws} == {body["upload_id"]}
    assert all(dict(r.headers)["content-type"] == b"application/json" for r in records)
    assert all(dict(r.headers)["schema-version"] == b"2" for r in records)  # RawRows


async def test_bad_header_is_422_and_leaves_nothing(
    settings: IngestSettings, database: str
) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads",
            content=csv_body("invalid.csv"),
            headers=as_uploader(settings),
        )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "missing required columns: product" in detail
    assert "unknown columns: name" in detail
    assert await consume_quiet(settings.kafka, raw_lanes(settings)) == []
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    finally:
        await conn.close()


async def test_header_only_file_is_complete_at_once(
    settings: IngestSettings, database: str
) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads",
            content=csv_body("empty.csv"),
            headers=as_uploader(settings),
        )
        assert response.status_code == 202
        assert response.json()["rows"] == 0
        status = await client.get(
            response.json()["status_url"], headers=bearer(settings.auth, "uploads:write")
        )
    assert status.json()["status"] == "complete"


async def test_invalid_utf8_midway_is_refused_and_aborted(
    settings: IngestSettings, database: str
) -> None:
    body = b"product,price,quantity\n" + b"Halal A,1,1\n" * 5000 + b"Halal \xff,1,1\n"
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads",
            content=body,
            headers=as_uploader(settings),
        )
    assert response.status_code == 422
    bad_offset = body.index(b"\xff")
    assert f"offset {bad_offset}" in response.json()["detail"]
    # Rows already produced belong to an aborted transaction: read_committed sees none.
    assert await consume_quiet(settings.kafka, raw_lanes(settings)) == []


async def test_auth_is_required(settings: IngestSettings, database: str) -> None:
    async with serve(create_app(settings)) as client:
        no_token = await client.post(
            "/api/v1/uploads",
            content=b"product,price,quantity\n",
            headers={"Content-Type": "text/csv"},
        )
        wrong_scope = await client.post(
            "/api/v1/uploads",
            content=b"product,price,quantity\n",
            headers={**bearer(settings.auth, "sales:read"), "Content-Type": "text/csv"},
        )
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert wrong_scope.status_code == 403
    assert "uploads:write" in wrong_scope.json()["detail"]


async def test_wrong_content_type_and_too_large(settings: IngestSettings, database: str) -> None:
    small = settings.model_copy(
        update={"uploads": settings.uploads.model_copy(update={"max_bytes": 100})}
    )
    async with serve(create_app(small)) as client:
        auth = bearer(settings.auth, "uploads:write")
        json_type = await client.post(
            "/api/v1/uploads", content=b"{}", headers={**auth, "Content-Type": "application/json"}
        )
        too_large = await client.post(
            "/api/v1/uploads",
            content=b"product,price,quantity\n" + b"Halal A,1,1\n" * 20,
            headers={**auth, "Content-Type": "text/csv"},
        )
    assert json_type.status_code == 415
    assert too_large.status_code == 413


async def test_duplicate_content_and_idempotency_key(
    settings: IngestSettings, database: str
) -> None:
    auth = {**bearer(settings.auth, "uploads:write"), "Content-Type": "text/csv"}
    async with serve(create_app(settings)) as client:
        first = await client.post("/api/v1/uploads", content=csv_body("sales.csv"), headers=auth)
        again = await client.post("/api/v1/uploads", content=csv_body("sales.csv"), headers=auth)
        key = str(uuid.uuid4())
        keyed = await client.post(
            "/api/v1/uploads",
            content=csv_body("malformed.csv"),
            headers={**auth, "Idempotency-Key": key},
        )
        retried = await client.post(
            "/api/v1/uploads",
            content=csv_body("malformed.csv"),
            headers={**auth, "Idempotency-Key": key},
        )
        reload_denied = await client.post(
            "/api/v1/uploads?reload=true", content=csv_body("sales.csv"), headers=auth
        )
        reload_ok = await client.post(
            "/api/v1/uploads?reload=true",
            content=csv_body("sales.csv"),
            headers={**bearer(settings.auth, "uploads:write", "admin"), "Content-Type": "text/csv"},
        )
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["upload_id"] == first.json()["upload_id"]
    assert keyed.status_code == 202
    assert retried.status_code == 200
    assert retried.json()["idempotent_replay"] is True
    assert retried.json()["upload_id"] == keyed.json()["upload_id"]
    assert reload_denied.status_code == 403
    assert reload_ok.status_code == 202
    assert reload_ok.json()["upload_id"] != first.json()["upload_id"]
    records = await consume_quiet(settings.kafka, raw_lanes(settings))
    per_upload: dict[str, int] = {}
    for row in rows_of(records):
        per_upload[row.upload_id] = per_upload.get(row.upload_id, 0) + 1
    assert sorted(per_upload.values()) == [2, 6, 6]


async def test_multipart_upload(settings: IngestSettings, database: str) -> None:
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads",
            files={"file": ("malformed.csv", csv_body("malformed.csv"), "text/csv")},
            headers=bearer(settings.auth, "uploads:write"),
        )
    assert response.status_code == 202, response.text
    assert response.json()["rows"] == 2


async def test_broker_unreachable_is_503_with_retry_after(
    settings: IngestSettings, database: str
) -> None:
    down = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})}
    )
    key = str(uuid.uuid4())
    async with serve(create_app(down)) as client:
        ready = await client.get("/readyz")
        response = await client.post(
            "/api/v1/uploads",
            content=csv_body("sales.csv"),
            headers=as_uploader(settings, **{"Idempotency-Key": key}),
        )
        live = await client.get("/healthz")
    assert ready.status_code == 503
    assert "kafka" in ready.json()["failing"]
    assert live.status_code == 200
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT status FROM uploads") == "failed"
    finally:
        await conn.close()
    # The retry, with the broker back, takes the same upload over and completes it.
    async with serve(create_app(settings)) as client:
        retry = await client.post(
            "/api/v1/uploads",
            content=csv_body("sales.csv"),
            headers=as_uploader(settings, **{"Idempotency-Key": key}),
        )
    assert retry.status_code == 202
    assert len(rows_of(await consume_quiet(settings.kafka, raw_lanes(settings)))) == 6


async def upload_row(database: str) -> asyncpg.Record:
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT status, error FROM uploads")
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_small_uploads_take_the_express_lane_big_ones_the_main_topic(
    settings: IngestSettings, database: str
) -> None:
    topics = settings.kafka.topics
    settings.uploads.small_rows = 6
    body = csv_body("sales.csv")
    async with serve(create_app(settings)) as client:
        small = await client.post("/api/v1/uploads", content=body, headers=as_uploader(settings))
        big = await client.post(
            "/api/v1/uploads",
            content=body + b"Halal Extra,1.00,1\n",
            headers=as_uploader(settings),
        )
    assert (small.status_code, big.status_code) == (202, 202)
    express = rows_of(await consume_quiet(settings.kafka, topics.raw_priority))
    main = rows_of(await consume_quiet(settings.kafka, topics.raw))
    assert {r.upload_id for r in express} == {small.json()["upload_id"]}
    assert {r.upload_id for r in main} == {big.json()["upload_id"]}
    assert (len(express), len(main)) == (6, 7)


async def test_a_body_that_does_not_match_its_digest_is_refused_and_leaves_nothing(
    settings: IngestSettings, database: str
) -> None:
    body = csv_body("sales.csv")
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads",
            content=body[: len(body) // 2],  # what a sender that died half way delivers
            headers=as_uploader(settings, **{"Content-Digest": f"sha-256=:{digest}:"}),
        )
        matching = await client.post(
            "/api/v1/uploads",
            content=body,
            headers=as_uploader(settings, **{"Repr-Digest": f"sha-256=:{digest}:"}),
        )
    assert response.status_code == 400
    assert response.json()["error"] == "body_mismatch"
    assert "content-digest sha-256 does not match the body" in response.json()["detail"]
    assert matching.status_code == 202, matching.text
    records = await consume_quiet(settings.kafka, raw_lanes(settings))
    assert {r.upload_id for r in rows_of(records)} == {matching.json()["upload_id"]}
    assert len(rows_of(records)) == 6


async def test_a_stalled_body_is_answered_408_and_the_upload_fails(
    settings: IngestSettings, database: str
) -> None:
    settings.uploads.idle_timeout_s = 0.5
    never = asyncio.Event()

    async def stalls_half_way() -> AsyncIterator[bytes]:
        yield csv_body("sales.csv")[:40]
        await never.wait()  # the client sends nothing more and keeps the connection

    async with serve(create_app(settings)) as client:
        response = await client.post(
            "/api/v1/uploads", content=stalls_half_way(), headers=as_uploader(settings)
        )
    assert response.status_code == 408
    assert "no data for 0.5 s after 40 bytes" in response.json()["detail"]
    row = await upload_row(database)
    assert row["status"] == "failed"
    assert "no data for 0.5 s" in row["error"]
    assert await consume_quiet(settings.kafka, raw_lanes(settings)) == []


@pytest.mark.parametrize(
    ("died", "expected"),
    [
        ("before recording its commit probe", "failed"),
        ("after recording its probe, before committing", "failed"),
        ("after committing, before marking it processing", "processing"),
    ],
)
async def test_the_janitor_settles_an_upload_its_dead_instance_left_committing(
    settings: IngestSettings, database: str, died: str, expected: str
) -> None:
    """A dead instance's upload: 'committing', lease run out, its transaction open or just
    committed on sales.raw. The janitor fences the transaction (readers behind it move on)
    and settles the upload by the transaction's outcome: a committed one is not failed, so
    its content stays claimed and the loader completes it."""
    settings.leases.janitor_every_s = 0.2
    upload_id = uuid.uuid4()
    topic = settings.kafka.topics.raw
    zombie = aiokafka_transactional(settings.kafka, transactional_id(upload_id))
    await zombie.start()
    await zombie.begin_transaction()
    sent = await zombie.send_and_wait(topic, b"a row of the dead upload", key=b"k", partition=0)
    probe = None if died.startswith("before") else f"{topic}/0/{sent.offset}"
    if expected == "processing":
        await zombie.commit_transaction()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "INSERT INTO uploads (upload_id, filename, status, rows_total, commit_probe,"
            " lease_until) VALUES ($1, 'dead.csv', 'committing', 1, $2,"
            " now() - interval '1 second')",
            upload_id,
            probe,
        )
    finally:
        await conn.close()
    await produce_committed(settings, topic, b"committed after the dead upload")
    try:
        async with serve(create_app(settings)):
            row = await eventually(
                lambda: upload_row(database),
                lambda r: r["status"] != "committing",
                30,
                "janitor",
            )
    finally:
        with contextlib.suppress(KafkaError):
            await zombie.stop()
    assert row["status"] == expected
    if expected == "failed":
        assert "abandoned while committing" in row["error"]
    # Either way the transaction is settled: a read_committed reader gets past it.
    records = await consume(settings.kafka, topic, expected=1 if expected == "failed" else 2)
    assert [r.value for r in records][-1] == b"committed after the dead upload"
    assert len(records) == (1 if expected == "failed" else 2)


async def produce_committed(settings: IngestSettings, topic: str, value: bytes) -> None:
    producer = aiokafka_transactional(settings.kafka, f"test-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, value, key=b"k", partition=0)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def ready_publisher(settings: IngestSettings) -> AsyncIterator[RawPublisher]:
    """A publisher whose ready producers are all started; every producer closed after."""
    publisher = RawPublisher(settings)

    async def ready() -> int:
        return publisher.ready.count

    try:
        async with background_loop("ready_producers", publisher.ready):
            wanted = settings.transactions.ready_producers
            await eventually(ready, lambda n: n == wanted, 30, "ready producers")
            yield publisher
    finally:
        await publisher.close()
        assert (publisher.ready.count, publisher.closing) == (0, 0)


@pytest.mark.parametrize("fenced", ["before it begins", "between its flush and its commit"])
async def test_a_ready_producer_is_fenced_by_its_upload_id(
    settings: IngestSettings, fenced: str
) -> None:
    """A ready producer ran InitProducerId before its upload existed; a retry with the same
    Idempotency-Key or the janitor fences that upload id later, and that fences it: its
    transaction never becomes visible, and the taker's own producer commits."""
    topic = settings.kafka.topics.raw_priority
    async with ready_publisher(settings) as publisher:
        ready = publisher.ready.take()
        assert ready is not None
        upload_id = ready.upload_id

        async def taken_over(position: str) -> bool:
            if fenced.startswith("between"):
                await publisher.fence(upload_id)  # what the retry or the janitor does
            return True  # the database still says "yours": only the fence protects

        if fenced.startswith("before"):
            await publisher.fence(upload_id)
        with pytest.raises(KafkaException):
            await publisher.publish(
                upload_id, topic, [(b"k", b"from the zombie")], 10, taken_over, ready
            )

        async def owned(position: str) -> bool:
            return True

        await publisher.publish(upload_id, topic, [(b"k", b"from the retry")], 10, owned)
    assert [r.value for r in await consume_quiet(settings.kafka, topic)] == [b"from the retry"]


async def metric(client: httpx.AsyncClient, line_start: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[1])
    return 0.0


async def test_uploads_take_a_ready_producer_when_its_timeout_suffices(
    settings: IngestSettings, database: str
) -> None:
    """A small upload publishes with a producer started ahead, under that producer's upload
    id; one whose spool needs a longer transaction timeout starts its own; a refused one
    closes the producer it took. The ready ones are replaced as they are taken."""
    settings.transactions.ready_max_bytes = 2_000
    small = csv_body("sales.csv")
    bigger = small + b"".join(b"Halal Extra %d,1.00,1\n" % n for n in range(100))
    async with serve(create_app(settings)) as client:

        async def ready() -> float:
            return await metric(client, "ingest_ready_producers")

        await eventually(ready, lambda n: n == 3, 30, "ready producers")
        first = await client.post("/api/v1/uploads", content=small, headers=as_uploader(settings))
        second = await client.post("/api/v1/uploads", content=bigger, headers=as_uploader(settings))
        refused = await client.post(
            "/api/v1/uploads", content=csv_body("invalid.csv"), headers=as_uploader(settings)
        )
        from_ready = await metric(client, 'ingest_producers_total{source="ready"}')
        started = await metric(client, 'ingest_producers_total{source="started"}')
        await eventually(ready, lambda n: n == 3, 30, "ready producers replaced")
    assert (first.status_code, second.status_code, refused.status_code) == (202, 202, 422)
    assert (from_ready, started) == (1, 1)
    rows = rows_of(await consume_quiet(settings.kafka, raw_lanes(settings)))
    assert sorted(
        len([r for r in rows if r.upload_id == u.json()["upload_id"]]) for u in (first, second)
    ) == [6, 106]
