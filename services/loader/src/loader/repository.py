"""Every SQL statement of the loader. One batch = one database transaction holding the
rows, the aggregates they move, the upload counters and the consumed Kafka offsets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import asyncpg
import msgspec
from sales_common.codec import RejectedSaleStruct, ValidatedSaleStruct
from sales_common.db import Connection, Pool, register_json_codecs
from sales_common.rejections import ReusedTransactionId
from sales_native import SalesCopy

_SALES_COLUMNS = (
    "event_id",
    "upload_id",
    "row_number",
    "transaction_id",
    "product",
    "price",
    "quantity",
    "amount",
    "customer_hash",
    "pii_key_id",
    "sale_date",
    "validated_at",
)
_REJECTION_COLUMNS = (
    "event_id",
    "upload_id",
    "row_number",
    "fields",
    "violations",
    "pii_key_id",
    "source",
    "rejected_at",
)

# A batch's transaction, as it begins: the table locks its rows will take anyway, in the order
# of erase_customer's (0007_erasures.sql: that lock waits for every loader transaction under
# way, so none may hold a row lock before it has them), then the staging tables: the staged
# columns with their types, nothing more (no loaded_at with its DEFAULT now() and no NOT NULL
# checks, which COPY evaluated for every staged row and the INSERT does again).
_STAGE = f"""
LOCK TABLE sales, rejections IN ROW EXCLUSIVE MODE;
CREATE TEMP TABLE IF NOT EXISTS sales_stage ON COMMIT DELETE ROWS
    AS SELECT {", ".join(_SALES_COLUMNS)} FROM sales WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS rejections_stage ON COMMIT DELETE ROWS
    AS SELECT {", ".join(_REJECTION_COLUMNS)} FROM rejections WITH NO DATA;
"""  # noqa: S608 - identifiers are module constants


class _Merge(NamedTuple):
    """A merge statement in its two forms, see `_merge`."""

    plain: str  # inserts every staged row, or fails as a whole if one is stored already
    skipping: str  # inserts the staged rows that are not stored yet


def _merge_statement(template: str) -> _Merge:
    return _Merge(
        template.format(conflict=""),
        # No arbiter named: a stored row conflicts on whichever natural key its event_id
        # hashes (0009_natural_keys.sql). Every unique index of the two tables is one of
        # those keys; a unique index added for another reason would make rows skipped here.
        template.format(conflict="ON CONFLICT DO NOTHING"),
    )


# A staged row of an erased customer (erased_customers, see 0007_erasures.sql) is stored without
# its hash: it was still in Kafka when the erasure ran. The erasure's table lock makes every
# merge either commit before it or see its erased_customers rows.
_ANONYMISED_SALE = {
    "customer_hash": "CASE WHEN e.customer_hash IS NULL THEN s.customer_hash END",
    "pii_key_id": "CASE WHEN e.customer_hash IS NULL THEN s.pii_key_id END",
}
_ANONYMISED_REJECTION = {
    "fields": "CASE WHEN e.customer_hash IS NULL THEN s.fields ELSE s.fields - 'customer_id' END",
    "pii_key_id": "CASE WHEN e.customer_hash IS NULL THEN s.pii_key_id END",
}


def _staged(columns: tuple[str, ...], expressions: dict[str, str]) -> str:
    """The staged row `s` as the columns to insert: `s.<column>` unless `expressions` says."""
    return ", ".join(expressions.get(c, f"s.{c}") for c in columns)


# Insert new sales only, then move every aggregate by exactly the rows inserted. A sale's day is
# its own date, else the day it was validated in UTC (not the session's time zone). The
# aggregate rows are locked in key order, after the uploads' (_LOCK_UPLOADS). The per-day
# totals are appended as deltas, folded by `fold_daily_totals` (0008_daily_product_deltas.sql).
_INSERT_SALES = f"""
INSERT INTO sales ({", ".join(_SALES_COLUMNS)})
SELECT {_staged(_SALES_COLUMNS, _ANONYMISED_SALE)}
FROM sales_stage s LEFT JOIN erased_customers e ON e.customer_hash = s.customer_hash
"""  # noqa: S608 - identifiers are module constants
_ADD_TO_PRODUCTS = """
INSERT INTO product_totals AS t (product, total_amount, quantity, sales_count)
{rows} ORDER BY product
ON CONFLICT (product) DO UPDATE SET
    total_amount = t.total_amount + excluded.total_amount,
    quantity = t.quantity + excluded.quantity,
    sales_count = t.sales_count + excluded.sales_count
