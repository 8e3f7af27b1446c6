"""The per-day-per-product aggregate against the rows it sums: kept by the loader's repository
in the batch's transaction (appended as deltas, folded later), counting only rows actually
inserted, and backfilled on upgrade."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial

import asyncpg
import pytest
from devstack.pipeline import Infrastructure, create_database, drop_database
from loader.repository import LoaderRepository, sale_row
from pydantic import SecretStr
from sales_common.codec import decode_validated
from sales_common.db import Pool, close_pool, create_pool, register_json_codecs
from sales_common.events import ValidatedSale, encode
from sales_common.schema.migrations import available
from sales_common.settings import PostgresSettings

from tests.helpers import validated_sale
from tests.totals import totals_differences

pytestmark = pytest.mark.integration

# What the aggregate must always equal: the stored rows summed by day (UTC) and product.
BY_DAY_AND_PRODUCT = """
SELECT coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) AS day, product,
       sum(amount) AS total_amount, sum(quantity) AS quantity, count(*) AS sales_count
FROM sales GROUP BY 1, 2 ORDER BY 1, 2
"""
AGGREGATE = (
    "SELECT day, product, total_amount, quantity, sales_count FROM daily_product_totals"
    " ORDER BY day, product"
)


# 23:30 UTC: the day of an undated sale is this date in UTC, whatever the session's zone
sale = partial(validated_sale, validated_at=datetime(2026, 3, 9, 23, 30, tzinfo=UTC))


def rows(records: list[asyncpg.Record]) -> list[tuple[object, ...]]:
    return [tuple(r) for r in records]


@pytest.fixture
async def pool(postgres_settings: PostgresSettings) -> AsyncIterator[Pool]:
    created = await create_pool(postgres_settings, init=register_json_codecs)
    yield created
    await close_pool(created)


async def store(repo: LoaderRepository, sales: list[ValidatedSale]) -> int:
    """One batch, as the loader's loop stores it."""
    async with repo.transaction({s.upload_id for s in sales}) as conn:
        inserted, _ = await repo.store_sales(
            conn, [sale_row(decode_validated(encode(s))) for s in sales]
        )
    return inserted


async def test_the_aggregate_counts_only_rows_inserted(pool: Pool) -> None:
    upload = str(uuid.uuid4())
    first = [
        sale(upload, 1, "Halal A", "2.50", 2, date(2026, 3, 1)),
        sale(upload, 2, "Halal A", "1.00", 1, date(2026, 3, 1)),
        sale(upload, 3, "Halal B", "9999999999.99", 100, date(2026, 3, 2)),
        sale(upload, 4, "Halal B", "3.00", 1, None),
    ]
    overlapping = [first[1], sale(upload, 5, "Halal A", "4.00", 3, date(2026, 3, 1)), first[3]]
    repo = LoaderRepository(pool, "loader")

    assert await store(repo, first) == 4
    once = rows(await pool.fetch(AGGREGATE))
    assert await store(repo, first) == 0  # the batch redelivered whole
    assert rows(await pool.fetch(AGGREGATE)) == once
    assert await store(repo, overlapping) == 1  # two stored already, one new

    assert rows(await pool.fetch(AGGREGATE)) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))
    assert rows(await pool.fetch(AGGREGATE)) == [
        (date(2026, 3, 1), "Halal A", Decimal("18.00"), 6, 3),
        (date(2026, 3, 2), "Halal B", Decimal("999999999999.00"), 100, 1),
        (date(2026, 3, 9), "Halal B", Decimal("3.00"), 1, 1),
    ]
    # The all-time roll-up moves with it, from the same inserted rows.
    assert rows(
        await pool.fetch(
            "SELECT product, total_amount, quantity, sales_count FROM product_totals ORDER BY 1"
        )
    ) == rows(
        await pool.fetch(
            "SELECT product, sum(total_amount), sum(quantity), sum(sales_count)"
            " FROM daily_product_totals GROUP BY 1 ORDER BY 1"
        )
    )


async def test_an_undated_sale_takes_its_utc_validation_day_in_any_session_zone(
    postgres_settings: PostgresSettings,
) -> None:
    url = postgres_settings.dsn.get_secret_value()
    admin = await asyncpg.connect(url)
    try:
        name = url.rpartition("/")[2]
        await admin.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Tokyo'")
    finally:
        await admin.close()
    tokyo = await create_pool(postgres_settings)  # new sessions take the database's zone
    try:
        assert await tokyo.fetchval("SHOW timezone") == "Asia/Tokyo"
        await store(
            LoaderRepository(tokyo, "loader"),
            [sale(str(uuid.uuid4()), 1, "Halal A", "1.00", 1, None)],
        )
        # 2026-03-09 23:30 UTC is already the 10th in Tokyo; the sale belongs to the 9th.
        assert await tokyo.fetchval("SELECT day FROM daily_product_totals") == date(2026, 3, 9)
    finally:
        await close_pool(tokyo)


