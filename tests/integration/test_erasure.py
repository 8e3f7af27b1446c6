"""Erasure on request against the real database: POST /api/v1/erasures and erase_customer,
beside the loader's own merge statements."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import msgspec
import pytest
from dashboard.config import DashboardSettings
from dashboard.main import create_app
from loader.repository import LoaderRepository, RejectionRow, SaleRow, rejection_row, sale_row
from pydantic import SecretStr
from sales_common.codec import (
    RejectedSaleStruct,
    ValidatedSaleStruct,
    ViolationStruct,
    encode_struct,
)
from sales_common.db import Connection, Pool, close_pool, create_pool, register_json_codecs
from sales_common.events import event_id_for
from sales_common.pii import CustomerHasher, PiiSettings
from sales_common.rejections import duplicate_transaction_id
from sales_common.settings import AuthSettings, PostgresSettings
from sales_native import SalesCopy

from tests.helpers import bearer, eventually, serve
from tests.totals import rows_with, totals_differences

pytestmark = pytest.mark.integration

ERASED, KEPT = "CUST-000042", "CUST-000043"
OLD_KEY = "an-old-pii-hmac-key-" + "o" * 32
START = date(2026, 5, 1)
VALIDATED_AT = datetime(2026, 5, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def old_pii() -> PiiSettings:
    return PiiSettings(hmac_key=SecretStr(OLD_KEY), key_id="old")


@pytest.fixture
def settings(
    postgres_settings: PostgresSettings,
    auth_settings: AuthSettings,
    pii_settings: PiiSettings,
    old_pii: PiiSettings,
) -> DashboardSettings:
    """The dashboard with the current key and, after a rotation, the old one."""
    pii = pii_settings.model_copy(update={"previous_hmac_keys": {"old": old_pii.hmac_key}})
    return DashboardSettings(
        postgres=postgres_settings, auth=auth_settings, pii=pii, log_json=False
    )


@pytest.fixture
async def pool(postgres_settings: PostgresSettings) -> AsyncIterator[Pool]:
    pool = await create_pool(postgres_settings, init=register_json_codecs)
    yield pool
    await close_pool(pool)


def sale(
    upload: str,
    n: int,
    product: str,
    customer: str | None,
    hasher: CustomerHasher,
    transaction_id: str | None = None,
) -> SaleRow:
    price = Decimal(n % 7 * 3 + 1) + Decimal("0.25")
    quantity = n % 4 + 1
    return sale_row(
        ValidatedSaleStruct(
            event_id=event_id_for(upload, n, transaction_id),
            upload_id=upload,
            row_number=n,
            transaction_id=transaction_id,
            product=product,
            price=str(price),
            quantity=quantity,
            amount=str(price * quantity),
            customer_hash=hasher.hash(customer) if customer else None,
            pii_key_id=hasher.key_id if customer else None,
            sale_date=None if n % 5 == 0 else START + timedelta(days=n % 3),
            validated_at=VALIDATED_AT,
        )
    )


def rejection(
    upload: str, n: int, customer: str | None, hasher: CustomerHasher, rules: list[str]
) -> RejectionRow:
    fields = {"product": "Pork", "price": "x", "quantity": "1"}
    if customer is not None:
        fields["customer_id"] = hasher.hash(customer)
    return rejection_row(
        RejectedSaleStruct(
            event_id=event_id_for(upload, n, None),
            upload_id=upload,
            row_number=n,
            fields=fields,
            violations=[ViolationStruct(field="product", rule=r, message=r) for r in rules],
            pii_key_id=hasher.key_id if customer else None,
            rejected_at=VALIDATED_AT,
        )
    )


def copied(sales: list[SaleRow]) -> SalesCopy:
    """The sales as the loader's native path reads them from sales.validated."""
    fields = [f for f in ValidatedSaleStruct.__struct_fields__ if f != "schema_version"]
    copy = SalesCopy()
    for row in sales:
        record = msgspec.convert(dict(zip(fields, row, strict=True)), ValidatedSaleStruct)
        assert copy.append(encode_struct(record)) is not None
    return copy


async def store(
    pool: Pool,
    upload: str,
    sales: list[SaleRow],
    rejections: list[RejectionRow],
    *,
    native: bool = False,
) -> None:
    """As the loader stores a batch: rows, aggregates and counters in one transaction; the
    sales as the Python path stages them or, `native`, as the native path copies them."""
    await pool.execute(
        "INSERT INTO uploads (upload_id, filename, status, rows_total)"
        " VALUES ($1, 'f.csv', 'processing', $2) ON CONFLICT DO NOTHING",
        uuid.UUID(upload),
        len(sales) + len(rejections),
    )
    repo = LoaderRepository(pool, "loader")
    async with repo.transaction({upload}) as tx:
        await (repo.store_sales(tx, [], copied(sales)) if native else repo.store_sales(tx, sales))
        await repo.store_rejections(tx, rejections)