"""
_ADD_TO_DAYS = """
INSERT INTO daily_product_deltas (day, product, total_amount, quantity, sales_count) {rows}
"""
_ADD_TO_UPLOADS = """
UPDATE uploads u
SET valid_count = u.valid_count + p.n, valid_amount = u.valid_amount + p.amount
FROM {rows} WHERE u.upload_id = p.upload_id
"""

_MERGE_SALES = _merge_statement(f"""
WITH ins AS (
    {_INSERT_SALES}
    {{conflict}}
    RETURNING upload_id, product, quantity, amount,
        coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) AS day
), products AS ({
    _ADD_TO_PRODUCTS.format(
        rows="SELECT product, sum(amount), sum(quantity), count(*) FROM ins GROUP BY product"
    )
}), days AS ({
    _ADD_TO_DAYS.format(
        rows="SELECT day, product, sum(amount), sum(quantity), count(*) FROM ins"
        " GROUP BY day, product"
    )
}), per_upload AS (
    SELECT upload_id, count(*) AS n, sum(amount) AS amount FROM ins GROUP BY upload_id
), counted AS ({_ADD_TO_UPLOADS.format(rows="per_upload p")})
SELECT coalesce(sum(n), 0)::int FROM per_upload
""")  # noqa: S608 - identifiers are module constants

# What a batch COPYed straight into `sales` moves, from the sums the loader brings
# (SalesCopy.totals), and whether one of its customers was erased (its rows must then be
# stored without their hashes: the batch is merged from the staging table instead). Run
# after the COPY, whose lock on sales holds back a new erasure until this transaction ends.
# The hashes come as one string (SalesCopy.customer_hashes), looked at only when some
# customer was ever erased.
_PRODUCT_SUMS = """
SELECT product, cents * 0.01, quantity, n
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS p(product, cents, quantity, n)
"""
_DAY_SUMS = """
SELECT date '2000-01-01' + day, ($1::text[])[product], cents * 0.01, quantity, n
FROM unnest($5::text::int[], $6::text::int[], $7::text::bigint[], $8::text::bigint[],
    $9::text::bigint[])
    AS d(day, product, cents, quantity, n)
"""
_UPLOAD_SUMS = """(
    SELECT upload_id, cents * 0.01 AS amount, n
    FROM unnest($10::uuid[], $11::bigint[], $12::bigint[]) AS u(upload_id, cents, n)
) p"""
_ADD_TOTALS = f"""
WITH products AS ({_ADD_TO_PRODUCTS.format(rows=_PRODUCT_SUMS)}
), days AS ({_ADD_TO_DAYS.format(rows=_DAY_SUMS)}
), counted AS ({_ADD_TO_UPLOADS.format(rows=_UPLOAD_SUMS)}
)
SELECT EXISTS (SELECT FROM erased_customers)
    AND EXISTS (SELECT FROM erased_customers WHERE customer_hash IN (
        SELECT substr($13::text, 64 * i + 1, 64)::bpchar
        FROM generate_series(0, length($13::text) / 64 - 1) AS i))
"""  # noqa: S608 - identifiers are module constants


# A staged sale whose transaction_id is already stored for a *different* row reuses a
# business transaction_id: it is not a replay, so it must end up in rejections, not vanish.
# Stored ids are found through their unique indexes (0009_natural_keys.sql): an id of up to
# _LONG_TRANSACTION_ID bytes by itself, a longer one by its event_id, the hash of it (each
# condition on `t` is its index's predicate, so the index serves the join).
_LONG_TRANSACTION_ID = 1024
_REUSED_THROUGH = """
SELECT s.upload_id, s.row_number, s.transaction_id, s.product, s.price,
       s.quantity, s.customer_hash, s.pii_key_id, s.sale_date,
       t.upload_id AS first_upload_id, t.row_number AS first_row_number
