"""`sales.raw` records as ingest writes them, for deterministic generated CSV rows."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime

from devstack import generate
from sales_common.events import encode_raw


def raw_records(count: int, seed: int = 7) -> list[bytes]:
    """`count` rows of `devstack generate` (a tenth of them breaking rules), encoded as ingest
    encodes them: one upload, rows numbered from 1, received_at as an ISO string."""
    lines = csv.reader([generate.HEADER, *generate.rows(count, 0.1, seed)])
    columns = next(lines)
    upload = str(uuid.UUID(int=seed))
    received_at = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC).isoformat()
    return [
        encode_raw(
            upload,
            n,
            dict(zip(columns, cells, strict=False)),
            len(cells),
            len(columns),
            "g.csv",
            received_at,
        )
        for n, cells in enumerate(lines, 1)
    ]
