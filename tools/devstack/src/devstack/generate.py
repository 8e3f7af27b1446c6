"""Deterministic sales CSV files of any size, for tests and benchmarks.

The same (rows, invalid_share, seed) always gives the same bytes. Invalid rows break one or
two rules each, in rotation, so every rule is exercised.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import orjson
from sales_common.events import RawRecords

HEADER = "transaction_id,date,customer_id,product,price,quantity\n"
PRODUCTS = (
    "Halal Dates",
    "Halal Olive Oil",
    "Halal Honey",
    "Halal Rice",
    "Halal Lamb",
    "Halal Tea",
)
_INVALID = (
    lambda r: ("Pork Chops", r[1], r[2]),  # prefix
    lambda r: ("", r[1], r[2]),  # required
    lambda r: (r[0], "abc", r[2]),  # number
    lambda r: (r[0], "-1.00", r[2]),  # positive
    lambda r: (r[0], "1.234", r[2]),  # decimals
    lambda r: (r[0], r[1], "0"),  # range
    lambda r: (r[0], r[1], "101"),  # range
    lambda r: (r[0], r[1], "2.5"),  # integer
    lambda r: ("Monitor", "invalid", r[2]),  # prefix + number
)


def rows(count: int, invalid_share: float = 0.1, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    every = round(1 / invalid_share) if invalid_share > 0 else 0
    for n in range(1, count + 1):
        values = (
            rng.choice(PRODUCTS),
            f"{rng.randint(100, 99_999) / 100:.2f}",
            str(rng.randint(1, 100)),
        )
        if every and n % every == 0:
            values = _INVALID[(n // every) % len(_INVALID)](values)
        product, price, quantity = values
        day = start + timedelta(days=n % 300)
        customer = f"CUST-{rng.randint(1, 50_000):06d}"
        yield f"T{seed}-{n:09d},{day.isoformat()},{customer},{product},{price},{quantity}\n"


def write(path: Path, count: int, invalid_share: float = 0.1, seed: int = 7) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        handle.writelines(rows(count, invalid_share, seed))
    return path


class RawRecordInClear(NamedTuple):
    """A `sales.raw` record as ingest writes it but with `customer_ids` null, and its rows'
    ids in clear, as the validator holds them once it has opened the token."""

    value: bytes
    customer_ids: list[str | None]


def raw_records(
    count: int, invalid_share: float = 0.1, seed: int = 7, rows_per_record: int = 128
) -> list[RawRecordInClear]:
    """`sales.raw` records of `rows(count, invalid_share, seed)`, `rows_per_record` rows a
    record: one upload, rows numbered from 1, received_at as an ISO string. For tests and
    benchmarks of the rules, the codec and the loader's rows, which do not see the
    encryption."""
    lines = csv.reader([HEADER, *rows(count, invalid_share, seed)])
    header = next(lines)
    column = header.index("customer_id")
    columns = [name for name in header if name != "customer_id"]
    upload = str(uuid.UUID(int=seed))
    received_at = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC).isoformat()
    encoder = RawRecords(upload, columns, len(header), "generated.csv", received_at)
    cells = list(lines)  # every generated row has every column
    records = []
    for start in range(0, len(cells), rows_per_record):
        pack = cells[start : start + rows_per_record]
        ids: list[str | None] = [row.pop(column) for row in pack]
        rows_json = [orjson.dumps(row) for row in pack]
        records.append(RawRecordInClear(encoder.pack(start + 1, rows_json, None, []), ids))
    return records