FROM sales_stage s JOIN sales t ON {join}
WHERE (t.upload_id, t.row_number) <> (s.upload_id, s.row_number)
"""
_REUSED_TRANSACTION_IDS = "UNION ALL".join(
    _REUSED_THROUGH.format(join=join)
    for join in (
        "t.transaction_id = s.transaction_id"
        f" AND octet_length(t.transaction_id) <= {_LONG_TRANSACTION_ID}",
        f"t.event_id = s.event_id AND octet_length(t.transaction_id) > {_LONG_TRANSACTION_ID}",
    )
)

_MERGE_REJECTIONS = _merge_statement(f"""
WITH ins AS (
    INSERT INTO rejections ({", ".join(_REJECTION_COLUMNS)})
    SELECT {_staged(_REJECTION_COLUMNS, _ANONYMISED_REJECTION)}
    FROM rejections_stage s
    LEFT JOIN erased_customers e ON e.customer_hash = s.fields ->> 'customer_id'
    {{conflict}}
    RETURNING upload_id, violations
), rules AS (
    INSERT INTO rejection_rule_counts AS t (rule, count)
    SELECT v ->> 'rule', count(*) FROM ins, jsonb_array_elements(ins.violations) AS v
    GROUP BY 1 ORDER BY 1
    ON CONFLICT (rule) DO UPDATE SET count = t.count + excluded.count
), totals AS (
    INSERT INTO rejection_totals AS t (rejected_rows)
    SELECT count(*) FROM ins HAVING count(*) > 0
    ON CONFLICT (singleton) DO UPDATE SET rejected_rows = t.rejected_rows + excluded.rejected_rows
), per_upload AS (
    SELECT upload_id, count(*) AS n FROM ins WHERE upload_id IS NOT NULL GROUP BY upload_id
), counted AS (
    UPDATE uploads u SET rejected_count = u.rejected_count + p.n
    FROM per_upload p WHERE u.upload_id = p.upload_id
)
SELECT count(*)::int FROM ins
""")  # noqa: S608 - identifiers are module constants

# A batch's transaction moves counters on shared rows: its uploads', the product totals (with
# its sales), the rejection totals (with its rejections), its offsets. Each statement takes its
# rows in key order, but two loaders' batches of the same uploads (the main lane's of uploads
# sent together, or of one big upload) took their uploads' rows in two statements and in the
# order of a join, and PostgreSQL found deadlocks (a batch undone and retried after
# deadlock_timeout, 1 s). So every batch's transaction locks in one order: the tables (_STAGE),
# all of its uploads' rows in key order (this), then products, rules, the rejection total and
# its offsets, each in key order.
_LOCK_UPLOADS = """
SELECT FROM uploads WHERE upload_id = ANY($1::uuid[]) ORDER BY upload_id FOR NO KEY UPDATE
"""

_SAVE_OFFSETS = """
INSERT INTO consumer_offsets AS t (group_id, topic, partition, next_offset)
SELECT $1, unnest($2::text[]), unnest($3::int[]), unnest($4::bigint[])
ON CONFLICT (group_id, topic, partition) DO UPDATE
    SET next_offset = greatest(t.next_offset, excluded.next_offset), updated_at = now()
