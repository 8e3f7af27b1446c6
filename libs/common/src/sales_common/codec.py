"""The hot path's form of the three topic records: msgspec Structs, one per contract in events.py.

The pydantic models in events.py stay the contract (docs/schemas is generated from them, and
the HTTP API uses pydantic). The validator and the loader read and write Structs instead: it
halved the validator's work per row (decode, rules, encode) and the loader's decoding
(`python -m bench.hot_path`). Each Struct has the fields of its model, in the same order, with
the same defaults and constraints (but one, below), so it writes the same bytes;
tests/common/test_codec.py proves it, field by field and byte by byte.

Decoding trusts the Struct only for the form our own producers write; what a Struct field
checks only slowly (the customer hash's pattern) decode_validated checks after it, and what
RawRows asks beyond its fields' types (events.rows_problem) decode_raw does. Anything
else it refuses (a JSON number for a price, "1.0" for a row number, a NaN price) goes to the
contract, which has the last word: it raises pydantic's ValidationError, or its accepted
record is re-encoded in the canonical form and decoded here. So the hot path accepts exactly
what the contract accepts, with the same values but for the one difference below.

Prices and amounts stay exact decimal strings, as pydantic's JSON mode writes them: a Struct
`Decimal` field would also take JSON numbers (parsed exactly, where pydantic goes through a
float) and "NaN", which numeric columns accept.

One documented difference: a timestamp written with more than 6 fractional digits is rounded
to the microsecond here and truncated by pydantic. Python datetimes hold microseconds, so no
producer writes such a timestamp; the test pins it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from sales_common.events import (
    RawRecord,
    RejectedSale,
    ValidatedSale,
    decode,
    encode,
    rows_problem,
)

# The constraints of the models' fields; the customer hash's pattern is checked by
# decode_validated (see _hex_digest), what RawRows asks beyond its fields' types by decode_raw.
_RowNumber = Annotated[int, msgspec.Meta(ge=1)]
_Quantity = Annotated[int, msgspec.Meta(ge=1)]
_Count = Annotated[int, msgspec.Meta(ge=0)]


# Every Struct: forbid_unknown_fields as the contract's extra="forbid"; kw_only, so that fields
# keep the models' order (hence the same bytes) whatever has a default (msgspec does not
# inherit it, so each class says it); gc=False: records hold no reference cycles, so the
# collector need not track them.
class RawRowsStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.RawRows, and the form decode_raw gives every sales.raw record in."""

    schema_version: Literal[2] = 2
    upload_id: str
    first_row: _RowNumber
    columns: list[str]
    column_count: int
    source_filename: str
    received_at: datetime
    customer_ids: str | None = None
    field_counts: list[tuple[_Count, _Count]] = []
    rows: Annotated[list[list[str]], msgspec.Meta(min_length=1)]


class RawSaleStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.RawSale."""

    schema_version: Literal[1] = 1
    upload_id: str
    row_number: _RowNumber
    fields: dict[str, str]
    field_count: int
    column_count: int
    source_filename: str
    received_at: datetime


class RawPackStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.RawPack."""

    schema_version: Literal[1] = 1
    customer_ids: str | None = None
    rows: Annotated[list[RawSaleStruct], msgspec.Meta(min_length=1)]


class ValidatedSaleStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.ValidatedSale; `price` and `amount` are the exact decimals as written."""

    schema_version: Literal[1] = 1
    event_id: str
    upload_id: str
    row_number: _RowNumber
    transaction_id: str | None = None
    product: str
    price: str
    quantity: _Quantity
    amount: str
    customer_hash: str | None = None  # 64 lowercase hex digits: decode_validated checks it
    pii_key_id: str | None = None
    sale_date: date | None = None
    validated_at: datetime


class ViolationStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.Violation."""

    field: str
    rule: str
    message: str


class RejectedSaleStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """events.RejectedSale."""

    schema_version: Literal[1] = 1
    event_id: str
    upload_id: str | None
    row_number: int | None = None
    fields: dict[str, str]
    violations: Annotated[list[ViolationStruct], msgspec.Meta(min_length=1)]
    pii_key_id: str | None = None
    source: str | None = None
    rejected_at: datetime


_ENCODER = msgspec.json.Encoder()
_ROWS = msgspec.json.Decoder(RawRowsStruct)
# What ingest wrote before RawRows: a RawPack, and before packs a row, or an array of rows
# (events.RawRecord).
_PACK = msgspec.json.Decoder(RawPackStruct)
_UNPACKED = msgspec.json.Decoder(
    RawSaleStruct | Annotated[list[RawSaleStruct], msgspec.Meta(min_length=1)]
)
_VALIDATED = msgspec.json.Decoder(ValidatedSaleStruct)
_REJECTED = msgspec.json.Decoder(RejectedSaleStruct)


