"""loader against the real broker and database: batches, idempotency, offsets in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial

import asyncpg
import pytest
from confluent_kafka import Consumer, Message
from loader.config import LoaderSettings
from loader.consumer import LoaderHandler
from loader.main import create_app
from loader.metrics import LoaderMetrics
from loader.repository import (
    LoaderRepository,
    RejectionRow,
    init_connection,
    rejection_row,
    sale_row,
)
from prometheus_client import CollectorRegistry
from sales_common.codec import decode_rejected, decode_validated
from sales_common.db import Connection, close_pool, create_pool, register_json_codecs
from sales_common.events import (
    EXPRESS_COPY,
    RejectedSale,
    Violation,
    encode,
    event_id_for,
)
from sales_common.rejections import unreadable
from sales_common.settings import KafkaSettings, PostgresSettings
from sales_native import SalesCopy

from tests.helpers import eventually, produce, serve, validated_sale

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


sale = partial(validated_sale, validated_at=NOW)


def rejection(upload: str, row: int, rule: str) -> RejectedSale:
    return RejectedSale(
        event_id=event_id_for(upload, row, None),
        upload_id=upload,
        row_number=row,
        fields={"product": "X"},
        violations=[Violation(field="product", rule=rule, message="bad")],
        rejected_at=NOW,
    )


@pytest.fixture
def settings(kafka_settings: KafkaSettings, postgres_settings: PostgresSettings) -> LoaderSettings:
    return LoaderSettings(
        kafka=kafka_settings,
        postgres=postgres_settings,
        group_id=f"loader-{uuid.uuid4().hex[:8]}",
        log_json=False,
    )


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database)
    yield connection
    await connection.close()


async def upload_complete(conn: asyncpg.Connection, upload: str) -> None:
    await eventually(
        lambda: conn.fetchval("SELECT status FROM uploads WHERE upload_id = $1", uuid.UUID(upload)),
        lambda status: status == "complete",
        what=f"upload {upload} complete",
    )


def pairs(rows: list[asyncpg.Record]) -> dict[object, object]:
    return {row[0]: row[1] for row in rows}


async def create_upload(conn: Connection, upload: str, rows: int) -> None:
    await conn.execute(
        "INSERT INTO uploads (upload_id, filename, status, rows_total)"
        " VALUES ($1, 'f.csv', 'processing', $2)",
        uuid.UUID(upload),
        rows,
    )


async def test_batches_land_once_with_aggregates_and_offsets(
    settings: LoaderSettings, conn: asyncpg.Connection
) -> None:
    upload = str(uuid.uuid4())
    await create_upload(conn, upload, 5)
    sales = [
        sale(upload, 1, "Halal Laptop", "999.99", 2),
        sale(upload, 2, "Halal Mouse", "24.99", 10),
        sale(upload, 3, "Halal Mouse", "24.99", 1),
    ]
    rejections = [rejection(upload, 4, "required"), rejection(upload, 5, "prefix")]
    topics = settings.kafka.topics
    # Every record twice: a replayed stage must not create a second row.
    await produce(
        settings.kafka, topics.validated, [(s.event_id.encode(), encode(s)) for s in sales * 2]
    )
    await produce(
        settings.kafka,
        topics.rejected,
        [(r.event_id.encode(), encode(r)) for r in rejections * 2],
    )
    await produce(settings.kafka, topics.validated, [(b"poison", b"{not json")])

    async with serve(create_app(settings)) as client:
        await upload_complete(conn, upload)
        await eventually(
            lambda: conn.fetchval("SELECT count(*) FROM rejections WHERE upload_id IS NULL"),
            lambda n: n == 1,
            what="poison record stored",
        )
        # Every record consumed (7 validated incl. poison, 4 rejected), per stored offsets.
        await eventually(
            lambda: conn.fetchval("SELECT sum(next_offset) FROM consumer_offsets"),
            lambda n: n == 11,
            what="all offsets stored",
        )
        duplicates = 'loader_rows_total{outcome="duplicate",table="sales"} 3.0'

        async def metrics_text() -> str:
            return (await client.get("/metrics")).text

        metrics = await eventually(metrics_text, lambda m: duplicates in m, what=duplicates)

    assert await conn.fetchval("SELECT count(*) FROM sales") == 3
    assert await conn.fetchval("SELECT count(DISTINCT event_id) FROM sales") == 3
    status = await conn.fetchrow("SELECT * FROM uploads WHERE upload_id = $1", uuid.UUID(upload))
    assert status is not None
    assert (status["valid_count"], status["rejected_count"], status["valid_amount"]) == (
        3,
        2,
        Decimal("2274.87"),
    )
    products = pairs(await conn.fetch("SELECT product, total_amount FROM product_totals"))
    assert products == {"Halal Laptop": Decimal("1999.98"), "Halal Mouse": Decimal("274.89")}
    assert await conn.fetchval("SELECT rejected_rows FROM rejection_totals") == 3
    assert pairs(await conn.fetch("SELECT rule, count FROM rejection_rule_counts")) == {
        "required": 1,
        "prefix": 1,
        "unreadable": 1,
    }
    offsets = pairs(
        await conn.fetch(
            "SELECT topic, sum(next_offset) FROM consumer_offsets"
            " WHERE group_id = $1 GROUP BY topic",
            settings.group_id,
        )
    )
    assert offsets == {topics.validated: 7, topics.rejected: 4}
    assert "loader_consumer_lag_records" in metrics


async def test_resumes_from_offsets_stored_in_postgres(
    settings: LoaderSettings, conn: asyncpg.Connection
) -> None:
    upload = str(uuid.uuid4())
    await create_upload(conn, upload, 4)
    topics = settings.kafka.topics
    first = [sale(upload, 1, "Halal A", "1.00", 1), sale(upload, 2, "Halal A", "1.00", 1)]
    await produce(
        settings.kafka, topics.validated, [(s.event_id.encode(), encode(s)) for s in first]
    )
    async with serve(create_app(settings)):
        await eventually(
            lambda: conn.fetchval("SELECT count(*) FROM sales"),
            lambda n: n == 2,
            what="2 sales",
        )
    # Kafka's committed offsets are only for lag tools: wipe them; the loader must resume
    # from PostgreSQL, so it never re-reads (and never re-counts) the first batch.
    stored = await conn.fetchval("SELECT sum(next_offset) FROM consumer_offsets")
    assert stored == 2
    second = [sale(upload, 3, "Halal A", "1.00", 1), sale(upload, 4, "Halal A", "1.00", 1)]
    await produce(
        settings.kafka, topics.validated, [(s.event_id.encode(), encode(s)) for s in second]
    )
    async with serve(create_app(settings.model_copy(update={"group_id": settings.group_id}))):
        await upload_complete(conn, upload)
    assert await conn.fetchval("SELECT valid_count FROM uploads") == 4
    assert await conn.fetchval("SELECT sales_count FROM product_totals") == 4


async def test_an_express_copy_is_skipped_and_its_twin_stored_once(
    settings: LoaderSettings, conn: asyncpg.Connection
) -> None:
    """A small upload's rows reach the loader twice: the twin in the express lane and the
    copy in sales.validated marked EXPRESS_COPY, written in one validator transaction. The
    loader stores the twin and skips the copy (it never reaches the database)."""
    upload = str(uuid.uuid4())
    await create_upload(conn, upload, 2)
    topics = settings.kafka.topics
    rows = [sale(upload, 1, "Halal A", "1.00", 1), sale(upload, 2, "Halal A", "2.00", 1)]
    records = [(s.event_id.encode(), encode(s)) for s in rows]
    # A marked copy without a twin cannot come from the validator; here it proves the skip.
    lone = sale(str(uuid.uuid4()), 1, "Halal Lone", "9.00", 1)
    copies = [*records, (lone.event_id.encode(), encode(lone))]
    await produce(settings.kafka, topics.validated, copies, headers=[EXPRESS_COPY])
    await produce(settings.kafka, topics.validated_priority, records)
    async with serve(create_app(settings)):
        await upload_complete(conn, upload)
        await eventually(
            lambda: conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1",
                topics.validated,
            ),
            lambda n: n == 3,
            what="the three copies consumed",
        )
    assert await conn.fetchval("SELECT count(*) FROM sales") == 2
    assert await conn.fetchval("SELECT valid_count FROM uploads") == 2
    assert pairs(await conn.fetch("SELECT product, sales_count FROM product_totals")) == {
        "Halal A": 2
    }


# Random, so it does not compress into a B-tree entry (2,704 bytes at most): longer than any
# index of a transaction id can hold, and within ingest's 4,096 characters a field.
LONG_TXN = secrets.token_urlsafe(2400)


@pytest.mark.parametrize("txn", ["T-9", LONG_TXN], ids=["short", "longer-than-an-index-entry"])
async def test_reused_transaction_id_is_rejected_not_lost(
    settings: LoaderSettings, conn: asyncpg.Connection, txn: str
) -> None:
    upload = str(uuid.uuid4())
    await create_upload(conn, upload, 2)
    twins = [
        sale(upload, 1, "Halal A", "1.00", 1, txn=txn),
        sale(upload, 2, "Halal B", "2.00", 1, txn=txn),
    ]
    await produce(
        settings.kafka,
        settings.kafka.topics.validated,
        [(s.event_id.encode(), encode(s)) for s in twins],
    )
    async with serve(create_app(settings)):
        await upload_complete(conn, upload)
    assert await conn.fetchval("SELECT count(*) FROM sales") == 1
    violations = await conn.fetchval("SELECT violations::text FROM rejections WHERE row_number = 2")
    assert '"rule": "duplicate"' in violations


@pytest.mark.parametrize(
    "txn", [None, "T-1", LONG_TXN], ids=["row-keyed", "transaction-keyed", "long-transaction"]
)
async def test_a_batch_holding_a_stored_event_stores_the_rest_once(
    postgres_settings: PostgresSettings, conn: asyncpg.Connection, txn: str | None
) -> None:
    """A batch is inserted plainly first; a stored event in it fails that INSERT, and the
    batch is merged again skipping it: the new rows land once, and every aggregate and
    counter moves by them alone. A stored event is found by the key its event_id hashes
    (0009_natural_keys.sql): its transaction id, else its upload and row; a rejection's
    upload and row, an unreadable record's place in Kafka."""
    upload = str(uuid.uuid4())
    await create_upload(conn, upload, 4)
    first = sale(upload, 1, "Halal A", "2.00", 1, txn=txn)
    # No producer of ours writes a rejection with an upload but no row number; one is kept
    # (not refused by a constraint) and found again by its event_id.
    rowless = RejectedSale(
        event_id="rowless-1",
        upload_id=str(uuid.uuid4()),
        fields={"product": "X"},
        violations=[Violation(field="record", rule="unreadable", message="no row")],
        rejected_at=NOW,
    )
    stored_rejections = [
        rejection_row(decode_rejected(encode(r)))
        for r in (rejection(upload, 4, "required"), rowless)
    ] + [rejection_row(unreadable("sales.raw/0/7", "not JSON", NOW))]
    batches = [
        ([first], stored_rejections),
        (
            [sale(upload, 2, "Halal A", "3.00", 2), first, sale(upload, 3, "Halal B", "1.00", 1)],
            stored_rejections,
        ),
    ]
    pool = await create_pool(postgres_settings, init=init_connection)
    try:
        repo = LoaderRepository(pool, "loader")
        stored = []
        for sales, rejections in batches:
            async with repo.transaction({upload}) as tx:
                # The rows the loop copies: each record through the hot-path decoder.
                sale_rows = [sale_row(decode_validated(encode(s))) for s in sales]
                sales_in, reused = await repo.store_sales(tx, sale_rows)
                stored.append((sales_in, reused, await repo.store_rejections(tx, rejections)))
    finally:
        await close_pool(pool)

    assert stored == [(1, [], 3), (2, [], 0)]
    assert await conn.fetchval("SELECT count(*) FROM sales") == 3
    assert pairs(await conn.fetch("SELECT product, total_amount FROM product_totals")) == {
        "Halal A": Decimal("8.00"),
        "Halal B": Decimal("1.00"),
    }
    assert await conn.fetchval("SELECT sum(sales_count) FROM daily_product_totals") == 3
    status = await conn.fetchrow("SELECT * FROM uploads WHERE upload_id = $1", uuid.UUID(upload))
    assert status is not None
    assert (status["status"], status["valid_count"], status["rejected_count"]) == ("complete", 3, 1)
    assert status["valid_amount"] == Decimal("9.00")
    assert await conn.fetchval("SELECT rejected_rows FROM rejection_totals") == 3
    assert pairs(await conn.fetch("SELECT rule, count FROM rejection_rule_counts")) == {
        "required": 1,
        "unreadable": 2,
    }


