"""ingest against the real broker and database."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
import pytest
from ingest.config import IngestSettings
from ingest.main import create_app
from sales_common.events import RawSale, decode
from sales_common.settings import AuthSettings, KafkaSettings, PostgresSettings

from tests.conftest import DATA
from tests.helpers import bearer, consume, consume_quiet, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    kafka_settings: KafkaSettings, postgres_settings: PostgresSettings, auth_settings: AuthSettings
) -> IngestSettings:
    return IngestSettings(
        kafka=kafka_settings,
        postgres=postgres_settings,
        auth=auth_settings,
        log_json=False,
    )


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

    records = await consume(settings.kafka, settings.kafka.topics.raw, expected=6)
    raws = sorted((decode(RawSale, r.value) for r in records), key=lambda r: r.row_number)
    assert [r.row_number for r in raws] == [1, 2, 3, 4, 5, 6]
    assert raws[0].fields == {"product": "Halal Laptop", "price": "999.99", "quantity": "2"}
    assert {r.upload_id for r in raws} == {body["upload_id"]}
    assert all(dict(r.headers)["content-type"] == b"application/json" for r in records)


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
    assert await consume_quiet(settings.kafka, settings.kafka.topics.raw) == []
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
    assert await consume_quiet(settings.kafka, settings.kafka.topics.raw) == []


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
    records = await consume(settings.kafka, settings.kafka.topics.raw, expected=6 + 2 + 6)
    per_upload: dict[str, int] = {}
    for record in records:
        upload = orjson.loads(record.value)["upload_id"]
        per_upload[upload] = per_upload.get(upload, 0) + 1
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
    assert len(await consume(settings.kafka, settings.kafka.topics.raw, expected=6)) == 6
