"""What the aggregate tables and upload counters should hold, recomputed from the rows, and
where a customer's hashes still are: the checks of the erasure tests."""

from __future__ import annotations

from typing import Any

from sales_common.db import Connection, Pool

# Each aggregate as stored, and as a direct computation over the rows, in the same order.
_PAIRS: dict[str, tuple[str, str]] = {
    "product_totals": (
        "SELECT product, total_amount, quantity, sales_count FROM product_totals ORDER BY 1",
        "SELECT product, sum(amount), sum(quantity), count(*) FROM sales GROUP BY 1 ORDER BY 1",
    ),
    "daily_product_totals": (
        "SELECT day, product, total_amount, quantity, sales_count FROM daily_product_totals"
        " ORDER BY 1, 2",
        "SELECT coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date), product,"
        " sum(amount), sum(quantity), count(*) FROM sales GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    "rejection_rule_counts": (
        "SELECT rule, count FROM rejection_rule_counts ORDER BY 1",
        "SELECT v ->> 'rule', count(*) FROM rejections, jsonb_array_elements(violations) v"
        " GROUP BY 1 ORDER BY 1",
    ),
    "rejection_totals": (
        "SELECT coalesce((SELECT rejected_rows FROM rejection_totals), 0)",
        "SELECT count(*) FROM rejections",
    ),
    "uploads": (
        "SELECT upload_id, valid_count, valid_amount, rejected_count FROM uploads ORDER BY 1",
        "SELECT u.upload_id,"
        " (SELECT count(*) FROM sales s WHERE s.upload_id = u.upload_id),"
        " (SELECT coalesce(sum(amount), 0) FROM sales s WHERE s.upload_id = u.upload_id),"
        " (SELECT count(*) FROM rejections r WHERE r.upload_id = u.upload_id)"
        " FROM uploads u ORDER BY 1",
    ),
}


async def totals_differences(db: Pool | Connection) -> dict[str, Any]:
    """Every aggregate that is not what its rows add up to: name -> (stored, computed)."""
    differences: dict[str, Any] = {}
    for name, (stored_sql, direct_sql) in _PAIRS.items():
        stored = [tuple(r) for r in await db.fetch(stored_sql)]
        direct = [tuple(r) for r in await db.fetch(direct_sql)]
        if stored != direct:
            differences[name] = (stored, direct)
    return differences


async def rows_with(db: Pool | Connection, hashes: list[str]) -> dict[str, int]:
    """Rows that still carry one of `hashes`: as a sale's customer_hash, in a rejection's fields
    (anywhere in them), or in the erasure log."""
    patterns = [f"%{h}%" for h in hashes]
    row = await db.fetchrow(
        "SELECT"
        " (SELECT count(*) FROM sales WHERE customer_hash = ANY ($1::bpchar[])) AS sales,"
        " (SELECT count(*) FROM rejections WHERE fields::text LIKE ANY ($2::text[])) AS rejections,"
        " (SELECT count(*) FROM erasures e WHERE row_to_json(e)::text LIKE ANY ($2::text[]))"
        " AS erasures",
        hashes,
        patterns,
    )
    assert row is not None
    return dict(row)