async def seed(pool: Pool, current: CustomerHasher, old: CustomerHasher) -> dict[str, int]:
    """Two uploads: the erased customer's rows under the current key and, in the older upload,
    under the old key, among other customers' and anonymous rows. One product and one rule
    only the erased customer has. Returns the erased customer's rows per table."""
    customers = [ERASED, KEPT, None]
    older, newer = str(uuid.uuid4()), str(uuid.uuid4())
    await store(
        pool,
        older,
        [sale(older, n, "Halal Tea", customers[n % 3], old) for n in range(1, 10)],
        [rejection(older, n, customers[n % 3], old, ["prefix"]) for n in range(10, 16)],
    )
    await store(
        pool,
        newer,
        [sale(newer, n, "Halal Rice", customers[n % 3], current) for n in range(1, 31)]
        + [sale(newer, n, "Halal Only Hers", ERASED, current) for n in range(31, 34)],
        [rejection(newer, n, customers[n % 3], current, ["prefix", "range"]) for n in range(40, 46)]
        + [rejection(newer, 46, ERASED, current, ["decimals"])],
    )
    return {"sales": 3 + 10 + 3, "rejections": 2 + 2 + 1}


def every_hash(settings: DashboardSettings, customer: str) -> list[str]:
    return [h.hash(customer) for h in settings.pii.hashers()]


async def snapshot(pool: Pool) -> dict[str, list[tuple[object, ...]]]:
    """The figures users see: aggregates and upload counters."""
    queries = {
        "products": "SELECT * FROM product_totals ORDER BY 1",
        "days": "SELECT * FROM daily_product_totals ORDER BY 1, 2",
        "rules": "SELECT * FROM rejection_rule_counts ORDER BY 1",
        "rejected": "SELECT * FROM rejection_totals",
        "uploads": "SELECT upload_id, valid_count, valid_amount, rejected_count, erased_count,"
        " status FROM uploads ORDER BY 1",
        "sales": "SELECT event_id, product, amount, quantity FROM sales ORDER BY 1",
    }
    return {k: [tuple(r) for r in await pool.fetch(q)] for k, q in queries.items()}


