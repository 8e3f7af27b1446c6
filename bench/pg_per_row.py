"""PostgreSQL CPU and wall time per row of the loader's transaction (issue #11, item 4).

Drives the loader's real `LoaderRepository` with the calls of one `LoaderLoop._store` batch
(store_sales, the reused-transaction-id rejections, store_rejections, save_offsets, in one
transaction) on a fresh database. The records are the rows `devstack.generate` writes, put
through the validator's rules: 5,000-record batches, ~10% rejections, one upload per
--upload-rows rows, offsets over 6 partitions of each topic.

Measured: CPU of the one backend serving the connection (`/proc/<pid>/schedstat`, in ns; the
server is shared, so no pg_stat_statements and no server settings are touched) and the wall
time of each transaction, both split by statement; BEGIN + staging-table setup and COMMIT
are the time around the statements. Each run ends by checking the database (every row once,
aggregates, upload counters, offsets) and replaying one batch, which must change nothing;
then it probes store_sales alone, rolled back, on a batch of new events, the same batch with
one stored event in it, and a batch stored already.

Compare versions: each --variant is a git ref (its loader repository.py and migrations, read
with `git show`) or `worktree`; runs alternate between variants (ABBA), a fresh database each.
Writes bench/results/pg_per_row.{md,json}.

    uv run python -m bench.pg_per_row --variant before=0703696 --variant worktree --runs 3
    uv run python -m bench.pg_per_row --rows 100000 --explain  # plans of the last batch
    uv run python -m bench.pg_per_row --icu-locale en-US  # a database not in the C locale
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib
import inspect
import json
import statistics
import subprocess
import sys
import time
import types
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from devstack import generate
from devstack.config import REPO_ROOT
from devstack.pipeline import drop_database
from pydantic import SecretStr
from sales_common.codec import (
    RawRowsStruct,
    RejectedSaleStruct,
    ValidatedSaleStruct,
    decode_rejected,
    decode_validated,
    encode_struct,
)
from sales_common.db import Connection, register_json_codecs
from sales_common.events import RejectedSale, ValidatedSale, decode
from sales_common.pii import CustomerHasher, PiiSettings
from sales_common.rejections import duplicate_transaction_id
from sales_common.schema.migrations import available
from sales_native import SalesCopy
from validator.config import RuleSettings
from validator.rules import PackRules

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REPOSITORY = "services/loader/src/loader/repository.py"
MIGRATIONS = "libs/common/src/sales_common/schema/sql"
RESULTS = REPO_ROOT / "bench" / "results"
PARTITIONS = 6
TOPICS = ("sales.validated", "sales.rejected")
_COLUMNS = ("transaction_id", "date", "customer_id", "product", "price", "quantity")


# --- the records -------------------------------------------------------------------------


@dataclass
class Batch:
    """Records as on the wire: each variant turns them into what its repository takes."""

    sales: list[bytes]
    rejections: list[bytes]
    offsets: dict[tuple[str, int], int]
    uploads: set[str] = field(default_factory=set)


@dataclass
class Workload:
    batches: list[Batch]
    uploads: dict[str, int]  # upload id -> rows
    probe: Batch  # new events of one more upload, `probe_upload`, never committed
    probe_upload: str

    @property
    def rows(self) -> int:
        return sum(self.uploads.values())


def upload(upload_id: str, rows: int, seed: int) -> list[ValidatedSaleStruct | RejectedSaleStruct]:
    """The validator's output for a generated file of `rows` rows."""
    hasher = CustomerHasher(PiiSettings(hmac_key=SecretStr("b" * 32)))
    rules, now = RuleSettings(), datetime.now(UTC)
    column = _COLUMNS.index("customer_id")
    table = [list(values) for values in csv.reader(generate.rows(rows, 0.1, seed))]
    ids: list[str | None] = [cells.pop(column) for cells in table]
    pack = RawRowsStruct(
        upload_id=upload_id,
        first_row=1,
        columns=[name for name in _COLUMNS if name != "customer_id"],
        column_count=len(_COLUMNS),
        source_filename="bench.csv",
        received_at=now,
        rows=table,
    )
    validator = PackRules(pack, rules, hasher, now)
    return [validator.validate(index, customer_id) for index, customer_id in enumerate(ids)]


