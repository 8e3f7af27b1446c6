"""An upload's spooled rows as `sales.raw` records: packs of consecutive rows (a Kafka record
per row cost the broker and both clients more than the rows' own work, docs/BENCHMARKS.md),
their customer ids sealed together in one token."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sales_common.events import RawRecords
from sales_common.pii import FieldCipher

from ingest.config import UploadLimits
from ingest.spool import SpooledRow


def sealed_id_bytes(customer_id: str | None) -> int:
    """At least what an id adds to its pack's token: JSON writes a character in 6 bytes at
    most (an escaped control character) plus quotes and a comma, base64 takes 4 for 3, and
    it rounds the whole token up to 4 bytes once."""
    return (len(customer_id or "") + 2) * 8


def raw_records(
    rows: Iterable[SpooledRow],
    encoder: RawRecords,
    upload_id: str,
    cipher: FieldCipher | None,
    limits: UploadLimits,
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of each record: up to `rows_per_record` consecutive rows, no longer
    than `record_bytes` (a longer single row travels alone), keyed `<upload id>:<first row>`.
    `cipher` seals the rows' customer ids; None when the file has no customer_id column."""
    # A pack of no rows: its braces, and the token's prefix, nonce and tag.
    empty = len(RawRecords.pack([], cipher.seal_ids([], upload_id, 1) if cipher else None))
    pack: list[bytes] = []
    ids: list[str | None] = []
    size = empty
    first = 1

    def record() -> tuple[bytes, bytes]:
        sealed = cipher.seal_ids(ids, upload_id, first) if cipher is not None else None
        return f"{upload_id}:{first}".encode(), RawRecords.pack(pack, sealed)

    for row_number, (field_count, fields_json, customer_id) in enumerate(rows, 1):
        row = encoder.encode(row_number, fields_json, field_count)
        # The row and its comma, and its id at its longest sealed (a file without ids has none).
        row_size = len(row) + 1 + (sealed_id_bytes(customer_id) if cipher else 0)
        if pack and (len(pack) == limits.rows_per_record or size + row_size > limits.record_bytes):
            yield record()
            pack, ids, size, first = [], [], empty, row_number
        pack.append(row)
        ids.append(customer_id)
        size += row_size
    if pack:
        yield record()