async def test_timestamps_are_copied_as_asyncpg_copies_them(database: str) -> None:
    """The loader's own timestamptz codec stores and reads what asyncpg's does: aware times in
    any offset, a naive one (local time), the infinities, times before 2000."""
    moments = [
        datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=-8))),
        datetime(2026, 7, 1, 8, 15),
        datetime.max,
        datetime.min,
    ]
    stored: list[list[tuple[str, datetime]]] = []
    for init in (register_json_codecs, init_connection):
        connection = await asyncpg.connect(database)
        try:
            await init(connection)
            await connection.execute("CREATE TEMP TABLE moments (n int, at timestamptz)")
            await connection.copy_records_to_table("moments", records=list(enumerate(moments)))
            rows = await connection.fetch("SELECT at::text, at FROM moments ORDER BY n")
            stored.append([(row[0], row[1]) for row in rows])
        finally:
            await connection.close()
    assert stored[1] == stored[0]
    assert stored[1][0] == ("2026-11-26 12:00:01.654321+00", moments[0])


async def test_the_native_copy_stages_what_the_python_path_stages(
    postgres_settings: PostgresSettings,
) -> None:
    """The same records staged as the loader stages them (COPY's binary rows from
    sales_native.SalesCopy, the records it leaves to Python after them) and all through the
    Python decoder and asyncpg: PostgreSQL holds the same values, to the microsecond, the
    char(64) hash, each decimal rounded to its column's cents, and the dates asyncpg writes
    as infinities."""
    upload = str(uuid.uuid4())
    moments = [NOW, datetime(1999, 12, 31, 23, 59, 59, 5, tzinfo=UTC), NOW.replace(microsecond=0)]
    prices = ["0.0100", "12345.6789", "0.00005", "99999.995", "0", "10000", "2.675"]
    days = [date(2024, 2, 29), None, date.max, date.min, date(1, 1, 2), date(9999, 12, 30)]
    records = [
        encode(
            validated_sale(
                upload,
                row,
                "Halal ☃" if row % 2 else "Halal A",
                prices[row % len(prices)] if row % 5 else f"{row}.5",
                row,
                days[row % len(days)],
                txn=f"T-{row}" if row % 3 else None,
                validated_at=moments[row % 3],
            ).model_copy(
                update={"customer_hash": f"{row:064x}", "pii_key_id": "k1"} if row % 4 else {}
            )
        )
        for row in range(1, 31)
    ]
    copied, left = SalesCopy(), []
    for value in records:
        if copied.append(value) is None:
            left.append(sale_row(decode_validated(value)))
    assert copied.rows > len(left) > 0  # both paths staged some
    python_rows = [sale_row(decode_validated(value)) for value in records]
    pool = await create_pool(postgres_settings, init=init_connection)
    staged = []
    try:
        repo = LoaderRepository(pool, "loader")
        for native, rows in ((copied, left), (None, python_rows)):
            async with repo.transaction(set()) as tx:  # staged only
                assert await repo.stage_sales(tx, rows, native) == len(records)
                found = await tx.fetch(
                    "SELECT *, sale_date::text, validated_at::text FROM sales_stage ORDER BY 1"
                )
                staged.append([tuple(r) for r in found])
    finally:
        await close_pool(pool)
    assert len(staged[0]) == len(records)
    assert staged[0] == staged[1]


