"""The whole pipeline: four service processes, the real broker and database.

Mirrors the expected-outcomes table of the product brief, row by row.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from functools import partial

import asyncpg
import httpx
import pytest
from devstack.pipeline import RunningPipeline
from devstack.processes import wait_until
from sales_common.events import RawRecord, RawRows

from tests.conftest import DATA
from tests.helpers import consume_quiet

pytestmark = pytest.mark.e2e
RAW_CUSTOMER_IDS = sorted(
    {
        line.split(",")[2]
        for line in (DATA / "transactions.csv").read_text().splitlines()[1:]
        if line.split(",")[2]
    }
)


def reasons(detail: dict[str, object]) -> dict[int, list[str]]:
    rows = detail["rejections"]
    assert isinstance(rows, list)
    return {r["row_number"]: [v["rule"] for v in r["violations"]] for r in rows}


def test_expected_outcomes(started: RunningPipeline) -> None:
    pipeline = started
    client = pipeline.client
    uploader = pipeline.token("uploader")
    viewer = pipeline.token("viewer")

    sales = client.upload(DATA / "sales.csv", uploader)
    assert sales.status_code == 202, sales.text
    status = client.wait_complete(sales.json()["upload_id"], uploader)
    assert (
        status["status"],
        status["rows_total"],
        status["valid_count"],
        status["rejected_count"],
    ) == (
        "complete",
        6,
        3,
        3,
    )
    assert Decimal(status["valid_amount"]) == Decimal("2499.83")
    detail = client.upload_detail(sales.json()["upload_id"], viewer)
    assert reasons(detail) == {4: ["required"], 5: ["prefix", "number"], 6: ["prefix", "range"]}

    empty = client.upload(DATA / "empty.csv", uploader)
    assert empty.status_code == 202
    assert empty.json()["rows"] == 0
    assert client.wait_complete(empty.json()["upload_id"], uploader)["status"] == "complete"

    invalid = client.upload(DATA / "invalid.csv", uploader)
    assert invalid.status_code == 422
    assert "missing required columns: product" in invalid.json()["detail"]
    assert "unknown columns: name" in invalid.json()["detail"]

    malformed = client.upload(DATA / "malformed.csv", uploader)
    assert malformed.status_code == 202
    status = client.wait_complete(malformed.json()["upload_id"], uploader)
    assert (status["valid_count"], status["rejected_count"], Decimal(status["valid_amount"])) == (
        1,
        1,
        Decimal("249.90"),
    )
    assert reasons(client.upload_detail(malformed.json()["upload_id"], viewer)) == {1: ["integer"]}

    summary = client.summary(viewer)
    assert Decimal(summary["total_sales"]) == Decimal("2499.83") + Decimal("249.90")
    assert (summary["valid_count"], summary["rejected_count"]) == (4, 4)
    assert {p["product"]: Decimal(p["total_amount"]) for p in summary["products"]} == {
        "Halal Laptop": Decimal("1999.98"),
        "Halal Mouse": Decimal("249.90") * 2,
        "Halal Keyboard": Decimal("249.95"),
    }

    # 401 without a token, 403 with the wrong scope.
    with httpx.Client() as http:
        body = (DATA / "sales.csv").read_bytes()
        assert (
            http.post(
                f"{pipeline.url('ingest')}/api/v1/uploads",
                content=body,
                headers={"Content-Type": "text/csv"},
            ).status_code
            == 401
        )
        assert (
            http.post(
                f"{pipeline.url('ingest')}/api/v1/uploads",
                content=body,
                headers={"Content-Type": "text/csv", "Authorization": f"Bearer {viewer}"},
            ).status_code
            == 403
        )
        expected_metrics = {
            "ingest": [
                'ingest_uploads_total{outcome="accepted"} 3.0',
                'ingest_uploads_total{outcome="refused"} 1.0',
            ],
            "validator": ['sales_processed_total{outcome="valid"} 4.0'],
            "loader": [
                'sales_processed_total{outcome="stored_rejected"} 4.0',
                'sales_processed_total{outcome="stored_valid"} 4.0',
            ],
            "dashboard": [
                'http_requests_total{handler="/api/v1/summary",method="GET",status="2xx"}'
            ],
        }
        for name, lines in expected_metrics.items():
            # A counter moves just after the commit it counts: poll, bounded.
            url = f"{pipeline.url(name)}/metrics"
            wait_until(partial(_shows_all, http, url, lines), 10, f"{name} metrics {lines}")
    # The loader folds the per-day sums its batches appended (about once a second).
    wait_until(partial(_all_folded, pipeline.database, 4), 10, "per-day deltas folded")


def _all_folded(database: str, sales: int) -> bool:
    async def counts() -> tuple[int, int]:
        conn = await asyncpg.connect(database)
        try:
            pending = await conn.fetchval("SELECT count(*) FROM daily_product_deltas")
            folded = await conn.fetchval("SELECT sum(sales_count) FROM daily_product_folded")
            return pending, folded
        finally:
            await conn.close()

    pending, folded = asyncio.run(counts())
    return pending == 0 and folded == sales


def _shows_all(http: httpx.Client, url: str, lines: list[str]) -> bool:
    text = http.get(url).text
    return all(line in text for line in lines)


def test_raw_customer_ids_are_nowhere_at_rest(started: RunningPipeline) -> None:
    """After a run: not in any topic (sales.raw included: ingest encrypts them), table or log
    file; the validator's output carries their keyed hashes."""
    pipeline = started

    uploader = pipeline.token("uploader")
    response = pipeline.client.upload(DATA / "transactions.csv", uploader)
    assert response.status_code == 202
    status = pipeline.client.wait_complete(response.json()["upload_id"], uploader)
    assert status["rows_total"] == 20
    assert status["valid_count"] + status["rejected_count"] == 20
    assert RAW_CUSTOMER_IDS, "the sample must carry customer ids"

    async def everything_at_rest() -> str:
        topics = pipeline.topics
        every_topic = list(topics.names().values())
        records = await consume_quiet(pipeline.kafka, every_topic)
        raw = await consume_quiet(pipeline.kafka, [topics.raw, topics.raw_priority])
        records_raw = [RawRecord.model_validate_json(r.value or b"").root for r in raw]
        packs = [pack for pack in records_raw if isinstance(pack, RawRows)]
        assert len(packs) == len(records_raw)  # ingest writes RawRows, their ids sealed
        assert sum(len(pack.rows) for pack in packs) == 20
        assert all("customer_id" not in pack.columns for pack in packs)
        assert all((pack.customer_ids or "").startswith("pii:v1:") for pack in packs)
        conn = await asyncpg.connect(pipeline.database)
        try:
            tables = [
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            ]
            dumps = [
                await conn.fetchval(
                    f"SELECT coalesce(string_agg(t::text, '\n'), '') FROM {table} t"  # noqa: S608
                )
                for table in tables
            ]
        finally:
            await conn.close()
        return "\n".join([*(r.value.decode() for r in records), *dumps])

    at_rest = asyncio.run(everything_at_rest())
    logs = "\n".join(p.read_text() for p in pipeline.log_dir.glob("*"))
    assert "customer_hash" in at_rest  # the hashes are there...
    found = [cid for cid in RAW_CUSTOMER_IDS if cid in at_rest or cid in logs]
    assert found == []  # ...the ids are not, anywhere
    loader_log = (pipeline.log_dir / "loader.jsonl").read_text()
    assert '"event":"batch_stored"' in loader_log
