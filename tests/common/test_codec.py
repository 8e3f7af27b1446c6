"""The hot path's Structs (codec.py) against the contract (the pydantic models in events.py).

Three promises: the same fields, in the same order, with the same defaults; the same bytes
for the same record; and the same verdict on any payload (accepted with the same values, or
refused), because what the Structs do not take goes to the contract.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pytest
from devstack.generate import raw_records
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined
from sales_common import codec
from sales_common.codec import (
    RawPackStruct,
    RawRowsStruct,
    RawSaleStruct,
    RejectedSaleStruct,
    ValidatedSaleStruct,
    ViolationStruct,
    decode_raw,
    decode_rejected,
    decode_validated,
    encode_struct,
)
from sales_common.events import (
    Contract,
    RawPack,
    RawRecord,
    RawRecords,
    RawRows,
    RawSale,
    RejectedSale,
    ValidatedSale,
    Violation,
    decode,
    encode,
    raw_sales,
)

from tests.helpers import raw_sale

Struct = RawRowsStruct | RawSaleStruct | ValidatedSaleStruct | RejectedSaleStruct
PAIRS: list[tuple[type[BaseModel], type[msgspec.Struct]]] = [
    (RawRows, RawRowsStruct),
    (RawSale, RawSaleStruct),
    (ValidatedSale, ValidatedSaleStruct),
    (RejectedSale, RejectedSaleStruct),
    (Violation, ViolationStruct),
    (RawPack, RawPackStruct),
]


def sales_of(packs: list[RawRowsStruct]) -> list[RawSaleStruct]:
    """The rows decode_raw gives, each as the RawSale it stands for: its fields are the
    columns zipped with its cells."""
    return [
        RawSaleStruct(
            upload_id=pack.upload_id,
            row_number=pack.first_row + index,
            fields=dict(zip(pack.columns, cells, strict=False)),
            field_count=dict(pack.field_counts).get(index, pack.column_count),
            column_count=pack.column_count,
            source_filename=pack.source_filename,
            received_at=pack.received_at,
        )
        for pack in packs
        for index, cells in enumerate(pack.rows)
    ]


def only(packs: list[RawRowsStruct]) -> RawRowsStruct:
    [pack] = packs
    return pack


def only_sale(payload: bytes) -> RawSaleStruct:
    [sale] = sales_of(decode_raw(payload))
    return sale


# A contract of each topic, and how the hot path decodes it; a RawSale (what ingest wrote
# before packs) comes out of decode_raw as a RawRows of one row.
HOT_DECODERS: list[tuple[type[Contract], Callable[[bytes], Struct]]] = [
    (RawRows, lambda payload: only(decode_raw(payload))),
    (RawSale, only_sale),
    (ValidatedSale, decode_validated),
    (RejectedSale, decode_rejected),
]
# Text that JSON escapes differently from one encoder to another, if any does.
ALPHABET = "aZ09 -_.,;:'\"\\/\t\n\r\x00\x01\x1f\x7f\u00e9\u00a0\u2028\u2029\ufeff\U0001f600\u4e2d"


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_each_struct_has_the_fields_of_its_model_in_order_with_the_same_defaults(
    model: type[BaseModel], struct: type[msgspec.Struct]
) -> None:
    def default(value: Any, factory: Any = msgspec.NODEFAULT) -> Any:
        if factory is not msgspec.NODEFAULT:
            return factory()
        return "required" if value in (PydanticUndefined, msgspec.NODEFAULT) else value

    fields = msgspec.structs.fields(struct)
    assert [(f.name, default(f.default, f.default_factory)) for f in fields] == [
        (name, default(field.default)) for name, field in model.model_fields.items()
    ]
    assert struct.__struct_config__.forbid_unknown_fields
    assert model.model_config.get("extra") == "forbid"


def text(rng: random.Random, longest: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest)))


def moment(rng: random.Random) -> datetime:
    zone = rng.choice([UTC, timezone(timedelta(hours=1)), timezone(timedelta(minutes=-330))])
    at = datetime(2020, 1, 1, tzinfo=zone) + timedelta(seconds=rng.randint(0, 10**9))
    # Whole seconds sometimes: both encoders then leave out the fraction.
    return at.replace(microsecond=rng.choice([0, rng.randint(0, 999_999)]))


def maybe(rng: random.Random, value: Any) -> Any:
    return value if rng.random() < 0.7 else None


def money(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 10**12)).scaleb(-2)


def raw_rows(rng: random.Random) -> RawRows:
    """A RawRows of random values that fits its columns (events.rows_problem)."""
    columns = list(dict.fromkeys(text(rng, 6) for _ in range(rng.randint(0, 6))))
    rows = [
        [text(rng) for _ in range(rng.choice([len(columns), rng.randint(0, len(columns))]))]
        for _ in range(rng.randint(1, 5))
    ]
    return RawRows(
        upload_id=text(rng),
        first_row=rng.randint(1, 10**9),
        columns=columns,
        column_count=rng.randint(0, 9),
        source_filename=text(rng),
        received_at=moment(rng),
        customer_ids=maybe(rng, text(rng, 40)),
        field_counts=[(i, rng.randint(0, 9)) for i in range(len(rows)) if rng.random() < 0.3],
        rows=rows,
    )


def contracts(rng: random.Random) -> list[Contract]:
    """One record of each topic, with random values in every field."""
    fields = {text(rng, 6): text(rng) for _ in range(rng.randint(0, 6))}
    violations = [
        Violation(field=text(rng), rule=text(rng), message=text(rng, 40))
        for _ in range(rng.randint(1, 3))
    ]
    return [
        raw_rows(rng),
        RawSale(
            upload_id=text(rng),
            row_number=rng.randint(1, 10**9),
            fields=fields,
            field_count=rng.randint(-1, 9),
            column_count=rng.randint(0, 9),
            source_filename=text(rng),
            received_at=moment(rng),
        ),
        ValidatedSale(
            event_id=text(rng),
            upload_id=text(rng),
            row_number=rng.randint(1, 10**9),
            transaction_id=maybe(rng, text(rng)),
            product=text(rng),
            price=money(rng),
            quantity=rng.randint(1, 1000),
            amount=money(rng),
            customer_hash=maybe(rng, "".join(rng.choice("0123456789abcdef") for _ in range(64))),
            pii_key_id=maybe(rng, text(rng)),
            sale_date=maybe(rng, date(2020, 1, 1) + timedelta(days=rng.randint(0, 5000))),
            validated_at=moment(rng),
        ),
        RejectedSale(
            event_id=text(rng),
            upload_id=maybe(rng, text(rng)),
            row_number=maybe(rng, rng.randint(-5, 10**9)),
            fields=fields,
            violations=violations,
            pii_key_id=maybe(rng, text(rng)),
            source=maybe(rng, text(rng)),
            rejected_at=moment(rng),
        ),
    ]


def as_struct(record: Contract) -> Struct:
    """The Struct of the same values, built directly (as the validator builds its records)."""
    values = dict(record)
    if isinstance(record, RawRows):
        return RawRowsStruct(**values)
    if isinstance(record, RawSale):
        return RawSaleStruct(**values)
    if isinstance(record, ValidatedSale):
        return ValidatedSaleStruct(
            **values | {"price": str(values["price"]), "amount": str(values["amount"])}
        )
    values["violations"] = [ViolationStruct(**dict(v)) for v in values["violations"]]
    return RejectedSaleStruct(**values)


def values_of(record: Contract | Struct) -> dict[str, Any]:
    """Every field's value, exactly: decimals as written, datetimes with their offset."""

    def exact(value: Any) -> Any:
        if isinstance(value, datetime | date | Decimal):
            return (
                type(value).__name__,
                value.isoformat() if not isinstance(value, Decimal) else str(value),
            )
        if isinstance(value, list | tuple):
            return [exact(v) for v in value]
        if isinstance(value, BaseModel | msgspec.Struct):
            return values_of(value)  # type: ignore[arg-type]
        return value

    names = (
        list(type(record).model_fields)
        if isinstance(record, BaseModel)
        else list(record.__struct_fields__)
    )
    found = {name: exact(getattr(record, name)) for name in names}
    if isinstance(record, ValidatedSaleStruct):  # its decimals are the strings on the wire
        found["price"] = exact(Decimal(record.price))
        found["amount"] = exact(Decimal(record.amount))
    return found


