"""Erasure on request against the running pipeline: after a load, and while one runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from devstack import generate
from devstack.pipeline import RunningPipeline
from pydantic import SecretStr
from sales_common.pii import PiiSettings

from tests.helpers import eventually
from tests.totals import rows_with, totals_differences

pytestmark = pytest.mark.e2e


def her_hashes(pipeline: RunningPipeline, customer: str) -> list[str]:
    """Her id as the validator hashed it (the dev stack's key, id k1)."""
    pii = PiiSettings(hmac_key=SecretStr(pipeline.secrets.pii_hmac_key), key_id="k1")
    return [h.hash(customer) for h in pii.hashers()]


def write_csv(path: Path, rows: int, customer: str, every: int) -> int:
    """`rows` generated rows (a tenth invalid), `customer` on every `every`-th; how many."""
    lines = []
    for n, line in enumerate(generate.rows(rows, seed=uuid.uuid4().int % 1000), 1):
        cells = line.split(",")
        if n % every == 0:
            cells[2] = customer
        lines.append(",".join(cells))
    path.write_text(generate.HEADER + "".join(lines))
    return rows // every


@pytest.fixture
async def db(started: RunningPipeline) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(started.database, min_size=1, max_size=3)
    assert pool is not None
    yield pool
    await pool.close()


async def erase(pipeline: RunningPipeline, customer: str, mode: str) -> dict[str, Any]:
    token = await asyncio.to_thread(pipeline.token, "operator")
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(
            f"{pipeline.url('dashboard')}/api/v1/erasures",
            json={"customer_id": customer, "mode": mode},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def upload(pipeline: RunningPipeline, path: Path) -> str:
    token = await asyncio.to_thread(pipeline.token, "uploader")
    answer = await asyncio.to_thread(pipeline.client.upload, path, token)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["upload_id"])


async def wait_complete(pipeline: RunningPipeline, upload_id: str) -> dict[str, Any]:
    token = await asyncio.to_thread(pipeline.token, "uploader")
    status: dict[str, Any] = await asyncio.to_thread(
        pipeline.client.wait_complete, upload_id, token, 300
    )
    return status


async def test_an_erased_customer_leaves_no_hash_in_sales_or_rejections(
    started: RunningPipeline, db: asyncpg.Pool, tmp_path: Path
) -> None:
    customer = f"CUST-E2E-{uuid.uuid4().hex[:8]}"
    hers = write_csv(tmp_path / "small.csv", 400, customer, every=4)
    upload_id = await upload(started, tmp_path / "small.csv")
    assert (await wait_complete(started, upload_id))["status"] == "complete"
    hashes = her_hashes(started, customer)
    stored = await rows_with(db, hashes)
    assert stored["sales"] + stored["rejections"] == hers
    assert stored["rejections"] > 0  # the generator's invalid rows include some of hers
    sales_before = await db.fetchval("SELECT count(*) FROM sales")

    first = await erase(started, customer, "anonymise")
    again = await erase(started, customer, "delete")  # nothing of hers is left to find

    assert (first["sales_rows"], first["rejection_rows"]) == (stored["sales"], stored["rejections"])
    assert (again["sales_rows"], again["rejection_rows"]) == (0, 0)
    assert await rows_with(db, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    assert await db.fetchval("SELECT count(*) FROM sales") == sales_before
    assert await totals_differences(db) == {}
    # The services' logs: the erasure is there, her id is not.
    logs = {path.name: path.read_text() for path in started.log_dir.iterdir() if path.is_file()}
    assert "customer_erased" in logs["dashboard.jsonl"]
    assert [name for name, text in logs.items() if customer in text] == []


async def test_an_erasure_during_a_load_leaves_nothing_of_her(
    started: RunningPipeline, db: asyncpg.Pool, tmp_path: Path
) -> None:
    """Erased (delete) while the loader stores the upload: what was stored goes, what was still
    in Kafka is stored without her hash, the totals still equal the rows and the upload
    completes."""
    customer = f"CUST-E2E-{uuid.uuid4().hex[:8]}"
    rows = 120_000
    hers = write_csv(tmp_path / "big.csv", rows, customer, every=7)
    upload_id = await upload(started, tmp_path / "big.csv")
    uid = uuid.UUID(upload_id)

    async def stored() -> int:
        return int(
            await db.fetchval(
                "SELECT valid_count + rejected_count FROM uploads WHERE upload_id = $1", uid
            )
        )

    await eventually(stored, lambda n: n > 0, 120, "the first rows stored")
    erased = await erase(started, customer, "delete")
    # It fell mid-load: not all of her rows had been stored (nor all rows).
    assert await db.fetchval("SELECT status FROM uploads WHERE upload_id = $1", uid) != "complete"
    status = await wait_complete(started, upload_id)

    assert status["status"] == "complete"
    counters = await db.fetchrow(
        "SELECT rows_total, valid_count, rejected_count, erased_count FROM uploads"
    )
    assert counters is not None
    assert counters["rows_total"] == rows
    assert counters["erased_count"] == erased["sales_rows"] + erased["rejection_rows"]
    assert counters["valid_count"] + counters["rejected_count"] + counters["erased_count"] == rows
    assert await rows_with(db, her_hashes(started, customer)) == {
        "sales": 0,
        "rejections": 0,
        "erasures": 0,
    }
    assert await totals_differences(db) == {}
    # Both halves happened: rows deleted, and rows that arrived later stored anonymised (every
    # generated row has a customer id, so only hers lack one). Together: all of hers.
    late = await db.fetchval(
        "SELECT (SELECT count(*) FROM sales WHERE customer_hash IS NULL)"
        " + (SELECT count(*) FROM rejections WHERE NOT fields ? 'customer_id')"
    )
    assert erased["sales_rows"] + erased["rejection_rows"] > 0
    assert late > 0
    assert erased["sales_rows"] + erased["rejection_rows"] + late == hers