"""


# What COPY takes, in the order of _SALES_COLUMNS / _REJECTION_COLUMNS: the record's fields in
# contract order, without schema_version; the decimals as their exact text (decode_validated
# let only plain decimals through), fields and violations as JSON text for their jsonb columns.
SaleRow = tuple[
    str,
    str,
    int,
    str | None,
    str,
    str,
    int,
    str,
    str | None,
    str | None,
    date | None,
    datetime,
]
RejectionRow = tuple[str, str | None, int | None, str, str, str | None, str | None, datetime]


def sale_row(sale: ValidatedSaleStruct) -> SaleRow:
    return (
        sale.event_id,
        sale.upload_id,
        sale.row_number,
        sale.transaction_id,
        sale.product,
        sale.price,
        sale.quantity,
        sale.amount,
        sale.customer_hash,
        sale.pii_key_id,
        sale.sale_date,
        sale.validated_at,
    )


def _reused_transaction_id(row: asyncpg.Record) -> ReusedTransactionId:
    return ReusedTransactionId(
        upload_id=str(row["upload_id"]),
        row_number=row["row_number"],
        transaction_id=row["transaction_id"],
        product=row["product"],
        price=row["price"],
        quantity=row["quantity"],
        customer_hash=row["customer_hash"],
        pii_key_id=row["pii_key_id"],
        sale_date=row["sale_date"],
        first_upload_id=str(row["first_upload_id"]),
        first_row_number=row["first_row_number"],
    )


_JSON = msgspec.json.Encoder()


async def _once(payload: bytes) -> AsyncIterator[bytes]:
    """COPY's input in one piece (asyncpg takes an async iterable of bytes)."""
    yield payload


def rejection_row(rejection: RejectedSaleStruct) -> RejectionRow:
    return (
        rejection.event_id,
        rejection.upload_id,
        rejection.row_number,
        _JSON.encode(rejection.fields).decode(),
        _JSON.encode(rejection.violations).decode(),
        rejection.pii_key_id,
        rejection.source,
        rejection.rejected_at,
    )


async def _merge(conn: Connection, merge: _Merge) -> int:
    """Run a merge; the number of rows it inserted.

    Nearly every batch holds only new events, so it is first inserted with a plain INSERT:
    ON CONFLICT searches the unique indexes for each row before inserting it, which was a
    quarter of PostgreSQL's CPU time per row (bench/pg_per_row.py). If an event is stored
    already (a redelivered batch, an express-lane row read again from its main topic, a
    zombie loader's commit) the INSERT fails, and the savepoint undoes it with the aggregate
    and counter updates of the same statement; the batch is then merged skipping stored events.
    """
    try:
        async with conn.transaction():  # a savepoint
            inserted: int = await conn.fetchval(merge.plain)
    except asyncpg.UniqueViolationError:
        inserted = await conn.fetchval(merge.skipping)
    return inserted


class _ErasedCustomer(Exception):
    """A batch copied straight into sales holds a sale of an erased customer."""


# timestamptz in PostgreSQL's binary form: microseconds since 2000-01-01 UTC, infinities as the
# int64 limits. asyncpg's own encoder gets there through astimezone(), a subtraction and three
# attribute reads of the difference: 0.84 us a value, the dearest column of the loader's COPY;
# one subtraction and one floor division cost 0.43 (validated_at and rejected_at, one a row).
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INFINITY, _NEGATIVE_INFINITY = 2**63 - 1, -(2**63)


