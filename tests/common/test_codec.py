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
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined
from sales_common import codec
from sales_common.codec import (
    RawPackStruct,
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
    RawSale,
    RejectedSale,
    ValidatedSale,
    Violation,
    decode,
    encode,
    raw_sales,
)

Struct = RawSaleStruct | ValidatedSaleStruct | RejectedSaleStruct
PAIRS: list[tuple[type[BaseModel], type[msgspec.Struct]]] = [
    (RawSale, RawSaleStruct),
    (ValidatedSale, ValidatedSaleStruct),
    (RejectedSale, RejectedSaleStruct),
    (Violation, ViolationStruct),
    (RawPack, RawPackStruct),
]
HOT_DECODERS: list[tuple[type[Contract], Callable[[bytes], Struct]]] = [
    (RawSale, lambda payload: decode_raw(payload).rows[0]),
    (ValidatedSale, decode_validated),
    (RejectedSale, decode_rejected),
]
# Text that JSON escapes differently from one encoder to another, if any does.
ALPHABET = "aZ09 -_.,;:'\"\\/\t\n\r\x00\x01\x1f\x7f\u00e9\u00a0\u2028\u2029\ufeff\U0001f600\u4e2d"


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_each_struct_has_the_fields_of_its_model_in_order_with_the_same_defaults(
    model: type[BaseModel], struct: type[msgspec.Struct]
) -> None:
    def default(value: Any) -> Any:
        return "required" if value in (PydanticUndefined, msgspec.NODEFAULT) else value

    assert [(f.name, default(f.default)) for f in msgspec.structs.fields(struct)] == [
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


def contracts(rng: random.Random) -> list[Contract]:
    """One record of each topic, with random values in every field."""
    fields = {text(rng, 6): text(rng) for _ in range(rng.randint(0, 6))}
    violations = [
        Violation(field=text(rng), rule=text(rng), message=text(rng, 40))
        for _ in range(rng.randint(1, 3))
    ]
    return [
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
        if isinstance(value, list):
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
    raw = RawRecords("u", 3, "f.csv", at).encode(1, orjson.dumps({"product": "Halal X"}), 1)
    payloads.append((lambda payload: decode_raw(payload).rows[0], raw))
    monkeypatch.setattr(codec, "decode", refuse)
    for hot_decode, payload in payloads:
        hot_decode(payload)


def canonical(model: type[Contract]) -> dict[str, Any]:
    record = contracts(random.Random(5))[[RawSale, ValidatedSale, RejectedSale].index(model)]
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
    variants.extend(base | {"schema_version": v} for v in (0, 2, 99, "1", 1.0, True))
    special: dict[str, list[Any]] = {
        "row_number": [0, -1, 1, 2**31, 1.0, "1", "x"],
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
    ("model", "hot_decode"), HOT_DECODERS, ids=["raw", "validated", "rejected"]
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


def test_a_packed_raw_record_reads_as_its_rows_on_both_paths() -> None:
    at = "2026-11-26T12:00:00.123456Z"  # as pydantic writes it, to compare the bytes
    records = RawRecords("u", 3, "f.csv", at)
    rows = [records.encode(n, orjson.dumps({"product": f"Halal {n}"}), 1) for n in range(1, 6)]
    for sealed in ("pii:v1:e1:abc", None):
        packed = RawRecords.pack(rows, sealed)
        hot = decode_raw(packed)
        contract = RawRecord.model_validate_json(packed).root
        assert isinstance(contract, RawPack)
        assert encode(contract) == packed  # the bytes the contract writes
        assert hot.customer_ids == contract.customer_ids == sealed
        assert [r.row_number for r in hot.rows] == [r.row_number for r in raw_sales(packed)]
        assert [r.fields for r in hot.rows] == [r.fields for r in contract.rows]
    # What ingest wrote before packs: a row, or an array of rows.
    for unpacked, count in ((rows[0], 1), (b"[%s]" % b",".join(rows), 5)):
        assert decode_raw(unpacked).customer_ids is None
        assert len(decode_raw(unpacked).rows) == len(raw_sales(unpacked)) == count
    broken = RawRecords.pack([rows[0], rows[1].replace(b'"row_number":2', b'"row_number":0')], None)
    empty = b'{"schema_version":1,"customer_ids":null,"rows":[]}'
    for refused in (broken, empty, b"[]", b"[1]"):
        with pytest.raises(ValidationError):
            decode_raw(refused)
        with pytest.raises(ValidationError):
            raw_sales(refused)


@pytest.mark.parametrize(("model", "struct"), PAIRS[:3], ids=["raw", "validated", "rejected"])
def test_the_structs_alone_refuse_what_matters(
    model: type[Contract], struct: type[msgspec.Struct]
) -> None:
    """Without the contract behind them: a wrong schema version, a missing field, a wrong
    type, an unknown field."""
    base = canonical(model)
    required = [f.name for f in msgspec.structs.fields(struct) if f.required]
    refused = [
        base | {"schema_version": 2},
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
            with pytest.raises(ValidationError) as contract:
                # sales.raw's record is a RawSale or a pack of them: RawRecord.
                (RawRecord if model is RawSale else model).model_validate_json(payload)
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