async def test_upgrade_backfills_the_aggregate_from_the_stored_rows(
    infrastructure: Infrastructure,
) -> None:
    """A database at the release before 0006, with sales and their daily_totals, upgraded:
    the new aggregate holds every stored sale, and the old readers' daily_totals reads the same."""
    url = await create_database(infrastructure.admin_dsn, migrated=False)
    conn = await asyncpg.connect(url)
    try:
        migrations = dict(available())
        for version in sorted(migrations):
            if version >= "0006":
                break
            await conn.execute(migrations[version])
        upload = uuid.uuid4()
        start = date(2026, 1, 30)
        await conn.executemany(
            "INSERT INTO sales (event_id, upload_id, row_number, product, price, quantity,"
            " amount, sale_date, validated_at)"
            " VALUES ($1, $2, $3, $4, $5::numeric, $6::int, $5::numeric * $6::int, $7, $8)",
            [
                (
                    f"e{n}",
                    upload,
                    n,
                    f"Halal {n % 3}",
                    Decimal(n) + Decimal("0.25"),
                    n % 7 + 1,
                    None if n % 5 == 0 else start + timedelta(days=n % 4),
                    datetime(2026, 2, 1, 12, tzinfo=UTC),
                )
                for n in range(1, 41)
            ],
        )
        await conn.execute(
            "INSERT INTO daily_totals SELECT coalesce(sale_date, validated_at::date),"
            " sum(amount), count(*) FROM sales GROUP BY 1"
        )
        old_daily = rows(await conn.fetch("SELECT * FROM daily_totals ORDER BY day"))

        await conn.execute(migrations["0006_daily_product_totals"])

        assert rows(await conn.fetch(AGGREGATE)) == rows(await conn.fetch(BY_DAY_AND_PRODUCT))
        assert await conn.fetchval("SELECT sum(sales_count) FROM daily_product_totals") == 40
        assert rows(await conn.fetch("SELECT * FROM daily_totals ORDER BY day")) == old_daily
    finally:
        await conn.close()
        await drop_database(infrastructure.admin_dsn, url)


async def test_folding_moves_every_delta_once_and_changes_no_total(pool: Pool) -> None:
    """Batches append their per-day sums as deltas; folds, however many run at once and
    while batches commit, move each delta once and leave every total as its rows add up."""
    repo = LoaderRepository(pool, "loader")
    upload = str(uuid.uuid4())
    days = [date(2026, 3, 1) + timedelta(days=n % 5) for n in range(60)]
    batches = [
        [
            sale(upload, n + 1, f"Halal {n % 3}", f"{n}.25", n % 7 + 1, days[n])
            for n in range(k, k + 20)
        ]
        for k in (0, 20, 40)
    ]
    assert await store(repo, batches[0]) == 20
    assert await store(repo, batches[1]) == 20
    pending = await pool.fetchval("SELECT count(*) FROM daily_product_deltas")
    assert pending > 0
    assert rows(await pool.fetch(AGGREGATE)) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))

    # Four folds and a batch at once, then one more fold for whatever the batch appended.
    results = await asyncio.gather(
        *(repo.fold_daily_totals() for _ in range(4)), store(repo, batches[2])
    )
    moved = sum(results[:4]) + await pool.fetchval("SELECT fold_daily_product_deltas(true)")
    assert results[4] == 20
    assert await pool.fetchval("SELECT count(*) FROM daily_product_deltas") == 0
    total_deltas = pending + len({(s.sale_date, s.product) for s in batches[2]})
    assert moved == total_deltas
    assert rows(await pool.fetch(AGGREGATE)) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))
    folded = await pool.fetch(
        "SELECT day, product, total_amount, quantity, sales_count FROM daily_product_folded"
        " ORDER BY day, product"
    )
    assert rows(folded) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))


async def test_a_fold_does_not_wait_for_another_one(pool: Pool) -> None:
    repo = LoaderRepository(pool, "loader")
    await store(repo, [sale(str(uuid.uuid4()), 1, "Halal A", "1.00", 1, date(2026, 3, 1))])
    async with pool.acquire() as holder, holder.transaction():
        assert await holder.fetchval("SELECT fold_daily_product_deltas()") == 1
        # The first fold's lock is held until its commit: the loaders' fold skips its turn.
        assert await repo.fold_daily_totals() == 0
    assert await pool.fetchval("SELECT count(*) FROM daily_product_deltas") == 0


