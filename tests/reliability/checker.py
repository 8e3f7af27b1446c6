"""An independent checker: what the CSV says must be in the database and the topic, once.

It re-derives the expected outcome from the CSV with its own reading of the rules (not the
validator's code), then counts, per accepted upload, lost and duplicated rows.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import asyncpg
from sales_common.events import ValidatedSale, decode
from sales_common.settings import KafkaSettings

from tests.helpers import consume_quiet


def _is_event(payload: bytes | None) -> bool:
    """Poison records written straight to the topic by a test are not events."""
    try:
        decode(ValidatedSale, payload or b"")
    except ValueError:
        return False
    return True


_PRICE = re.compile(r"\d+(\.\d{1,2})?")
_QUANTITY = re.compile(r"\d+")


@dataclass(frozen=True)
class Expected:
    rows: int
    valid: int
    total: Decimal


def expected_from_csv(path: Path) -> Expected:
    rows = valid = 0
    total = Decimal(0)
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            rows += 1
            product, price, quantity = record["product"], record["price"], record["quantity"]
            ok = (
                product.startswith("Halal")
                and bool(_PRICE.fullmatch(price))
                and Decimal(price) > 0
                and bool(_QUANTITY.fullmatch(quantity))
                and 1 <= int(quantity) <= 100
            )
            if ok and record.get("date"):
                try:
                    date.fromisoformat(record["date"])
                except ValueError:
                    ok = False
            if ok:
                valid += 1
                total += Decimal(price) * int(quantity)
    return Expected(rows, valid, total)


@dataclass
class Verdict:
    rows: int = 0
    lost: int = 0
    duplicated: int = 0
    topic_duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0


async def check(database: str, kafka: KafkaSettings, uploads: dict[str, Path]) -> Verdict:
    verdict = Verdict()
    conn = await asyncpg.connect(database)
    try:
        for upload_id, path in uploads.items():
            expected = expected_from_csv(path)
            uid = UUID(upload_id)
            verdict.rows += expected.rows
            per_row = await conn.fetch(
                "SELECT row_number, count(*) AS n FROM ("
                " SELECT row_number FROM sales WHERE upload_id = $1"
                " UNION ALL SELECT row_number FROM rejections WHERE upload_id = $1) r"
                " GROUP BY row_number",
                uid,
            )
            seen = {r["row_number"] for r in per_row if 1 <= r["row_number"] <= expected.rows}
            verdict.lost += expected.rows - len(seen)
            verdict.duplicated += sum(r["n"] - 1 for r in per_row)
            stored = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM sales"
                " WHERE upload_id = $1",
                uid,
            )
            assert stored is not None
            if (stored["n"], stored["total"]) != (expected.valid, expected.total):
                verdict.problems.append(
                    f"{upload_id}: stored {stored['n']} sales totalling {stored['total']},"
                    f" the CSV has {expected.valid} totalling {expected.total}"
                )
            status = await conn.fetchrow("SELECT * FROM uploads WHERE upload_id = $1", uid)
            assert status is not None, f"upload {upload_id} is not recorded"
            counts = (
                status["status"],
                status["rows_total"],
                status["valid_count"],
                status["rejected_count"],
            )
            want = ("complete", expected.rows, expected.valid, expected.rows - expected.valid)
            if counts != want:
                verdict.problems.append(f"{upload_id}: status {counts}, expected {want}")
        distinct = await conn.fetchval("SELECT count(*) = count(DISTINCT event_id) FROM sales")
        if not distinct:
            verdict.problems.append("sales has repeated event ids")
    finally:
        await conn.close()
    records = [r for r in await consume_quiet(kafka, kafka.topics.validated) if _is_event(r.value)]
    places: dict[bytes | None, list[str]] = {}
    for r in records:
        places.setdefault(r.key, []).append(f"{r.partition}@{r.offset}")
    verdict.topic_duplicates = len(records) - len(places)
    if verdict.topic_duplicates:
        # Where the copies sit (partition@offset), for the first few: enough to tell one
        # transaction read twice from two transactions that both committed.
        repeated = [f"{key!r}: {', '.join(at)}" for key, at in places.items() if len(at) > 1]
        verdict.problems.append(
            f"{verdict.topic_duplicates} events seen twice in {kafka.topics.validated}"
            f" (e.g. {'; '.join(repeated[:4])})"
        )
    return verdict
