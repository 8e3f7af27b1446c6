from __future__ import annotations

import orjson
from ingest.config import UploadLimits
from ingest.packing import raw_records
from ingest.spool import SpooledRow
from pydantic import SecretStr
from sales_common.codec import decode_raw
from sales_common.events import RawPack, RawRecord, RawRecords
from sales_common.pii import EncryptionSettings, FieldCipher

CIPHER = FieldCipher(EncryptionSettings(key=SecretStr("s" * 32), key_id="e1"))
UPLOAD = "0b6f7a5e-7a34-4c1b-9d0b-2d5d8f6f0a11"


def spooled(count: int, customer_id: str | None = "CUST-1") -> list[SpooledRow]:
    return [(3, orjson.dumps({"product": f"Halal {n}"}), customer_id) for n in range(1, count + 1)]


def packs(
    rows: list[SpooledRow], limits: UploadLimits, cipher: FieldCipher | None = CIPHER
) -> list[tuple[bytes, bytes]]:
    encoder = RawRecords(UPLOAD, 4, "f.csv", "2026-11-26T12:00:00+00:00")
    return list(raw_records(rows, encoder, UPLOAD, cipher, limits))


def test_consecutive_rows_are_packed_with_their_ids_sealed_together() -> None:
    rows = spooled(300)
    rows[5] = (3, rows[5][1], None)  # a row without an id
    records = packs(rows, UploadLimits(rows_per_record=128))
    decoded = [decode_raw(value) for _, value in records]
    assert [len(pack.rows) for pack in decoded] == [128, 128, 44]
    assert [key for key, _ in records] == [f"{UPLOAD}:{n}".encode() for n in (1, 129, 257)]
    assert [row.row_number for pack in decoded for row in pack.rows] == list(range(1, 301))
    for pack in decoded:
        assert all("customer_id" not in row.fields for row in pack.rows)
        assert pack.customer_ids is not None
        first = pack.rows[0].row_number
        ids = CIPHER.open_ids(pack.customer_ids, UPLOAD, first, len(pack.rows))
        assert ids == [None if n == 6 else "CUST-1" for n in range(first, first + len(ids))]


def test_a_pack_stays_within_record_bytes_whatever_its_ids_hold() -> None:
    limits = UploadLimits(record_bytes=4096)
    # JSON escapes a control character in 6 bytes: the longest sealed form of an id.
    for customer_id in ("C", "\x01" * 60, "\U0001f600" * 40, None):
        records = packs(spooled(200, customer_id), limits)
        assert len(records) > 1
        assert all(len(value) <= limits.record_bytes for _, value in records)
        rows = sum(len(decode_raw(value).rows) for _, value in records)
        assert rows == 200
    lone = packs([(1, orjson.dumps({"product": "x" * 5000}), "C")], limits)
    assert len(lone) == 1  # a longer single row travels alone


def test_without_a_customer_id_column_no_room_is_kept_for_ids() -> None:
    limits = UploadLimits(record_bytes=4096)
    records = packs(spooled(400, None), limits, cipher=None)
    assert all(len(value) <= limits.record_bytes for _, value in records)
    # Full but for less than a row: the bound counted no sealed id per row.
    assert all(len(value) > limits.record_bytes - 300 for _, value in records[:-1])


def test_without_a_customer_id_column_nothing_is_sealed() -> None:
    [(_, value)] = packs(spooled(3, None), UploadLimits(), cipher=None)
    pack = RawRecord.model_validate_json(value).root
    assert isinstance(pack, RawPack)
    assert pack.customer_ids is None
    assert len(pack.rows) == 3
