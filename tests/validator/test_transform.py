"""The validator's step from sales.raw records to results: each pack's customer ids opened
once and given to their rows, every row kept (validated or rejected, with its reasons)."""

from datetime import UTC, datetime

import orjson
from confluent_kafka import Message
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sales_common.codec import RejectedSaleStruct, ValidatedSaleStruct
from sales_common.events import RawRecords, RawSale, encode
from sales_common.pii import (
    CustomerHasher,
    EncryptionSettings,
    FieldCipher,
    PiiSettings,
    row_context,
)
from validator.config import ValidatorSettings
from validator.consumer import Result, ValidatorHandler
from validator.metrics import ValidatorMetrics

NOW = datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)
PII = PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1")
ENCRYPTION = EncryptionSettings(key=SecretStr("e" * 32), key_id="e1")
CIPHER = FieldCipher(ENCRYPTION)
HASH = CustomerHasher(PII).hash
UPLOAD = "7d1c2a4e-0000-4000-8000-000000000001"
COLUMNS = ["product", "customer_id", "price", "quantity"]


def handler() -> ValidatorHandler:
    settings = ValidatorSettings(pii=PII, pii_encryption=ENCRYPTION)
    metrics = ValidatorMetrics(CollectorRegistry())
    return ValidatorHandler(settings, metrics, CustomerHasher(PII), CIPHER, "main", False)


def pack(first: int, rows: list[list[str]], cipher: FieldCipher | None = CIPHER) -> bytes:
    """A record as ingest writes it: the id cell taken out of each row, the ids sealed."""
    encoder = RawRecords(UPLOAD, len(COLUMNS), "f.csv", "2026-11-26T12:00:00+00:00")
    column = COLUMNS.index("customer_id")
    kept = [c for c in COLUMNS if c != "customer_id"]
    ids = [cells[column] if column < len(cells) else None for cells in rows]
    encoded = [
        encoder.encode(
            first + n,
            orjson.dumps(dict(zip(kept, cells[:column] + cells[column + 1 :], strict=False))),
            len(cells),
        )
        for n, cells in enumerate(rows)
    ]
    sealed = cipher.seal_ids(ids, UPLOAD, first) if cipher is not None else None
    return RawRecords.pack(encoded, sealed)


def transform(*values: bytes) -> list[Result]:
    records = [
        Message(topic="sales.raw", partition=0, offset=n, value=value)
        for n, value in enumerate(values)
    ]
    return handler().transform(records, NOW)


def test_each_row_of_a_pack_gets_its_own_customer_id() -> None:
    rows = [
        ["Halal A", "CUST-1", "1.00", "1"],
        ["Halal B", " ", "2.00", "2"],  # a blank id: no hash
        ["Halal C"],  # a short row: no id at all, and rejected
        ["Wrong D", "CUST-4", "4.00", "4"],  # rejected, with its customer's hash
        ["Halal E", "CUST-5", "5.00", "5", "extra"],
    ]
    results = transform(pack(10, rows))
    assert [r.row_number for r in results] == [10, 11, 12, 13, 14]
    first, blank, short, wrong, extra = results
    assert type(first) is ValidatedSaleStruct
    assert first.customer_hash == HASH("CUST-1")
    assert type(blank) is ValidatedSaleStruct
    assert blank.customer_hash is None
    assert type(short) is RejectedSaleStruct
    assert "customer_id" not in short.fields
    assert type(wrong) is RejectedSaleStruct
    assert wrong.fields["customer_id"] == HASH("CUST-4")
    assert [v.rule for v in wrong.violations] == ["prefix"]
    assert type(extra) is RejectedSaleStruct
    assert extra.fields["customer_id"] == HASH("CUST-5")
    assert [v.rule for v in extra.violations] == ["field_count"]


def test_ids_that_do_not_open_reject_every_row_of_their_upload() -> None:
    rows = [["Halal A", "CUST-1", "1.00", "1"], ["Halal B", "CUST-2", "2.00", "2"]]
    stranger = FieldCipher(EncryptionSettings(key=SecretStr("x" * 32), key_id="e1"))
    moved = pack(1, rows).replace(b'"row_number":1,', b'"row_number":3,', 1)
    for value in (pack(1, rows, stranger), moved):
        results = transform(value)
        refused = [r for r in results if type(r) is RejectedSaleStruct]
        assert len(refused) == len(results) == 2
        assert [(r.upload_id, r.violations[0].field, r.violations[0].rule) for r in refused] == [
            (UPLOAD, "customer_id", "unreadable")
        ] * 2
        assert [r.fields for r in refused] == [
            {"product": p, "price": f"{n}.00", "quantity": f"{n}"}
            for n, p in ((1, "Halal A"), (2, "Halal B"))
        ]


def test_rows_written_before_packs_still_validate() -> None:
    token = CIPHER.encrypt("CUST-9", row_context(UPLOAD, 1))
    fields = {"product": "Halal A", "customer_id": token, "price": "1.00", "quantity": "1"}
    row = RawSale(
        upload_id=UPLOAD,
        row_number=1,
        fields=fields,
        field_count=4,
        column_count=4,
        source_filename="f.csv",
        received_at=NOW,
    )
    forged = FieldCipher(EncryptionSettings(key=SecretStr("x" * 32), key_id="e1"))
    bad = row.model_copy(
        update={
            "row_number": 2,
            "fields": fields | {"customer_id": forged.encrypt("CUST-9", row_context(UPLOAD, 2))},
        }
    )
    good, refused = transform(encode(row), encode(bad))
    assert type(good) is ValidatedSaleStruct
    assert good.customer_hash == HASH("CUST-9")
    assert type(refused) is RejectedSaleStruct
    assert (refused.row_number, refused.violations[0].rule) == (2, "unreadable")
    assert "customer_id" not in refused.fields