async def test_anonymise_keeps_the_figures_and_unlinks_every_row_under_every_key(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, old_pii: PiiSettings
) -> None:
    found = await seed(pool, CustomerHasher(pii_settings), CustomerHasher(old_pii))
    before = await snapshot(pool)
    kept_before = await rows_with(pool, every_hash(settings, KEPT))
    async with serve(create_app(settings)) as client:
        answer = await client.post(
            "/api/v1/erasures",
            json={"customer_id": f"  {ERASED} "},  # hashed as the validator does: stripped
            headers=bearer(settings.auth, "admin", subject="dpo@example.com"),
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["mode"], body["keys_searched"]) == ("anonymise", 2)
    assert (body["sales_rows"], body["rejection_rows"]) == (found["sales"], found["rejections"])
    hashes = every_hash(settings, ERASED)
    assert await rows_with(pool, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    # Business figures unchanged, other customers untouched.
    assert await snapshot(pool) == before
    assert await rows_with(pool, every_hash(settings, KEPT)) == kept_before
    assert kept_before["sales"] > 0
    unlinked = await pool.fetch(
        "SELECT pii_key_id FROM sales WHERE customer_hash IS NULL AND product = 'Halal Only Hers'"
    )
    assert [r["pii_key_id"] for r in unlinked] == [None] * 3
    stripped = await pool.fetch(
        "SELECT fields, pii_key_id FROM rejections WHERE 'decimals' IN"
        " (SELECT v ->> 'rule' FROM jsonb_array_elements(violations) v)"
    )
    assert [(r["fields"], r["pii_key_id"]) for r in stripped] == [
        ({"product": "Pork", "price": "x", "quantity": "1"}, None)
    ]
    assert sorted(
        r["customer_hash"] for r in await pool.fetch("SELECT * FROM erased_customers")
    ) == sorted(hashes)
    logged = await pool.fetch("SELECT * FROM erasures")
    assert [
        (
            r["erasure_id"],
            r["requested_by"],
            r["mode"],
            r["hash_count"],
            r["sales_rows"],
            r["rejection_rows"],
        )
        for r in logged
    ] == [
        (
            uuid.UUID(body["erasure_id"]),
            "dpo@example.com",
            "anonymise",
            2,
            found["sales"],
            found["rejections"],
        )
    ]
    # No column of the log holds the id or a hash of it.
    log_text = str([dict(r) for r in logged])
    assert ERASED not in log_text
    assert not any(h in log_text for h in hashes)


async def test_delete_moves_every_total_back_by_exactly_what_it_removed(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, old_pii: PiiSettings
) -> None:
    found = await seed(pool, CustomerHasher(pii_settings), CustomerHasher(old_pii))
    assert await totals_differences(pool) == {}
    # Her per-day sums are still deltas, not folded: the erasure folds them first.
    assert await pool.fetchval("SELECT count(*) FROM daily_product_deltas") > 0
    rows_before = await pool.fetchval("SELECT count(*) FROM sales")
    async with serve(create_app(settings)) as client:
        answer = await client.post(
            "/api/v1/erasures",
            json={"customer_id": ERASED, "mode": "delete"},
            headers=bearer(settings.auth, "admin"),
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["mode"], body["sales_rows"], body["rejection_rows"]) == (
        "delete",
        found["sales"],
        found["rejections"],
    )
    assert await pool.fetchval("SELECT count(*) FROM sales") == rows_before - found["sales"]
    assert await rows_with(pool, every_hash(settings, ERASED)) == {
        "sales": 0,
        "rejections": 0,
        "erasures": 0,
    }
    assert await totals_differences(pool) == {}
    # Only she bought it, only she broke that rule: the totals go, not stay at zero.
    assert (
        await pool.fetchval("SELECT count(*) FROM product_totals WHERE product = 'Halal Only Hers'")
        == 0
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM daily_product_totals WHERE product = 'Halal Only Hers'"
        )
        == 0
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM rejection_rule_counts WHERE rule = 'decimals'")
        == 0
    )
    # Every row of each upload is still accounted for: stored, rejected or erased.
    uploads = await pool.fetch(
        "SELECT rows_total, valid_count + rejected_count + erased_count AS accounted,"
        " erased_count, status FROM uploads"
    )
    assert sorted(r["erased_count"] for r in uploads) == [5, 16]
    assert all(r["accounted"] == r["rows_total"] for r in uploads), uploads
    assert {r["status"] for r in uploads} == {"complete"}


async def test_repeating_an_erasure_changes_nothing_more_and_is_recorded(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, old_pii: PiiSettings
) -> None:
    await seed(pool, CustomerHasher(pii_settings), CustomerHasher(old_pii))
    admin = bearer(settings.auth, "admin")
    async with serve(create_app(settings)) as client:
        first = await client.post(
            "/api/v1/erasures", json={"customer_id": ERASED, "mode": "delete"}, headers=admin
        )
        after_first = await snapshot(pool)
        again = [
            await client.post(
                "/api/v1/erasures", json={"customer_id": ERASED, "mode": mode}, headers=admin
            )
            for mode in ("delete", "anonymise")
        ]
    assert first.status_code == 200, first.text
    assert first.json()["sales_rows"] > 0
    for answer in again:
        assert answer.status_code == 200, answer.text
        assert (answer.json()["sales_rows"], answer.json()["rejection_rows"]) == (0, 0)
    assert await snapshot(pool) == after_first
    assert await pool.fetchval("SELECT count(*) FROM erasures") == 3
    assert await pool.fetchval("SELECT count(*) FROM erased_customers") == 2


