"""The validator's step from sales.raw records to results: each pack's customer ids opened
once and given to their rows, every row kept (validated or rejected, with its reasons), the
same bytes whatever form ingest wrote the rows in."""

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson
from confluent_kafka import Message
from ingest.config import SpoolSettings, UploadLimits
from ingest.csv_stream import CheckedRows
from ingest.packing import raw_records
from ingest.spool import Spool, SpoolBudget
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sales_common.codec import RejectedSaleStruct, ValidatedSaleStruct, encode_struct
from sales_common.events import EXPRESS_COPY, RawPack, RawRecords, RawSale, encode
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

from tests.helpers import raw_sale

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
PII = PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1")
ENCRYPTION = EncryptionSettings(key=SecretStr("e" * 32), key_id="e1")
CIPHER = FieldCipher(ENCRYPTION)
HASH = CustomerHasher(PII).hash
UPLOAD = "7d1c2a4e-0000-4000-8000-000000000001"
COLUMNS = ["product", "customer_id", "price", "quantity"]
KEPT = [c for c in COLUMNS if c != "customer_id"]
HERE = Path(__file__).parent
# Valid rows, rejected ones, short and long rows, blank and missing ids, quoting, Unicode.
MIXED = (HERE / "mixed.csv").read_bytes()
MIXED_UPLOAD = "7d1c2a4e-0000-4000-8000-000000000002"
MIXED_RECEIVED_AT = "2026-11-26T12:00:00.123456+00:00"


def handler(express: bool = False, registry: CollectorRegistry | None = None) -> ValidatorHandler:
    settings = ValidatorSettings(pii=PII, pii_encryption=ENCRYPTION)
    metrics = ValidatorMetrics(registry or CollectorRegistry())
    lane = "express" if express else "main"
    return ValidatorHandler(settings, metrics, CustomerHasher(PII), CIPHER, lane, express)


def pack(first: int, rows: list[list[str]], cipher: FieldCipher | None = CIPHER) -> bytes:
    """A record as ingest writes it: the id cell taken out of each row, the ids sealed."""
    encoder = RawRecords(UPLOAD, KEPT, len(COLUMNS), "f.csv", "2026-11-26T12:00:00+00:00")
    column = COLUMNS.index("customer_id")
    ids = [cells[column] if column < len(cells) else None for cells in rows]
    kept = [cells[:column] + cells[column + 1 :] for cells in rows]
    counts = [(n, len(cells)) for n, cells in enumerate(rows) if len(cells) != len(COLUMNS)]
    sealed = cipher.seal_ids(ids, UPLOAD, first) if cipher is not None else None
    return encoder.pack(first, [orjson.dumps(c[: len(KEPT)]) for c in kept], sealed, counts)


def results(*values: bytes) -> list[Result]:
    """The handler's results: a row the native path encoded is its record's key and value."""
    records = [
        Message(topic="sales.raw", partition=0, offset=n, value=value)
        for n, value in enumerate(values)
    ]
    return asyncio.run(handler().transform(records, NOW))


def transform(*values: bytes) -> list[ValidatedSaleStruct | RejectedSaleStruct]:
    """The results as records, each encoded row read back (its key is its event id)."""
    read = []
    for result in results(*values):
        if isinstance(result, tuple):
            key, value = result
            result = msgspec.json.decode(value, type=ValidatedSaleStruct)
            assert key == result.event_id.encode()
        read.append(result)
    return read


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
    assert short.fields == {"product": "Halal C"}
    assert type(wrong) is RejectedSaleStruct
    assert wrong.fields["customer_id"] == HASH("CUST-4")
    assert [v.rule for v in wrong.violations] == ["prefix"]
    assert type(extra) is RejectedSaleStruct
    assert extra.fields == {
        "product": "Halal E",
        "price": "5.00",
        "quantity": "5",
        "customer_id": HASH("CUST-5"),
    }
    assert [(v.rule, v.message) for v in extra.violations] == [
        ("field_count", "expected 4 fields, found 5")
    ]


def test_ids_that_do_not_open_reject_every_row_of_their_upload() -> None:
    rows = [["Halal A", "CUST-1", "1.00", "1"], ["Halal B", "CUST-2", "2.00", "2"]]
    stranger = FieldCipher(EncryptionSettings(key=SecretStr("x" * 32), key_id="e1"))
    moved = pack(1, rows).replace(b'"first_row":1,', b'"first_row":3,', 1)
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
    row = raw_sale(UPLOAD, 1, fields, received_at=NOW)
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
    assert refused.fields == {"product": "Halal A", "price": "1.00", "quantity": "1"}