def encode_struct(
    record: RawRowsStruct | RawSaleStruct | ValidatedSaleStruct | RejectedSaleStruct,
) -> bytes:
    """The same bytes as events.encode of the record's model."""
    return _ENCODER.encode(record)


def decode_raw(payload: bytes) -> list[RawRowsStruct]:
    """A `sales.raw` record as `RawRows`: one, as ingest writes them (the forms it wrote
    before, converted, see _runs); raises pydantic's ValidationError for what the contract
    refuses."""
    try:
        return _decode_raw(payload)
    except msgspec.MsgspecError:
        return _decode_raw(RawRecord.model_validate_json(payload).model_dump_json())


def _decode_raw(payload: bytes | str) -> list[RawRowsStruct]:
    try:
        pack = _ROWS.decode(payload)
    except msgspec.MsgspecError:
        return _decode_before_rows(payload)
    if rows_problem(pack.columns, pack.field_counts, pack.rows) is not None:
        raise msgspec.ValidationError("not a RawRows the contract accepts")  # it says why
    return [pack]


def _decode_before_rows(payload: bytes | str) -> list[RawRowsStruct]:
    try:
        pack = _PACK.decode(payload)
    except msgspec.MsgspecError:
        rows = _UNPACKED.decode(payload)
        return _runs(rows if isinstance(rows, list) else [rows], None)
    return _runs(pack.rows, pack.customer_ids)


def _runs(rows: list[RawSaleStruct], customer_ids: str | None) -> list[RawRowsStruct]:
    """Rows of the forms before RawRows as RawRows, one for each run of consecutive rows of
    one upload whose fields' names are all the start of one column list: a row's fields are
    then its columns zipped with its cells, in their order. A run keeps its first row's file
    name and receive time: no output carries them, and those forms had them per row. Ingest
    wrote nothing else, so a record is one run; before packs, its `columns` hold customer_id,
    each id in its row's cells. A pack's sealed ids go to each run, bound to the pack's first
    row and count: they open only when the pack is one run."""
    runs: list[RawRowsStruct] = []
    run: RawRowsStruct | None = None
    for row in rows:
        names = list(row.fields)
        if run is None or not _continues(run, row, names):
            run = RawRowsStruct(
                upload_id=row.upload_id,
                first_row=row.row_number,
                columns=names,
                column_count=row.column_count,
                source_filename=row.source_filename,
                received_at=row.received_at,
                customer_ids=customer_ids,
                field_counts=[],
                rows=[],
            )
            runs.append(run)
        elif len(names) > len(run.columns):
            run.columns = names
        if row.field_count != row.column_count:
            run.field_counts.append((len(run.rows), row.field_count))
        run.rows.append(list(row.fields.values()))
    return runs


def _continues(run: RawRowsStruct, row: RawSaleStruct, names: list[str]) -> bool:
    shared = min(len(names), len(run.columns))
    return (
        row.upload_id == run.upload_id
        and row.row_number == run.first_row + len(run.rows)
        and row.column_count == run.column_count
        and names[:shared] == run.columns[:shared]
    )


def _plain_decimal(text: str) -> bool:
    """Digits with at most one point, as the validator writes a price: a string that
    Decimal() and pydantic read alike. Anything else goes to the contract."""
    return text.isascii() and text.replace(".", "", 1).isdigit()


_HEX_DIGITS = "0123456789abcdef"


def _hex_digest(text: str | None) -> bool:
    """None, or 64 lowercase hex digits: the contract's `^[0-9a-f]{64}$`. A Struct field's
    Meta(pattern) ran a regular expression per record, 0.9 of the loader's 1.4 us decode."""
    return text is None or (len(text) == 64 and not text.strip(_HEX_DIGITS))


def decode_validated(payload: bytes) -> ValidatedSaleStruct:
    """A `sales.validated` record; raises pydantic's ValidationError for what the contract
    refuses. Its `price` and `amount` are then strings that Decimal() takes."""
    try:
        sale = _VALIDATED.decode(payload)
        if (
            _plain_decimal(sale.price)
            and _plain_decimal(sale.amount)
            and _hex_digest(sale.customer_hash)
        ):
            return sale
    except msgspec.MsgspecError:
        pass
    return _VALIDATED.decode(encode(decode(ValidatedSale, payload)))


def decode_rejected(payload: bytes) -> RejectedSaleStruct:
    """A `sales.rejected` record; raises pydantic's ValidationError for what the contract
    refuses."""
    try:
        return _REJECTED.decode(payload)
    except msgspec.MsgspecError:
        return _REJECTED.decode(encode(decode(RejectedSale, payload)))