def test_random_records_have_the_same_bytes_and_values_both_ways() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        for record, (model, hot_decode) in zip(contracts(rng), HOT_DECODERS, strict=True):
            wire = encode(record)
            assert encode_struct(as_struct(record)) == wire
            fast = hot_decode(wire)
            assert values_of(fast) == values_of(record) == values_of(decode(model, wire))
            assert encode_struct(fast) == wire


class RefusingRawRecord:
    @staticmethod
    def model_validate_json(payload: bytes) -> RawRecord:
        raise AssertionError(f"fell back to the contract for {payload!r}")


def test_what_producers_write_never_falls_back_to_the_contract(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(model: type[Contract], payload: bytes) -> Contract:
        raise AssertionError(f"fell back to the contract for {payload!r}")

    rng = random.Random(12)
    payloads = [
        (hot, encode(record))
        for _ in range(200)
        for record, (_, hot) in zip(contracts(rng), HOT_DECODERS, strict=True)
    ]
    # ingest writes sales.raw with RawRecords, received_at as datetime.isoformat().
    at = datetime.now(UTC).isoformat()
    records = RawRecords("u", ["product", "price"], 3, "f.csv", at)
    rows = [orjson.dumps(["Halal X", "1"]), orjson.dumps(["Halal Y"])]
    for token in ("pii:v1:e1:abc", None):
        raw = records.pack(1, rows, token, [(0, 3), (1, 1)])
        payloads.append((lambda payload: only(decode_raw(payload)), raw))
    payloads.extend(
        (lambda payload: only(decode_raw(payload)), value)
        for value, _ in raw_records(300, rows_per_record=128)
    )
    monkeypatch.setattr(codec, "decode", refuse)
    monkeypatch.setattr(codec, "RawRecord", RefusingRawRecord)
    for hot_decode, payload in payloads:
        hot_decode(payload)


def canonical(model: type[Contract]) -> dict[str, Any]:
    record = next(r for r in contracts(random.Random(5)) if type(r) is model)
    values: dict[str, Any] = orjson.loads(encode(record))
    return values


WRONG_TYPES: list[Any] = [None, True, 1, 1.5, "1", [], {}, 2**70]
DATETIMES = [
    "2026-11-26T12:00:00Z",
    "2026-11-26T12:00:00.5Z",
    "2026-11-26T12:00:00.123456+05:30",
    "2026-11-26T12:00:00",
    "2026-11-26 12:00:00Z",
    "2026-11-26t12:00:00z",
    "2026-11-26T12:00:00+0000",
    "2026-11-26T12:00:00-00:00",
    "2026-11-26T12:00Z",
    "2026-11-26T12:00:00,5Z",
    "2026-11-26",
    "2026-12-31T23:59:60Z",
    "2026-12-31T24:00:00Z",
    "2026-02-30T12:00:00Z",
    "2026-11-26T12:00:00+24:00",
    "20261126T120000Z",
    "",
    1_700_000_000,
    1_700_000_000.5,
]
DECIMALS: list[Any] = [
    "1.50", "0.01", "1.", ".5", "007", "", ".", "-1.00", "+1", "-0", "1e3", "1E-2", " 1.5",
    "1.5 ", "1_000", "\u0661\u0662", "\uff15", "NaN", "-NaN", "sNaN", "Infinity", "inf", "0x10",
    "1.2.3", "9" * 40, 1.5, 3, 0.1, None,
]  # fmt: skip
HASHES = [
    "a" * 64, "0123456789abcdef" * 4, "A" * 64, "a" * 63, "a" * 65, "a" * 64 + "\n",
    "\n" + "a" * 63, " " + "a" * 63, "g" * 64, "\u0661" * 64, "\uff41" * 64, "",
]  # fmt: skip


def json_bytes(values: dict[str, Any]) -> bytes:
    # The standard library, as orjson refuses integers past 64 bits.
    return json.dumps(values, ensure_ascii=False).encode()


def mutations(model: type[Contract]) -> list[bytes]:
    """Payloads near a valid record: every field missing, of every wrong type, and the
    values where parsers are known to differ."""
    base = canonical(model)
    variants: list[dict[str, Any]] = [base, base | {"unknown": 1}]
    for name in base:
        variants.append({k: v for k, v in base.items() if k != name})
        variants.extend(base | {name: wrong} for wrong in WRONG_TYPES)
    variants.extend(base | {"schema_version": v} for v in (0, 1, 2, 99, "1", 1.0, True))
    special: dict[str, list[Any]] = {
        "row_number": [0, -1, 1, 2**31, 1.0, "1", "x"],
        "first_row": [0, -1, 1, 2**31, 1.0, "1", "x"],
        "columns": [[], ["customer_id"], ["a", "a"], ["a", 1], [""], "a", [*"abcdefghij"]],
        "column_count": [-1, 0, 1.0, "3"],
        "customer_ids": ["", 1],
        "field_counts": [
            [],
            [[0, 1]],
            [[0, -1]],
            [[0]],
            [[0, 1, 2]],
            [[9, 1]],
            [[0, 1], [0, 2]],
            [["0", 1]],
            [[0.0, 1]],
            [[True, 1]],
            [[0, "1"]],
            "x",
            [0, 1],
            [{"0": 1}],
        ],
        "rows": [[], [[]], [["a"]], [[1]], [[*"abcdefghij"]], ["a"], [[None]], [["a"], []]],
        "field_count": [-1, 0, 1.0, "3"],
        "quantity": [0, -1, 1, 1.0, "1"],
        "received_at": DATETIMES,
        "validated_at": DATETIMES,
        "rejected_at": DATETIMES,
        "sale_date": ["2026-11-01", "2026-11-01T00:00:00", "2026-11-01T00:00:01", "2026-13-01", 0],
        "price": DECIMALS,
        "amount": DECIMALS,
        "customer_hash": HASHES,
        "fields": [{"a": 1}, {"a": None}, {"a": "b", "c": ""}, {"": ""}, ["a"]],
        "violations": [
            [],
            [{"field": "f", "rule": "r"}],
            [{"field": "f", "rule": "r", "message": "m", "extra": 1}],
            [{"field": "f", "rule": "r", "message": 1}],
            ["x"],
            [{"field": "f", "rule": "r", "message": "m"}] * 2,
        ],
    }
    for name, values in special.items():
        if name in base:
            variants.extend(base | {name: value} for value in values)
    payloads = [json_bytes(v) for v in variants]
    # A field given twice: both take the last one.
    first = next(iter(base))
    payloads.append(json_bytes(base)[:-1] + f', "{first}": {json.dumps(base[first])}}}'.encode())
    return payloads


NOT_RECORDS = [
    b"",
    b"\x00not json at all",
    b"\xff\xfe not json",
    b'{"schema_version": 99}',
    b"[]",
    b"null",
    b"{",
    b"{not json",
]


def verdict(decoder: Callable[[bytes], Any], payload: bytes) -> dict[str, Any] | str:
    try:
        return values_of(decoder(payload))
    except ValidationError:
        return "refused"


@pytest.mark.parametrize(
    ("model", "hot_decode"), HOT_DECODERS, ids=["raw", "raw-before", "validated", "rejected"]
)
def test_the_hot_path_accepts_exactly_what_the_contract_accepts_with_the_same_values(
    model: type[Contract], hot_decode: Callable[[bytes], Struct]
) -> None:
    payloads = [*mutations(model), *NOT_RECORDS]
    accepted = 0
    for payload in payloads:
        expected = verdict(lambda p: decode(model, p), payload)
        assert verdict(hot_decode, payload) == expected, payload
        accepted += expected != "refused"
    assert 10 < accepted < len(payloads) - 10  # both verdicts are exercised


def old_row(number: int, upload: str = "u", **fields: str) -> RawSale:
    return raw_sale(upload, number, fields, column_count=3)


def test_the_forms_before_rawrows_read_as_their_rows_on_both_paths() -> None:
    rows = [old_row(n, product=f"Halal {n}", price="1", quantity="2") for n in range(1, 5)]
    rows.append(old_row(5, product="Halal 5"))  # short
    for sealed in ("pii:v1:e1:abc", None):
        packed = encode(RawPack(customer_ids=sealed, rows=rows))
        [hot] = decode_raw(packed)
        assert hot.customer_ids == sealed
        assert (hot.first_row, hot.columns, hot.field_counts) == (
            1,
            ["product", "price", "quantity"],
            [(4, 1)],
        )
        assert sales_of([hot]) == [as_struct(row) for row in raw_sales(packed)]
    # What ingest wrote before packs: a row, or an array of rows.
    for unpacked in (encode(rows[0]), b"[%s]" % b",".join(map(encode, rows))):
        [hot] = decode_raw(unpacked)
        assert hot.customer_ids is None
        assert sales_of([hot]) == [as_struct(row) for row in raw_sales(unpacked)]
    broken = encode(RawPack(rows=rows[:2])).replace(b'"row_number":2', b'"row_number":0')
    empty = b'{"schema_version":1,"customer_ids":null,"rows":[]}'
    for refused in (broken, empty, b"[]", b"[1]"):
        with pytest.raises(ValidationError):
            decode_raw(refused)
        with pytest.raises(ValidationError):
            raw_sales(refused)


def test_rows_that_are_not_one_run_read_as_several_rawrows() -> None:
    """Ingest never wrote them, but the contract takes them: each run of consecutive rows
    of one upload whose fields' names line up is a RawRows, and every row is kept."""
    rows = [
        old_row(1, product="A", price="1", quantity="1"),
        old_row(2, product="B"),  # short: still the same columns
        old_row(3, product="C", price="3", quantity="3", date="2026-11-01"),  # one more column
        old_row(4, price="4", product="D"),  # another order
        old_row(6, product="E"),  # not the next row
        old_row(7, "v", product="F"),  # another upload
    ]
    for payload in (
        b"[%s]" % b",".join(map(encode, rows)),
        encode(RawPack(customer_ids="pii:v1:e1:abc", rows=rows)),
    ):
        packs = decode_raw(payload)
        assert [(p.upload_id, p.first_row, len(p.rows)) for p in packs] == [
            ("u", 1, 3),
            ("u", 4, 1),
            ("u", 6, 1),
            ("v", 7, 1),
        ]
        assert packs[0].columns == ["product", "price", "quantity", "date"]
        assert sales_of(packs) == [as_struct(row) for row in raw_sales(payload)]


@pytest.mark.parametrize(
    ("model", "struct"), PAIRS[:4], ids=["raw", "raw-before", "validated", "rejected"]
)
def test_the_structs_alone_refuse_what_matters(
    model: type[Contract], struct: type[msgspec.Struct]
) -> None:
    """Without the contract behind them: a wrong schema version, a missing field, a wrong
    type, an unknown field."""
    base = canonical(model)
    required = [f.name for f in msgspec.structs.fields(struct) if f.required]
    refused = [
        base | {"schema_version": 3 - base["schema_version"]},  # 1 for 2, 2 for 1
        base | {"unknown": 1},
        *({k: v for k, v in base.items() if k != name} for name in required),
        *(base | {name: [base[name]]} for name in base),
    ]
    for values in refused:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json_bytes(values), type=struct)