def test_an_array_of_rows_of_several_uploads_is_read_row_by_row() -> None:
    """Ingest never wrote one, but the contract took it: each row still validated alone."""

    def row(upload: str, number: int, **fields: str) -> RawSale:
        return raw_sale(upload, number, fields, column_count=3, received_at=NOW)

    rows = [
        row("u1", 1, product="Halal A", price="1", quantity="1"),
        row("u2", 7, quantity="2", price="2", product="Halal B"),  # another upload and order
        row("u2", 8, product="Wrong C", customer_id="CUST-3", price="3", quantity="3"),
    ]
    results = transform(b"[%s]" % b",".join(map(encode, rows)))
    assert [(r.upload_id, r.row_number, type(r)) for r in results] == [
        ("u1", 1, ValidatedSaleStruct),
        ("u2", 7, ValidatedSaleStruct),
        ("u2", 8, RejectedSaleStruct),
    ]
    rejected = results[2]
    assert type(rejected) is RejectedSaleStruct
    assert list(rejected.fields.items()) == [  # in their order, the id in its place
        ("product", "Wrong C"),
        ("customer_id", HASH("CUST-3")),
        ("price", "3"),
        ("quantity", "3"),
    ]
    assert [v.rule for v in rejected.violations] == ["field_count", "prefix"]


def test_a_packs_ids_open_only_for_the_rows_they_were_sealed_for_as_one_run() -> None:
    """A RawPack whose rows are not consecutive rows of one upload (ingest never wrote one)
    reads as several RawRows: its token, bound to the pack's first row and count, opens for
    none of them, and every row is rejected as a row of its upload, without an id."""

    def row(number: int) -> RawSale:
        fields = {"product": "Halal A", "price": "1", "quantity": "1"}
        return raw_sale(UPLOAD, number, fields, 4, 4, received_at=NOW)

    token = CIPHER.seal_ids(["CUST-1", "CUST-2"], UPLOAD, 1)
    results = transform(encode(RawPack(customer_ids=token, rows=[row(1), row(3)])))
    assert [
        (r.row_number, type(r), [(v.field, v.rule) for v in r.violations])
        for r in results
        if type(r) is RejectedSaleStruct
    ] == [(n, RejectedSaleStruct, [("customer_id", "unreadable")]) for n in (1, 3)]
    assert len(results) == 2


def test_a_packs_rows_with_their_own_file_names_and_receive_times_are_one_run() -> None:
    """The forms before RawRows carried the file name and receive time on every row, and
    the contract let them differ; no output carries them, so they never split a run (a
    split pack's ids would not open)."""

    def row(number: int, received_at: datetime, filename: str) -> RawSale:
        fields = {"product": "Halal A", "price": "1", "quantity": "1"}
        return raw_sale(UPLOAD, number, fields, 4, 4, filename, received_at)

    token = CIPHER.seal_ids(["CUST-1", "CUST-2"], UPLOAD, 1)
    rows = [row(1, NOW, "f.csv"), row(2, NOW.replace(microsecond=7), "g.csv")]
    results = transform(encode(RawPack(customer_ids=token, rows=rows)))
    assert [(r.row_number, r.customer_hash) for r in results if type(r) is ValidatedSaleStruct] == [
        (1, HASH("CUST-1")),
        (2, HASH("CUST-2")),
    ]


def outputs(results: list[Result]) -> list[bytes]:
    return [result[1] if isinstance(result, tuple) else encode_struct(result) for result in results]


def expected(name: str) -> list[bytes]:
    return (HERE / name).read_bytes().splitlines()


def test_the_output_for_a_csv_is_what_the_validator_wrote_before_rawrows() -> None:
    """mixed.expected.jsonl is what 178b2ed (the last revision before RawRows) wrote for
    mixed.csv: its ingest's spool and packing, 4 rows a record, and its validator, with
    these keys and times. RawRows must not change a byte of it."""
    rows = CheckedRows(max_record_chars=10_000, max_field_chars=1000)
    with Spool(SpoolSettings(), SpoolBudget(1 << 20), CIPHER, MIXED_UPLOAD) as spool:
        checked = rows.feed(MIXED)
        assert rows.columns is not None
        spool.write(rows.columns, checked)
        spool.write(rows.columns, rows.close())
        header = len(rows.columns)
        encoder = RawRecords(MIXED_UPLOAD, spool.columns, header, "mixed.csv", MIXED_RECEIVED_AT)
        limits = UploadLimits(rows_per_record=4)
        records = [v for _, v in raw_records(spool.rows(), encoder, MIXED_UPLOAD, CIPHER, limits)]
    assert len(records) == 4
    assert outputs(results(*records)) == expected("mixed.expected.jsonl")


