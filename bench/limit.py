"""The physical limit on this machine: COPY of the same CSV straight into a table of the same
shape, no validation, no Kafka."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

DDL = """
CREATE TABLE IF NOT EXISTS limit_sales (
    transaction_id text, sale_date text, customer_id text, product text, price text, quantity text
);
TRUNCATE limit_sales;
"""


async def run(csv: Path, dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DDL)
        started = time.perf_counter()
        result = await conn.copy_to_table("limit_sales", source=csv, format="csv", header=True)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return int(result.split()[-1]), elapsed


def measure(csv: Path, dsn: str) -> tuple[int, float]:
    return asyncio.run(run(csv, dsn))