async def test_a_fold_never_waits_for_a_batch_in_flight(pool: Pool) -> None:
    """A fold moves the committed deltas and leaves a batch in flight alone (no table lock
    holds batches or readers back); that batch's deltas are folded the next time."""
    repo = LoaderRepository(pool, "loader")
    upload = str(uuid.uuid4())
    await store(repo, [sale(upload, 1, "Halal A", "1.00", 1, date(2026, 3, 1))])
    async with repo.transaction({upload}) as in_flight:
        await repo.store_sales(
            in_flight,
            [sale_row(decode_validated(encode(sale(upload, 2, "Halal B", "2.00", 1, None))))],
        )
        assert await repo.fold_daily_totals() == 1
    assert await pool.fetchval("SELECT count(*) FROM daily_product_deltas") == 1
    assert rows(await pool.fetch(AGGREGATE)) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))
    assert await repo.fold_daily_totals() == 1
    assert rows(await pool.fetch(AGGREGATE)) == rows(await pool.fetch(BY_DAY_AND_PRODUCT))
    # Vacuumed after the fold: no deleted rows left for the next fold or reader to scan.
    assert await pool.fetchval("SELECT pg_relation_size('daily_product_deltas')") == 0


async def test_upgrade_to_deltas_keeps_every_total(infrastructure: Infrastructure) -> None:
    """A database at 0007 with sales and their totals, upgraded: the view reads the same
    totals, the old readers' daily_totals too; then a batch of the new loader (deltas, not
    folded) and a delete-mode erasure of a customer with rows on both sides of the upgrade:
    every aggregate still equals its rows."""
    url = await create_database(infrastructure.admin_dsn, migrated=False)
    conn = await asyncpg.connect(url)
    try:
        migrations = available()
        for version, sql in migrations:
            if version < "0008":
                await conn.execute(sql)
        upload = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO uploads (upload_id, filename, status, rows_total)"
            " VALUES ($1, 'f.csv', 'processing', 6)",
            uuid.UUID(upload),
        )
        # Stored by the previous release's loader: rows and their totals, per-day ones upserted.
        old = [
            sale(upload, n, f"Halal {n % 2}", f"{n}.50", n, date(2026, 3, n % 2 + 1))
            for n in range(1, 4)
        ]
        her = "a" * 64
        rows_of = [sale_row(decode_validated(encode(s))) for s in old]
        await conn.executemany(
            "INSERT INTO sales (event_id, upload_id, row_number, product, price, quantity,"
            " amount, customer_hash, sale_date, validated_at)"
            " VALUES ($1, $2::uuid, $3, $4, $5::numeric, $6, $7::numeric, $8, $9, $10)",
            [
                (r[0], r[1], r[2], r[4], r[5], r[6], r[7], her if r[2] == 1 else None, r[10], r[11])
                for r in rows_of
            ],
        )
        await conn.execute(
            "INSERT INTO product_totals SELECT product, sum(amount), sum(quantity), count(*)"
            " FROM sales GROUP BY 1;"
            " INSERT INTO daily_product_totals SELECT sale_date, product, sum(amount),"
            " sum(quantity), count(*) FROM sales GROUP BY 1, 2;"
            " UPDATE uploads SET valid_count = 3, valid_amount = (SELECT sum(amount) FROM sales)"
        )
        before = rows(await conn.fetch(AGGREGATE))
        old_daily = rows(await conn.fetch("SELECT * FROM daily_totals ORDER BY day"))

        await conn.execute(dict(migrations)["0008_daily_product_deltas"])

        assert rows(await conn.fetch(AGGREGATE)) == before
        assert rows(await conn.fetch("SELECT * FROM daily_totals ORDER BY day")) == old_daily
        pool = await create_pool(
            PostgresSettings(dsn=SecretStr(url)),
            init=register_json_codecs,
        )
        try:
            new = [sale(upload, n, "Halal 1", "1.25", 2, date(2026, 3, 2)) for n in range(4, 7)]
            assert await store(LoaderRepository(pool, "loader"), new) == 3
            await pool.execute("UPDATE sales SET customer_hash = $1 WHERE row_number = 5", her)
            assert await totals_differences(pool) == {}
            erased = await pool.fetchrow(
                "SELECT * FROM erase_customer(ARRAY[$1], 'delete', 'test')", her
            )
            assert erased is not None
            assert erased["sales_rows"] == 2
            assert await totals_differences(pool) == {}
            assert await pool.fetchval("SELECT count(*) FROM daily_product_deltas") == 0
        finally:
            await close_pool(pool)
    finally:
        await conn.close()
        await drop_database(infrastructure.admin_dsn, url)