def mixed_rows() -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(io.StringIO(MIXED.decode()))
    return [name.strip().lower() for name in header], rows


def sale(number: int, fields: dict[str, str], field_count: int, column_count: int) -> RawSale:
    received_at = datetime.fromisoformat(MIXED_RECEIVED_AT)
    return raw_sale(
        MIXED_UPLOAD, number, fields, field_count, column_count, "mixed.csv", received_at
    )


def test_the_same_rows_as_ingest_wrote_them_before_give_the_same_output() -> None:
    """A RawPack (the ids sealed per pack, appended to the fields by the validator) gives
    the bytes above; rows written before packs (each id sealed in its place among the
    fields), what 178b2ed wrote for them: mixed.before_packs.jsonl."""
    header, rows = mixed_rows()
    column = header.index("customer_id")
    kept = [name for name in header if name != "customer_id"]
    packs = []
    for first in range(1, len(rows) + 1, 4):
        chunk = rows[first - 1 : first + 3]
        ids = [cells[column] if column < len(cells) else None for cells in chunk]
        sales = []
        for number, cells in enumerate(chunk, first):
            fields = dict(zip(kept, cells[:column] + cells[column + 1 :], strict=False))
            sales.append(sale(number, fields, len(cells), len(header)))
        packs.append(
            encode(RawPack(customer_ids=CIPHER.seal_ids(ids, MIXED_UPLOAD, first), rows=sales))
        )
    assert outputs(results(*packs)) == expected("mixed.expected.jsonl")

    unpacked = []
    for number, cells in enumerate(rows, 1):
        fields = dict(zip(header, cells, strict=False))
        if fields.get("customer_id"):
            token = CIPHER.encrypt(fields["customer_id"], row_context(MIXED_UPLOAD, number))
            fields["customer_id"] = token
        unpacked.append(encode(sale(number, fields, len(cells), len(header))))
    # Arrays of 4 rows, then a row a record.
    records = [b"[%s]" % b",".join(unpacked[:4]), b"[%s]" % b",".join(unpacked[4:8])]
    records += unpacked[8:]
    assert outputs(results(*records)) == expected("mixed.before_packs.jsonl")


def test_native_and_python_results_go_to_their_topics_on_both_lanes_and_are_counted() -> None:
    rows = [["Halal A", "CUST-1", "1.00", "1"], ["Wrong B", "CUST-2", "2.00", "2"]]
    value = pack(1, rows)
    records = [Message(topic="sales.raw", partition=0, offset=0, value=value)]
    for express in (False, True):
        registry = CollectorRegistry()
        lane = handler(express, registry)
        results = asyncio.run(lane.transform(records, NOW))
        assert [type(r) for r in results] == [tuple, RejectedSaleStruct]  # native, Python
        topics = lane._settings.kafka.topics
        sent = [
            (topic, key, payload, dict(headers))
            for topic, key, payload, headers in lane._outgoing(results)
        ]
        valid, rejected = results[0], results[1]
        assert isinstance(valid, tuple)
        assert type(rejected) is RejectedSaleStruct
        main = [
            (topics.validated, *valid),
            (topics.rejected, rejected.event_id.encode(), encode_struct(rejected)),
        ]
        if express:  # each record twice: the marked copy on the main topic and its twin
            assert [s[:3] for s in sent] == [
                main[0],
                (topics.validated_priority, *valid),
                main[1],
                (topics.rejected_priority, *main[1][1:]),
            ]
            marked = [EXPRESS_COPY[0] in headers for *_, headers in sent]
            assert marked == [True, False, True, False]
        else:
            assert [s[:3] for s in sent] == main
        lane._count(results)
        assert registry.get_sample_value("validator_native_rows_total") == 1
        assert registry.get_sample_value("validator_rows_total", {"outcome": "valid"}) == 1
        assert registry.get_sample_value("validator_rows_total", {"outcome": "rejected"}) == 1