async def test_erasure_needs_the_admin_scope_and_a_customer_id(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, old_pii: PiiSettings
) -> None:
    await seed(pool, CustomerHasher(pii_settings), CustomerHasher(old_pii))
    before = await snapshot(pool)
    path, wanted = "/api/v1/erasures", {"customer_id": ERASED}
    admin = bearer(settings.auth, "admin")
    async with serve(create_app(settings)) as client:
        no_token = await client.post(path, json=wanted)
        reader = await client.post(path, json=wanted, headers=bearer(settings.auth, "sales:read"))
        refused = {
            name: await client.post(path, json=body, headers=admin)
            for name, body in {
                "blank": {"customer_id": " \t "},
                "empty": {"customer_id": ""},
                "missing": {"mode": "delete"},
                "bad mode": {"customer_id": ERASED, "mode": "forget"},
                "unknown field": {"customer_id": ERASED, "customer": ERASED},
            }.items()
        }
    assert no_token.status_code == 401
    assert reader.status_code == 403
    assert reader.json()["error"] == "forbidden"
    for name, answer in refused.items():
        assert answer.status_code == 422, name
        assert answer.json()["error"] == "invalid_request", name
        assert ERASED not in answer.text, name  # the id is not echoed back
    assert await snapshot(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM erasures") == 0


@pytest.mark.parametrize("native", [False, True], ids=["staged", "native"])
async def test_rows_stored_after_the_erasure_arrive_anonymised(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, native: bool
) -> None:
    """Rows still in Kafka when the erasure ran: the loader's merge stores them without the
    hash (the native path's batch holds one of hers: it is merged from the staging table);
    a reused transaction id's rejection (built from the staged sale) too."""
    current = CustomerHasher(pii_settings)
    hashes = every_hash(settings, ERASED)
    async with pool.acquire() as conn:
        await conn.fetchrow("SELECT * FROM erase_customer($1, 'delete', 'test')", hashes)
    upload = str(uuid.uuid4())
    late_sales = [
        sale(upload, n, "Halal Rice", [ERASED, KEPT][n % 2], current, f"T-{n}") for n in range(1, 9)
    ]
    await store(
        pool,
        upload,
        late_sales,
        [rejection(upload, n, [ERASED, KEPT][n % 2], current, ["prefix"]) for n in range(9, 13)],
        native=native,
    )
    assert await rows_with(pool, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    assert await pool.fetchval("SELECT count(*) FROM sales WHERE customer_hash IS NULL") == 4
    assert await pool.fetchval("SELECT count(*) FROM sales WHERE customer_hash IS NOT NULL") == 4
    assert await pool.fetchval("SELECT count(*) FROM rejections WHERE fields ? 'customer_id'") == 2
    assert await pool.fetchval("SELECT count(*) FROM rejections WHERE pii_key_id IS NULL") == 2
    # Kept, as the loader keeps every row it receives after an erasure: the totals hold them.
    assert await totals_differences(pool) == {}

    # The same events again from other rows (a reused transaction id): the loader rejects them
    # as duplicates built from the staged sales, which still carry her hash.
    other = str(uuid.uuid4())
    repo = LoaderRepository(pool, "loader")
    reused = [(s[0], other, 100 + i, *s[3:]) for i, s in enumerate(late_sales)]
    async with repo.transaction({other}) as tx:
        inserted, duplicates = await (
            repo.store_sales(tx, [], copied(reused)) if native else repo.store_sales(tx, reused)
        )
        await repo.store_rejections(
            tx, [rejection_row(duplicate_transaction_id(d, VALIDATED_AT)) for d in duplicates]
        )
    assert (inserted, len(duplicates)) == (0, 8)
    assert sum(d.customer_hash in hashes for d in duplicates) == 4
    assert await rows_with(pool, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    assert await pool.fetchval("SELECT count(*) FROM rejections WHERE fields ? 'customer_id'") == 6


@pytest.mark.parametrize("native", [False, True], ids=["staged", "native"])
async def test_an_upload_whose_rows_are_deleted_mid_load_still_completes(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, native: bool
) -> None:
    """Complete means every row stored, rejected or erased: the deleted rows never come."""
    current = CustomerHasher(pii_settings)
    upload = str(uuid.uuid4())
    rows = [sale(upload, n, "Halal Tea", [ERASED, KEPT][n % 2], current) for n in range(1, 11)]
    await pool.execute(
        "INSERT INTO uploads (upload_id, filename, status, rows_total)"
        " VALUES ($1, 'f.csv', 'processing', 10)",
        uuid.UUID(upload),
    )
    await store(pool, upload, rows[:6], [], native=native)
    async with pool.acquire() as conn:
        erased = await conn.fetchrow(
            "SELECT * FROM erase_customer($1, 'delete', 'test')", every_hash(settings, ERASED)
        )
    assert erased is not None
    assert erased["sales_rows"] == 3
    assert await pool.fetchval("SELECT status FROM uploads") == "processing"
    await store(pool, upload, rows[6:], [], native=native)
    counters = await pool.fetchrow("SELECT status, valid_count, erased_count FROM uploads")
    assert counters is not None
    assert tuple(counters) == ("complete", 7, 3)
    assert await totals_differences(pool) == {}


async def _waiting_for_a_lock(pool: Pool, pid: int) -> bool:
    event = await pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(event == "Lock")


async def waiting_erasure(
    pool: Pool, eraser: Connection, hashes: list[str]
) -> asyncio.Task[asyncpg.Record | None]:
    """A delete-mode erasure on `eraser`, once it is seen waiting for a lock."""
    erasure = asyncio.create_task(
        eraser.fetchrow("SELECT * FROM erase_customer($1, 'delete', 'test')", hashes)
    )
    pid = eraser.get_server_pid()
    await eventually(lambda: _waiting_for_a_lock(pool, pid), bool, 10, "the erasure to wait")
    assert not erasure.done()
    return erasure


async def erased_everything(
    pool: Pool, hashes: list[str], erasure: asyncio.Task[asyncpg.Record | None]
) -> tuple[int, int]:
    """The erasure's counts (sales, rejections), once it ended with none of her rows left and
    every total equal to the rows."""
    result = await asyncio.wait_for(erasure, 30)
    assert result is not None
    assert await rows_with(pool, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    assert await totals_differences(pool) == {}
    return result["sales_rows"], result["rejection_rows"]


@pytest.mark.parametrize("native", [False, True], ids=["staged", "native"])
async def test_an_erasure_waits_for_a_load_in_flight_and_erases_its_rows(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, native: bool
) -> None:
    """A loader transaction that stored her rows but has not committed: the erasure waits for
    it and then removes them. Without the table lock it would not see them and they would
    stay."""
    current = CustomerHasher(pii_settings)
    hashes = every_hash(settings, ERASED)
    upload = str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO uploads (upload_id, filename, status, rows_total)"
        " VALUES ($1, 'f', 'processing', 6)",
        uuid.UUID(upload),
    )
    repo = LoaderRepository(pool, "loader")
    async with pool.acquire() as eraser:
        async with repo.transaction({upload}) as tx:
            rows = [
                sale(upload, n, "Halal Tea", [ERASED, KEPT][n % 2], current) for n in range(1, 7)
            ]
            await (repo.store_sales(tx, [], copied(rows)) if native else repo.store_sales(tx, rows))
            erasure = await waiting_erasure(pool, eraser, hashes)
        assert await erased_everything(pool, hashes, erasure) == (3, 0)
    status = await pool.fetchrow("SELECT status, erased_count FROM uploads")
    assert status is not None
    assert tuple(status) == ("complete", 3)


@pytest.mark.parametrize("native", [False, True], ids=["staged", "native"])
async def test_an_erasure_waits_for_a_load_that_has_begun_and_holds_its_upload(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, native: bool
) -> None:
    """A loader transaction that has begun (its upload's row locked) but stored nothing yet,
    and an erasure that deletes her rows stored earlier in that upload: the erasure waits for
    the whole load. Were the loader's table lock taken after the upload's row, the erasure
    would take the table, wait for the row, and the load for the table: a deadlock."""
    current = CustomerHasher(pii_settings)
    hashes = every_hash(settings, ERASED)
    upload = str(uuid.uuid4())
    rows = [sale(upload, n, "Halal Tea", [ERASED, KEPT][n % 2], current) for n in range(1, 9)]
    await store(pool, upload, rows[:4], [], native=native)  # rows_total 4: complete
    await pool.execute("UPDATE uploads SET rows_total = 8, status = 'processing'")
    repo = LoaderRepository(pool, "loader")
    async with pool.acquire() as eraser:
        async with repo.transaction({upload}) as tx:
            erasure = await waiting_erasure(pool, eraser, hashes)
            later = rows[4:]
            await (
                repo.store_sales(tx, [], copied(later)) if native else repo.store_sales(tx, later)
            )
        assert await erased_everything(pool, hashes, erasure) == (4, 0)
    status = await pool.fetchrow("SELECT status, valid_count, erased_count FROM uploads")
    assert status is not None
    assert tuple(status) == ("complete", 4, 4)


@pytest.mark.parametrize("native", [False, True], ids=["staged", "native"])
async def test_a_load_waits_for_an_erasure_in_flight_and_stores_her_rows_anonymised(
    settings: DashboardSettings, pool: Pool, pii_settings: PiiSettings, native: bool
) -> None:
    """A loader transaction that starts while the erasure has not committed: its merge waits,
    then sees erased_customers. Without the lock it would store her hash, unseen by the
    erasure."""
    current = CustomerHasher(pii_settings)
    hashes = every_hash(settings, ERASED)
    upload = str(uuid.uuid4())
    async with pool.acquire() as eraser, eraser.transaction():
        await eraser.fetchrow("SELECT * FROM erase_customer($1, 'anonymise', 'test')", hashes)
        loading = asyncio.create_task(
            store(
                pool,
                upload,
                [sale(upload, n, "Halal Tea", ERASED, current) for n in range(1, 5)],
                [],
                native=native,
            )
        )
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ),
            lambda waiting: waiting == 1,
            10,
            "the load to wait",
        )
        assert not loading.done()
    await asyncio.wait_for(loading, 30)
    assert await pool.fetchval("SELECT count(*) FROM sales") == 4
    assert await rows_with(pool, hashes) == {"sales": 0, "rejections": 0, "erasures": 0}
    assert await totals_differences(pool) == {}