class _RolledBack(Exception):
    pass


STAGED = "SELECT sum(n_tup_ins) FROM pg_stat_xact_user_tables WHERE relname = 'sales_stage'"
AGGREGATES = (
    "SELECT * FROM product_totals ORDER BY 1",
    "SELECT day, product, sum(total_amount), sum(quantity), sum(sales_count)"
    " FROM daily_product_deltas GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT upload_id, valid_count, valid_amount FROM uploads ORDER BY 1",
)


async def test_the_loaders_totals_move_every_aggregate_as_the_sql_sums_do(
    postgres_settings: PostgresSettings,
) -> None:
    """A batch read whole by the native path is COPYed straight into sales and moves the
    aggregates by SalesCopy.totals, any other is staged and merged with the sums PostgreSQL
    computes from the inserted rows: each moves product_totals, the per-day deltas and the
    upload counters alike, and a replay of it moves nothing."""
    uploads = [str(uuid.uuid4()) for _ in range(2)]
    moments = [NOW, datetime(1999, 12, 31, 23, 59, 59, 5, tzinfo=UTC)]
    records = [
        encode(
            sale(
                uploads[row % 2],
                row,
                f"Halal {row % 5}",
                f"{row % 7}.{row % 100:02d}",
                row % 9 + 1,
                None if row % 4 == 0 else date(2026, row % 12 + 1, row % 28 + 1),
            ).model_copy(update={"validated_at": moments[row % 2]})
        )
        for row in range(1, 401)
    ]
    python_rows = [sale_row(decode_validated(value)) for value in records]
    pool = await create_pool(postgres_settings, init=init_connection)
    moved = []
    try:
        async with pool.acquire() as c:
            for upload in uploads:
                await create_upload(c, upload, 200)
        repo = LoaderRepository(pool, "loader")
        for native in (True, False):
            copied = SalesCopy()
            assert all(copied.append(value) for value in records)
            assert copied.totals() is not None
            stored = ([], copied) if native else (python_rows, None)
            with contextlib.suppress(_RolledBack):
                async with repo.transaction(uploads) as tx:
                    assert await repo.store_sales(tx, *stored) == (len(records), [])
                    assert await tx.fetchval(STAGED) == (0 if native else len(records))
                    moved.append([[tuple(r) for r in await tx.fetch(q)] for q in AGGREGATES])
                    replay = SalesCopy()
                    assert all(replay.append(value) for value in records)
                    assert await repo.store_sales(tx, [], replay) == (0, [])
                    assert await tx.fetchval("SELECT sum(sales_count) FROM product_totals") == 400
                    raise _RolledBack
    finally:
        await close_pool(pool)
    assert moved[0] == moved[1]
    assert len(moved[0][1]) > 100  # many days and products
    assert [count for _, count, _ in moved[0][2]] == [200, 200]


