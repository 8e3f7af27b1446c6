"""The naive job a user would write instead of this pipeline: written once, never optimised.

pandas read_csv of the whole file, row-by-row validation in Python, one INSERT per row.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import asyncpg
import pandas as pd

DDL = """
CREATE TABLE IF NOT EXISTS baseline_sales (
    transaction_id text, sale_date date, customer_hash text, product text,
    price numeric(12, 2), quantity integer, amount numeric(14, 2)
);
TRUNCATE baseline_sales;
"""


def valid(row: dict[str, object]) -> tuple[Decimal, int] | None:
    product = str(row["product"]) if pd.notna(row["product"]) else ""
    if not product.startswith("Halal"):
        return None
    try:
        price = Decimal(str(row["price"]))
        quantity = int(str(row["quantity"]))
    except (InvalidOperation, ValueError):
        return None
    if price <= 0 or price.as_tuple().exponent < -2 or not 1 <= quantity <= 100:  # type: ignore[operator]
        return None
    return price, quantity


async def run(csv: Path, dsn: str, key: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DDL)
        stored = 0
        for row in frame.to_dict("records"):
            checked = valid(row)
            if checked is None:
                continue
            price, quantity = checked
            customer = hmac.new(key, str(row["customer_id"]).encode(), hashlib.sha256).hexdigest()
            await conn.execute(
                "INSERT INTO baseline_sales VALUES ($1, $2::text::date, $3, $4, $5, $6, $7)",
                row["transaction_id"],
                row["date"],
                customer,
                row["product"],
                price,
                quantity,
                price * quantity,
            )
            stored += 1
    finally:
        await conn.close()
    return len(frame), time.perf_counter() - started


def measure(csv: Path, dsn: str) -> tuple[int, float]:
    return asyncio.run(run(csv, dsn, b"k" * 32))