def _timestamptz_out(moment: datetime) -> tuple[int]:
    try:
        return ((moment - _PG_EPOCH) // _MICROSECOND,)
    except TypeError:  # naive: local time, and datetime.max/min are infinities, as in asyncpg
        if moment == datetime.max:
            return (_INFINITY,)
        if moment == datetime.min:
            return (_NEGATIVE_INFINITY,)
        return ((moment.astimezone(UTC) - _PG_EPOCH) // _MICROSECOND,)


def _timestamptz_in(value: tuple[int]) -> datetime:
    (micros,) = value
    if micros == _INFINITY:
        return datetime.max
    if micros == _NEGATIVE_INFINITY:
        return datetime.min
    return _PG_EPOCH + timedelta(microseconds=micros)


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The codecs of the loader's connections: jsonb (sales_common.db) and timestamptz."""
    await register_json_codecs(conn)
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=_timestamptz_out,
        decoder=_timestamptz_in,
        format="tuple",
    )


class LoaderRepository:
    def __init__(self, pool: Pool, group_id: str) -> None:
        self._pool = pool
        self._group_id = group_id

    async def fold_daily_totals(self) -> int:
        """Fold the per-day deltas every batch appended; how many were moved (0 also when
        another loader is folding). The deltas' table is vacuumed after a fold that moved any:
        a second of the pipeline leaves ~24,000 deleted rows, which every fold and reader of
        daily_product_totals would scan again until autovacuum's next round (a minute)."""
        moved: int = await self._pool.fetchval("SELECT fold_daily_product_deltas()")
        if moved:
            await self._pool.execute("VACUUM daily_product_deltas")  # outside a transaction
        return moved

    async def stored_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        rows = await self._pool.fetch(
            "SELECT topic, partition, next_offset FROM consumer_offsets"
            " WHERE group_id = $1 AND topic = ANY($2::text[])",
            self._group_id,
            topics,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def stage_sales(
        self, conn: Connection, sales: list[SaleRow], copied: SalesCopy | None = None
    ) -> int:
        """COPY the sales into the staging table, `copied` (rows already in COPY's binary
        form, the batch's first) before `sales`; how many."""
        if copied is not None and copied.rows:
            await conn.copy_to_table(
                "sales_stage",
                source=_once(copied.payload()),
                columns=_SALES_COLUMNS,
                format="binary",
            )
        if sales:
            await conn.copy_records_to_table("sales_stage", records=sales, columns=_SALES_COLUMNS)
        return len(sales) + (copied.rows if copied is not None else 0)

    async def store_sales(
        self, conn: Connection, sales: list[SaleRow], copied: SalesCopy | None = None
    ) -> tuple[int, list[ReusedTransactionId]]:
        """Stores the sales: how many were new, and those whose transaction_id a stored sale
        of another row has (they are not stored).

        A batch read whole by the native path is COPYed straight into `sales` with the sums
        it brings (no staging table, no INSERT ... SELECT, no aggregation in PostgreSQL:
        bench/pg_per_row.py); if one of its events is stored already or one of its
        customers was erased, the savepoint undoes that and it is merged like any other.
        """
        if copied is not None and copied.rows and not sales:
            with contextlib.suppress(asyncpg.UniqueViolationError, _ErasedCustomer):
                async with conn.transaction():  # a savepoint
                    if await self._copy_into_sales(conn, copied):
                        return copied.rows, []
        staged = await self.stage_sales(conn, sales, copied)
        if not staged:
            return 0, []
        inserted = await _merge(conn, _MERGE_SALES)
        if inserted == staged:  # nothing was skipped, so no transaction_id was reused
            return inserted, []
        reused = await conn.fetch(_REUSED_TRANSACTION_IDS)
        return inserted, [_reused_transaction_id(row) for row in reused]

    async def _copy_into_sales(self, conn: Connection, copied: SalesCopy) -> bool:
        """COPY the rows into `sales` and move the aggregates by their sums; False, with
        nothing done, when a sum does not fit the native path's integers."""
        totals = copied.totals()
        if totals is None:
            return False
        await conn.copy_to_table(
            "sales", source=_once(copied.payload()), columns=_SALES_COLUMNS, format="binary"
        )
        products, days, uploads = totals
        hashes = copied.customer_hashes()
        if await conn.fetchval(_ADD_TOTALS, *products, *days, *uploads, hashes):
            raise _ErasedCustomer
        return True

    async def store_rejections(self, conn: Connection, rejections: list[RejectionRow]) -> int:
        if not rejections:
            return 0
        await conn.copy_records_to_table(
            "rejections_stage", records=rejections, columns=_REJECTION_COLUMNS
        )
        return await _merge(conn, _MERGE_REJECTIONS)

    async def save_offsets(self, conn: Connection, offsets: dict[tuple[str, int], int]) -> None:
        topics, partitions, next_offsets = zip(
            *((t, p, o) for (t, p), o in sorted(offsets.items())), strict=True
        )
        await conn.execute(
            _SAVE_OFFSETS, self._group_id, list(topics), list(partitions), list(next_offsets)
        )

    @contextlib.asynccontextmanager
    async def transaction(self, uploads: Collection[str]) -> AsyncIterator[Connection]:
        """One connection, one transaction, staging tables ready, the rows of `uploads` (every
        upload whose counters the transaction moves) locked.

        The connection goes back to the pool whatever fails, including the BEGIN: a
        connection leaked when PostgreSQL restarted made the pool's close wait forever.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_STAGE)
            if uploads:
                await conn.execute(_LOCK_UPLOADS, list(uploads))  # in order: ORDER BY
            yield conn
