from __future__ import annotations

import orjson
from ingest.config import UploadLimits
from ingest.packing import raw_records
from ingest.spool import SpooledRow
from pydantic import SecretStr
from sales_common.codec import decode_raw
from sales_common.events import RawRecord, RawRecords, RawRows
from sales_common.pii import EncryptionSettings, FieldCipher

CIPHER = FieldCipher(EncryptionSettings(key=SecretStr("s" * 32), key_id="e1"))
UPLOAD = "0b6f7a5e-7a34-4c1b-9d0b-2d5d8f6f0a11"
# The header has a customer_id column besides these.
COLUMNS = ["product", "price", "quantity"]


def spooled(count: int, customer_id: str | None = "CUST-1") -> list[SpooledRow]:
    return [(4, orjson.dumps([f"Halal {n}", "1", "2"]), customer_id) for n in range(1, count + 1)]


def packs(
    rows: list[SpooledRow],
    limits: UploadLimits,
    cipher: FieldCipher | None = CIPHER,
    columns: list[str] = COLUMNS,
) -> list[tuple[bytes, bytes]]:
    encoder = RawRecords(UPLOAD, columns, len(columns) + 1, "f.csv", "2026-11-26T12:00:00+00:00")
    return list(raw_records(rows, encoder, UPLOAD, cipher, limits))


def test_consecutive_rows_are_packed_with_their_ids_sealed_together() -> None:
    rows = spooled(300)
    rows[5] = (4, rows[5][1], None)  # a row without an id
    records = packs(rows, UploadLimits(rows_per_record=128))
    decoded = [pack for _, value in records for pack in decode_raw(value)]
    assert [len(pack.rows) for pack in decoded] == [128, 128, 44]
    assert [key for key, _ in records] == [f"{UPLOAD}:{n}".encode() for n in (1, 129, 257)]
    assert [pack.first_row for pack in decoded] == [1, 129, 257]
    assert [cells[0] for pack in decoded for cells in pack.rows] == [
        f"Halal {n}" for n in range(1, 301)
    ]
    for pack in decoded:
        assert (pack.upload_id, pack.columns, pack.column_count) == (UPLOAD, COLUMNS, 4)
        assert pack.field_counts == []
        assert pack.customer_ids is not None
        first = pack.first_row
        ids = CIPHER.open_ids(pack.customer_ids, UPLOAD, first, len(pack.rows))
        assert ids == [None if n == 6 else "CUST-1" for n in range(first, first + len(ids))]


def test_rows_with_their_own_field_count_are_listed_by_index_in_their_record() -> None:
    rows = spooled(6)
    rows[1] = (2, orjson.dumps(["Halal short"]), None)  # the id was its second cell: not there
    rows[4] = (9, rows[4][1], "CUST-1")  # its cells past the header were left out
    records = packs(rows, UploadLimits(rows_per_record=4))
    first, second = (RawRecord.model_validate_json(value).root for _, value in records)
    assert isinstance(first, RawRows)
    assert isinstance(second, RawRows)
    assert first.field_counts == [(1, 2)]
    assert second.field_counts == [(0, 9)]  # row 5 is the second record's first
    assert [row.field_count for row in (*first.sales(), *second.sales())] == [4, 2, 4, 4, 9, 4]
    assert first.sales()[1].fields == {"product": "Halal short"}


def test_a_pack_stays_within_record_bytes_whatever_its_ids_hold() -> None:
    limits = UploadLimits(record_bytes=4096)
    # JSON escapes a control character in 6 bytes: the longest sealed form of an id.
    for customer_id in ("C", "\x01" * 60, "\U0001f600" * 40, None):
        records = packs(spooled(200, customer_id), limits)
        assert len(records) > 1
        assert all(len(value) <= limits.record_bytes for _, value in records)
        rows = sum(len(pack.rows) for _, value in records for pack in decode_raw(value))
        assert rows == 200
    lone = packs([(1, orjson.dumps(["x" * 5000]), "C")], limits)
    assert len(lone) == 1  # a longer single row travels alone


def test_the_bound_counts_the_columns_and_the_rows_own_field_counts() -> None:
    limits = UploadLimits(record_bytes=2048)
    # Long column names (the record's fixed part) and every row short, with its own count.
    columns = [f"column_{'x' * 100}_{n}" for n in range(8)]
    rows: list[SpooledRow] = [(3, orjson.dumps(["Halal", "1"]), None) for _ in range(400)]
    records = packs(rows, limits, cipher=None, columns=columns)
    assert all(len(value) <= limits.record_bytes for _, value in records)
    decoded = [pack for _, value in records for pack in decode_raw(value)]
    assert sum(len(pack.rows) for pack in decoded) == 400
    assert all(len(pack.field_counts) == len(pack.rows) for pack in decoded)
    # Nearly full: the bound is not so loose that records come out half empty.
    assert all(len(value) > limits.record_bytes * 0.9 for _, value in records[:-1])


def test_without_a_customer_id_column_no_room_is_kept_for_ids() -> None:
    limits = UploadLimits(record_bytes=2048)  # ~100 of these rows
    records = packs(spooled(400, None), limits, cipher=None)
    assert all(len(value) <= limits.record_bytes for _, value in records)
    # Full but for less than a row: the bound counted no sealed id per row.
    assert all(len(value) > limits.record_bytes - 30 for _, value in records[:-1])


def test_without_a_customer_id_column_nothing_is_sealed() -> None:
    [(_, value)] = packs(spooled(3, None), UploadLimits(), cipher=None)
    pack = RawRecord.model_validate_json(value).root
    assert isinstance(pack, RawRows)
    assert pack.customer_ids is None
    assert len(pack.rows) == 3