def batches(records: list[ValidatedSaleStruct | RejectedSaleStruct], size: int) -> list[Batch]:
    """The loader's batches, with the next offsets of 6 partitions per topic."""
    out: list[Batch] = []
    next_offset: dict[tuple[str, int], int] = {}
    for start in range(0, len(records), size):
        batch = Batch([], [], {})
        for record in records[start : start + size]:
            assert record.row_number is not None
            is_sale = isinstance(record, ValidatedSaleStruct)
            tp = (TOPICS[0] if is_sale else TOPICS[1], record.row_number % PARTITIONS)
            next_offset[tp] = next_offset.get(tp, 0) + 1
            batch.offsets[tp] = next_offset[tp]
            (batch.sales if is_sale else batch.rejections).append(encode_struct(record))
            if record.upload_id is not None:
                batch.uploads.add(record.upload_id)
        out.append(batch)
    return out


def workload(rows: int, upload_rows: int, batch_records: int, seed: int = 7) -> Workload:
    uploads: dict[str, int] = {}
    records: list[ValidatedSaleStruct | RejectedSaleStruct] = []
    for first in range(0, rows, upload_rows):
        count = min(upload_rows, rows - first)
        upload_id = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{seed}-{first}"))
        uploads[upload_id] = count
        records += upload(upload_id, count, seed + first)
    probe_upload = str(uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{seed}-probe"))
    probe = batches(upload(probe_upload, batch_records, seed - 1), batch_records)[0]
    return Workload(batches(records, batch_records), uploads, probe, probe_upload)


# --- the versions compared ---------------------------------------------------------------


@dataclass
class Variant:
    name: str
    repository: Any  # the LoaderRepository class of that version
    migrations: list[tuple[str, str]]
    module: Any  # its repository module

    def sales(self, payloads: list[bytes]) -> tuple[Any, ...]:
        """The arguments this version's store_sales takes after its connection: the loader's
        COPY buffer (SalesCopy) since the native path, COPY rows since the msgspec hot path,
        pydantic models before."""
        if "copied" in inspect.signature(self.repository.store_sales).parameters:
            copied = SalesCopy()
            if all(copied.append(p) is not None for p in payloads):
                return [], copied
            raise ValueError("a generated sale the native path does not read")
        if hasattr(self.module, "sale_row"):
            return ([self.module.sale_row(decode_validated(p)) for p in payloads],)
        return ([decode(ValidatedSale, p) for p in payloads],)

    def rejections(self, payloads: list[bytes]) -> list[Any]:
        if hasattr(self.module, "rejection_row"):
            return [self.module.rejection_row(decode_rejected(p)) for p in payloads]
        return [decode(RejectedSale, p) for p in payloads]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout


def variant(spec: str) -> Variant:
    """`ref` or `name=ref`."""
    name, _, ref = spec.rpartition("=")
    name = name or ref
    if ref == "worktree":
        module = importlib.import_module("loader.repository")
        return Variant(name, module.LoaderRepository, available(), module)
    module = types.ModuleType(f"loader_repository_{ref}")
    exec(compile(_git("show", f"{ref}:{REPOSITORY}"), f"{ref}:{REPOSITORY}", "exec"), vars(module))  # noqa: S102 - our own file at a commit of this repository
    names = sorted(
        n
        for n in _git("ls-tree", "--name-only", f"{ref}:{MIGRATIONS}").split()
        if n.endswith(".sql")
    )
    migrations = [(n.removesuffix(".sql"), _git("show", f"{ref}:{MIGRATIONS}/{n}")) for n in names]
    return Variant(name, module.LoaderRepository, migrations, module)


async def fresh_database(migrations: list[tuple[str, str]], icu_locale: str | None) -> str:
    """A new database with `migrations` applied, as the migrator applies them."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        if icu_locale:  # a default collation other than C, as most servers have
            await admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE template0'
                f" LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
            )
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, sql in migrations:
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    finally:
        await conn.close()
    return url


# --- measuring ---------------------------------------------------------------------------


def backend_cpu_ns(pid: int) -> int:
    """On-CPU time of a process so far (user + system), in ns."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
        return int(handle.read().split()[0])


@dataclass
class Meter:
    pid: int
    cpu_ns: dict[str, int] = field(default_factory=dict)
    wall_ns: dict[str, int] = field(default_factory=dict)
    explain: bool = False
    plans: dict[str, str] = field(default_factory=dict)
    explain_ns: tuple[int, int] = (0, 0)  # CPU, wall of this batch's EXPLAINs: not counted

    def add(self, label: str, cpu: int, wall: int) -> None:
        self.cpu_ns[label] = self.cpu_ns.get(label, 0) + cpu
        self.wall_ns[label] = self.wall_ns.get(label, 0) + wall


def label(sql: str) -> str:
    """A statement's name in the breakdown, whatever the version's SQL looks like."""
    text = " ".join(sql.split())
    for needle, name in (
        ("INTO sales ", "merge sales"),
        ("erased_customers WHERE", "sales' totals, erasure check"),
        ("JOIN sales", "reused transaction ids"),
        ("INTO rejections ", "merge rejections"),
        ("consumer_offsets", "save offsets"),
    ):
        if needle in text:
            return name
    return text[:40]


class MeteredConnection:
    """The transaction's connection, timing each statement the repository sends."""

    def __init__(self, conn: Connection, meter: Meter) -> None:
        self._conn = conn
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def _timed(self, name: str, call: Awaitable[Any]) -> Any:
        cpu, wall = backend_cpu_ns(self._meter.pid), time.perf_counter_ns()
        result = await call
        self._meter.add(name, backend_cpu_ns(self._meter.pid) - cpu, time.perf_counter_ns() - wall)
        return result

    async def _explained(self, sql: str, args: tuple[Any, ...]) -> None:
        """EXPLAIN ANALYZE the statement in a savepoint rolled back, before it runs."""
        if not self._meter.explain:
            return
        cpu, wall = backend_cpu_ns(self._meter.pid), time.perf_counter_ns()
        tx = self._conn.transaction()
        await tx.start()
        try:
            plan = await self._conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, WAL) {sql}", *args)
        finally:
            await tx.rollback()
        self._meter.plans[label(sql)] = "\n".join(r[0] for r in plan)
        cpu, wall = backend_cpu_ns(self._meter.pid) - cpu, time.perf_counter_ns() - wall
        self._meter.explain_ns = (self._meter.explain_ns[0] + cpu, self._meter.explain_ns[1] + wall)

    async def copy_records_to_table(self, table: str, **kwargs: Any) -> str:
        return cast(
            str,
            await self._timed(f"copy {table}", self._conn.copy_records_to_table(table, **kwargs)),
        )

    async def copy_to_table(self, table: str, **kwargs: Any) -> str:
        return cast(
            str, await self._timed(f"copy {table}", self._conn.copy_to_table(table, **kwargs))
        )

    async def _statement(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        await self._explained(sql, args)
        return await self._timed(label(sql), getattr(self._conn, method)(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._statement("fetchval", sql, args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._statement("fetch", sql, args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._statement("execute", sql, args)


def open_transaction(repo: Any, uploads: set[str]) -> Any:
    """The repository's batch transaction: from 39b331a on it locks the batch's uploads."""
    if "uploads" in inspect.signature(repo.transaction).parameters:
        return repo.transaction(uploads)
    return repo.transaction()


async def store(v: Variant, repo: Any, batch: Batch, meter: Meter) -> tuple[int, int]:
    """One batch as `LoaderLoop._store` stores it. Besides each statement: BEGIN + setup,
    COMMIT, and the rest of the transaction (savepoints; for wall time, the loader's Python
    between statements)."""
    pid, now = meter.pid, datetime.now(UTC)
    sales, rejections = v.sales(batch.sales), v.rejections(batch.rejections)
    cpu0, wall0 = backend_cpu_ns(pid), time.perf_counter_ns()
    counted = sum(meter.cpu_ns.values()), sum(meter.wall_ns.values())
    transaction = open_transaction(repo, batch.uploads)
    raw = await transaction.__aenter__()
    meter.add("begin + staging tables", backend_cpu_ns(pid) - cpu0, time.perf_counter_ns() - wall0)
    conn = cast(Connection, MeteredConnection(raw, meter))
    try:
        sales_in, reused = await repo.store_sales(conn, *sales)
        extra = v.rejections([encode_struct(duplicate_transaction_id(r, now)) for r in reused])
        rejections_in = await repo.store_rejections(conn, rejections + extra)
        await repo.save_offsets(conn, batch.offsets)
    except BaseException:
        await transaction.__aexit__(*sys.exc_info())
        raise
    cpu, wall = backend_cpu_ns(pid), time.perf_counter_ns()
    await transaction.__aexit__(None, None, None)
    meter.add("commit", backend_cpu_ns(pid) - cpu, time.perf_counter_ns() - wall)
    cpu, wall = backend_cpu_ns(pid) - cpu0, time.perf_counter_ns() - wall0
    meter.add(
        "rest of the transaction",
        cpu - (sum(meter.cpu_ns.values()) - counted[0]) - meter.explain_ns[0],
        wall - (sum(meter.wall_ns.values()) - counted[1]) - meter.explain_ns[1],
    )
    meter.explain_ns = (0, 0)
    return sales_in, rejections_in


@dataclass
class Run:
    variant: str
    rows: int
    cpu_ns: dict[str, int]
    wall_ns: dict[str, int]
    client_cpu_s: float
    result: dict[str, Any]
    plans: dict[str, str]
    probe_us: dict[str, float]  # store_sales of one batch, backend CPU per sale

    def per_row(self, ns: dict[str, int]) -> float:
        return sum(ns.values()) / 1000 / self.rows


@contextlib.asynccontextmanager
async def database(v: Variant, icu_locale: str | None) -> AsyncIterator[str]:
    url = await fresh_database(v.migrations, icu_locale)
    try:
        yield url
    finally:
        await drop_database(ADMIN_DSN, url)


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong database contents: {what}")


async def facts(conn: Connection, load: Workload) -> dict[str, Any]:
    """What readers see, checked against the stored rows; raises if any of it is off."""

    async def rows(sql: str) -> list[list[str]]:
        return [[str(v) for v in r] for r in await conn.fetch(sql)]

    seen = {
        "sales": await conn.fetchval("SELECT count(*) FROM sales"),
        "rejections": await conn.fetchval("SELECT count(*) FROM rejections"),
        "product_totals": await rows("SELECT * FROM product_totals ORDER BY product"),
        "daily_totals": await rows("SELECT * FROM daily_totals ORDER BY day"),
        "rule_counts": await rows("SELECT * FROM rejection_rule_counts ORDER BY rule"),
        "rejection_totals": await rows("SELECT * FROM rejection_totals"),
        "uploads": await rows(
            "SELECT upload_id, status, rows_total, valid_count, rejected_count, valid_amount"
            " FROM uploads ORDER BY upload_id"
        ),
        "offsets": await rows(
            "SELECT topic, partition, next_offset FROM consumer_offsets ORDER BY 1, 2"
        ),
    }
    expect(seen["sales"] + seen["rejections"] == load.rows, "every row stored once")
    expect(
        await conn.fetchval("SELECT count(DISTINCT event_id) FROM sales") == seen["sales"],
        "distinct sales",
    )
    expect(
        seen["product_totals"]
        == await rows(
            "SELECT product, sum(amount), sum(quantity), count(*) FROM sales"
            " GROUP BY product ORDER BY product"
        ),
        "product_totals",
    )
    expect(
        seen["daily_totals"]
        == await rows(
            "SELECT coalesce(sale_date, validated_at::date) AS day, sum(amount), count(*)"
            " FROM sales GROUP BY day ORDER BY day"
        ),
        "daily_totals",
    )
    if await conn.fetchval("SELECT to_regclass('daily_product_totals') IS NOT NULL"):
        expect(
            await rows("SELECT * FROM daily_product_totals ORDER BY day, product")
            == await rows(
                "SELECT coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) AS day,"
                " product, sum(amount), sum(quantity), count(*)"
                " FROM sales GROUP BY day, product ORDER BY day, product"
            ),
            "daily_product_totals",
        )
    expect(
        seen["rule_counts"]
        == await rows(
            "SELECT v ->> 'rule' AS rule, count(*) FROM rejections,"
            " jsonb_array_elements(violations) AS v GROUP BY rule ORDER BY rule"
        ),
        "rejection_rule_counts",
    )
    expect(seen["rejection_totals"] == [["True", str(seen["rejections"])]], "rejection_totals")
    expect(
        seen["uploads"]
        == await rows(
            "SELECT u.upload_id, 'complete', u.rows_total,"
            " (SELECT count(*) FROM sales s WHERE s.upload_id = u.upload_id),"
            " (SELECT count(*) FROM rejections r WHERE r.upload_id = u.upload_id),"
            " (SELECT coalesce(sum(amount), 0) FROM sales s WHERE s.upload_id = u.upload_id)"
            " FROM uploads u ORDER BY u.upload_id"
        ),
        "upload counters and status",
    )
    last: dict[tuple[str, int], int] = {}
    for batch in load.batches:
        last.update(batch.offsets)
    expect(
        seen["offsets"] == [[t, str(p), str(o)] for (t, p), o in sorted(last.items())], "offsets"
    )
    return seen


class _Rollback(Exception):
    pass


async def merge_cpu_ns(repo: Any, sales: tuple[Any, ...], load: Workload, pid: int) -> int:
    """Backend CPU of store_sales for `sales`, in a transaction rolled back."""
    cpu = 0
    with contextlib.suppress(_Rollback):
        async with open_transaction(repo, {load.probe_upload}) as conn:
            await conn.execute(
                "INSERT INTO uploads (upload_id, filename, status, rows_total)"
                " VALUES ($1, 'probe.csv', 'processing', $2)",
                uuid.UUID(load.probe_upload),
                len(load.probe.sales) + len(load.probe.rejections),
            )
            cpu = backend_cpu_ns(pid)
            await repo.store_sales(conn, *sales)
            cpu = backend_cpu_ns(pid) - cpu
            raise _Rollback
    return cpu


async def probe(v: Variant, repo: Any, load: Workload, pid: int) -> dict[str, float]:
    """store_sales, us per sale, for a batch of new events, the same with one event already
    stored among them (an express-lane row re-read from its main topic), and a batch stored
    already (redelivered after a crash): the same database, every try rolled back."""
    new = load.probe.sales
    stored = load.batches[len(load.batches) // 2].sales
    cases = {
        "new events": new,
        "new + 1 stored": [*new[: len(new) // 2], stored[0], *new[len(new) // 2 :]],
        "all stored": stored,
    }
    cpu: dict[str, list[int]] = {case: [] for case in cases}
    for _ in range(3):
        for case, sales in cases.items():
            cpu[case].append(await merge_cpu_ns(repo, v.sales(sales), load, pid))
    return {case: statistics.median(cpu[case]) / 1000 / len(cases[case]) for case in cases}


async def fold(repo: Any, meter: Meter) -> None:
    """The loaders' fold of the per-day deltas (a variant from before 0008 has none), timed
    as its own line: its cost belongs to the rows whose deltas it moves."""
    fold_daily_totals = getattr(repo, "fold_daily_totals", None)
    if fold_daily_totals is not None:
        cpu, wall = backend_cpu_ns(meter.pid), time.perf_counter_ns()
        await fold_daily_totals()
        meter.add(
            "fold per-day deltas", backend_cpu_ns(meter.pid) - cpu, time.perf_counter_ns() - wall
        )


async def run_once(
    v: Variant, load: Workload, explain: bool, icu_locale: str | None, fold_rows: int
) -> Run:
    async with database(v, icu_locale) as url:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=1,
            max_inactive_connection_lifetime=0,  # one backend for the whole run
            server_settings={"application_name": "bench.pg_per_row"},  # to find it (perf)
            # the variant's own connection set-up, if it has one
            init=getattr(v.module, "init_connection", register_json_codecs),
        )
        try:
            async with pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO uploads (upload_id, filename, status, rows_total)"
                    " VALUES ($1, 'bench.csv', 'processing', $2)",
                    [(uuid.UUID(u), n) for u, n in load.uploads.items()],
                )
                pid: int = await conn.fetchval("SELECT pg_backend_pid()")
            repo = v.repository(pool, "bench")
            meter = Meter(pid)
            client = time.process_time()
            since_fold = 0
            for n, batch in enumerate(load.batches, start=1):
                meter.explain = explain and n == len(load.batches)
                await store(v, repo, batch, meter)
                since_fold += len(batch.sales) + len(batch.rejections)
                if since_fold >= fold_rows or n == len(load.batches):
                    await fold(repo, meter)
                    since_fold = 0
            client = time.process_time() - client
            async with pool.acquire() as conn:
                expect(await conn.fetchval("SELECT pg_backend_pid()") == pid, "same backend")
                seen = await facts(conn, load)
            # A redelivered batch (a crash after COMMIT, before Kafka's commit) moves nothing.
            await store(v, repo, load.batches[len(load.batches) // 2], Meter(pid))
            async with pool.acquire() as conn:
                expect(await facts(conn, load) == seen, "unchanged by a replayed batch")
            probed = await probe(v, repo, load, pid)
            async with pool.acquire() as conn:
                expect(await facts(conn, load) == seen, "unchanged by the probes")
        finally:
            await pool.close()
    return Run(v.name, load.rows, meter.cpu_ns, meter.wall_ns, client, seen, meter.plans, probed)


# --- reporting ---------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(runs: list[Run], names: list[str]) -> str:
    by = {name: [r for r in runs if r.variant == name] for name in names}
    lines = [
        f"rows per run: {runs[0].rows:,}; runs per variant: {len(by[names[0]])};"
        " figures: median (min-max) in us per row",
        "",
        "| variant | PostgreSQL backend CPU | transaction wall | loader (client) CPU |",
        "|---|---|---|---|",
    ]
    for name in names:
        rs = by[name]
        lines.append(
            f"| {name} | {spread([r.per_row(r.cpu_ns) for r in rs])}"
            f" | {spread([r.per_row(r.wall_ns) for r in rs])}"
            f" | {spread([r.client_cpu_s * 1e6 / r.rows for r in rs])} |"
        )
    if len(names) > 1:
        lines += ["", f"ratio to {names[0]}, paired runs: median (min-max)", ""]
        base = by[names[0]]
        for name in names[1:]:
            pairs = list(zip(base, by[name], strict=False))
            cpu = [b.per_row(b.cpu_ns) / a.per_row(a.cpu_ns) for a, b in pairs]
            wall = [b.per_row(b.wall_ns) / a.per_row(a.wall_ns) for a, b in pairs]
            lines.append(f"- {name}: CPU {spread(cpu)}, wall {spread(wall)}")
        same = all(r.result == runs[0].result for r in runs)
        lines.append(f"- same database contents in every run: {'yes' if same else 'NO'}")
    labels = list(dict.fromkeys(k for r in runs for k in r.cpu_ns))
    lines += [
        "",
        "| statement | " + " | ".join(f"{n} CPU | {n} wall" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for key in labels:
        cells = []
        for name in names:
            rs = by[name]
            key_cpu = statistics.median(r.cpu_ns.get(key, 0) / 1000 / r.rows for r in rs)
            key_wall = statistics.median(r.wall_ns.get(key, 0) / 1000 / r.rows for r in rs)
            cells.append(f"{key_cpu:.2f} | {key_wall:.2f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "store_sales of one batch in a rolled-back transaction, backend CPU us per sale (median)",
        "",
        "| batch | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for case in runs[0].probe_us:
        cells = [f"{statistics.median(r.probe_us[case] for r in by[n]):.2f}" for n in names]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    for run in runs:
        for key, plan in run.plans.items():
            lines += ["", f"{run.variant}: EXPLAIN (ANALYZE, BUFFERS, WAL) {key}", "", plan]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    variants = [variant(ref) for ref in args.variant]
    started = time.monotonic()
    load = workload(args.rows, args.upload_rows, args.batch)
    print(
        f"{load.rows:,} records in {len(load.batches)} batches, {time.monotonic() - started:.0f} s"
    )
    runs: list[Run] = []
    for rep in range(args.runs):
        order = variants if rep % 2 == 0 else variants[::-1]  # ABBA: drift hits both alike
        for v in order:
            run = await run_once(v, load, args.explain, args.icu_locale, args.fold_rows)
            runs.append(run)
            print(
                f"run {rep + 1} {v.name}: CPU {run.per_row(run.cpu_ns):.2f} us/row,"
                f" wall {run.per_row(run.wall_ns):.2f} us/row",
                flush=True,
            )
    text = report(runs, [v.name for v in variants])
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pg_per_row.md").write_text(text + "\n")
    (RESULTS / "pg_per_row.json").write_text(
        json.dumps([{**vars(r), "result": None} for r in runs], indent=1)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--upload-rows", type=int, default=100_000)
    parser.add_argument(
        "--batch", type=int, default=5000, help="records per batch (the loader's cap: 10000)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--variant",
        action="append",
        help="[name=]git ref, or 'worktree' (repeatable; default worktree)",
    )
    parser.add_argument("--explain", action="store_true", help="plans of each run's last batch")
    parser.add_argument(
        "--fold-rows",
        type=int,
        default=40_000,
        help="rows stored between two folds of the per-day deltas (the loaders fold every"
        " second: about 40,000 rows at the pipeline's rate)",
    )
    parser.add_argument(
        "--icu-locale",
        help="database default collation, e.g. en-US (the postgres image of compose.yaml"
        " runs en_US.utf8; the dev stack's server is C)",
    )
    args = parser.parse_args()
    args.variant = args.variant or ["worktree"]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