def test_not_records_are_refused_with_the_contracts_reasons() -> None:
    # The validator and the loader turn these into `unreadable` rejections with the message.
    for payload in NOT_RECORDS:
        for model, hot_decode in HOT_DECODERS:
            with pytest.raises(ValidationError) as hot:
                hot_decode(payload)
            # sales.raw's record is any of its forms: RawRecord.
            contract_model = RawRecord if model in (RawRows, RawSale) else model
            with pytest.raises(ValidationError) as contract:
                contract_model.model_validate_json(payload)
            assert str(hot.value) == str(contract.value)


def test_decimals_the_contract_refuses_are_refused() -> None:
    base = canonical(ValidatedSale)
    for price in ("NaN", "-Infinity", "sNaN", "1.2.3", ""):
        with pytest.raises(ValidationError):
            decode_validated(json_bytes(base | {"price": price}))
    # A JSON number goes through a float in pydantic; the hot path takes the contract's value.
    sale = decode_validated(
        json_bytes(base).replace(f'"{base["price"]}"'.encode(), b"1234567890.123456789")
    )
    assert sale.price == "1234567890.1234567"


def test_fractions_past_the_microsecond_are_rounded_not_truncated() -> None:
    """The one documented difference (codec.py): no producer writes such a timestamp."""
    payload = json_bytes(
        canonical(ValidatedSale) | {"validated_at": "2026-11-26T12:00:00.1234567Z"}
    )
    assert decode(ValidatedSale, payload).validated_at.microsecond == 123456
    assert decode_validated(payload).validated_at.microsecond == 123457