class PausingRepository(LoaderRepository):
    """Holds its batch's transaction after the sales, before the rejections, until told."""

    def __init__(self, pool: asyncpg.Pool, group_id: str) -> None:
        super().__init__(pool, group_id)
        self.between = asyncio.Event()
        self.go_on = asyncio.Event()

    async def store_rejections(self, conn: Connection, rejections: list[RejectionRow]) -> int:
        self.between.set()
        await self.go_on.wait()
        return await super().store_rejections(conn, rejections)


async def test_two_loaders_batches_of_the_same_uploads_do_not_deadlock(
    settings: LoaderSettings, postgres_settings: PostgresSettings, conn: asyncpg.Connection
) -> None:
    """Two loaders' batches, each with a sale of one upload and a rejection of the other (the
    main lane's batches of uploads sent together): the second must wait for the first's
    transaction as a whole, not take one upload's row and then wait for the other's while the
    first waits for a row the second took (PostgreSQL then aborts one after deadlock_timeout,
    and its batch is retried a second later)."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for upload in (first, second):
        await create_upload(conn, upload, 2)
    validated, rejected = settings.kafka.topics.validated, settings.kafka.topics.rejected

    def batch(sold: str, refused: str, partition: int, product: str) -> list[Message]:
        return [
            Message(
                topic=validated,
                partition=partition,
                offset=0,
                value=encode(sale(sold, 1, product, "2.00", 1)),
            ),
            Message(
                topic=rejected,
                partition=partition,
                offset=0,
                value=encode(rejection(refused, 2, "prefix")),
            ),
        ]

    pool = await create_pool(postgres_settings, init=init_connection)
    consumer = Consumer(settings.kafka.consumer_config(settings.group_id))  # commits for lag only
    pausing = PausingRepository(pool, settings.group_id)
    registries = [CollectorRegistry() for _ in range(2)]
    loaders = [
        LoaderHandler(settings, repository, LoaderMetrics(registry), express=False)
        for repository, registry in zip(
            (pausing, LoaderRepository(pool, settings.group_id)), registries, strict=True
        )
    ]
    try:
        held = asyncio.create_task(loaders[0].handle(batch(second, first, 0, "Halal A"), consumer))
        await asyncio.wait_for(pausing.between.wait(), 30)
        waiting = asyncio.create_task(
            loaders[1].handle(batch(first, second, 1, "Halal B"), consumer)
        )
        await eventually(
            lambda: conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ),
            lambda n: n == 1,
            what="the second loader waiting for the first",
        )
        pausing.go_on.set()
        await asyncio.wait_for(asyncio.gather(held, waiting), 30)
    finally:
        consumer.close()
        await close_pool(pool)

    retries = [r.get_sample_value("loader_batch_retries_total") for r in registries]
    assert retries == [0, 0]  # no deadlock undid either
    counts = await conn.fetch(
        "SELECT status, valid_count, rejected_count FROM uploads WHERE upload_id = ANY($1)",
        [uuid.UUID(first), uuid.UUID(second)],
    )
    assert [tuple(row) for row in counts] == [("complete", 1, 1)] * 2
    assert await conn.fetchval("SELECT rejected_rows FROM rejection_totals") == 2
