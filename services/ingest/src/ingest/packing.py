"""An upload's spooled rows as `sales.raw` records (events.RawRows): packs of consecutive rows
(a Kafka record per row cost the broker and both clients more than the rows' own work,
docs/BENCHMARKS.md), each row as its cells, their customer ids sealed together in one token."""

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


def count_bytes(index: int, field_count: int) -> int:
    """What a row's own field count adds to its record: `[index,count],`."""
    return len(b"[%d,%d]," % (index, field_count))


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
    # A record of no rows: what the rows share, the token's prefix, nonce and tag. Its first
    # row number is counted when a record starts.
    empty = len(encoder.pack(0, [], cipher.seal_ids([], upload_id, 1) if cipher else None, []))
    column_count = encoder.column_count
    pack: list[bytes] = []
    ids: list[str | None] = []
    field_counts: list[tuple[int, int]] = []
    size = first = 0

    def record() -> tuple[bytes, bytes]:
        sealed = cipher.seal_ids(ids, upload_id, first) if cipher is not None else None
        return f"{upload_id}:{first}".encode(), encoder.pack(first, pack, sealed, field_counts)

    for row_number, (field_count, cells_json, customer_id) in enumerate(rows, 1):
        # The cells and their comma, and the id at its longest sealed (a file without ids
        # has none).
        row_size = len(cells_json) + 1 + (sealed_id_bytes(customer_id) if cipher else 0)
        own_count = field_count != column_count
        if pack and (
            len(pack) == limits.rows_per_record
            or size + row_size + (count_bytes(len(pack), field_count) if own_count else 0)
            > limits.record_bytes
        ):
            yield record()
            pack, ids, field_counts = [], [], []
        if not pack:
            first, size = row_number, empty + len(b"%d" % row_number)
        if own_count:
            size += count_bytes(len(pack), field_count)
            field_counts.append((len(pack), field_count))
        pack.append(cells_json)
        ids.append(customer_id)
        size += row_size
    if pack:
        yield record()
