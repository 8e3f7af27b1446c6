"""The loader's native path (sales_native.SalesCopy) against its Python path, record by
record: a record it copies gives the row the Python decoder gives (read back from COPY's
binary form by an independent reader), and a record it leaves alone is the Python decoder's
to accept or refuse."""

import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from devstack.generate import raw_records
from loader.repository import sale_row
from pydantic import SecretStr, ValidationError
from sales_common.codec import RejectedSaleStruct, decode_raw, decode_validated, encode_struct
from sales_common.pii import CustomerHasher, PiiSettings
from sales_native import SalesCopy
from validator.config import RuleSettings
from validator.rules import PackRules

from tests.helpers import copied_sales

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1"))


def python_row(value: bytes) -> tuple[object, ...] | None:
    """The row the Python path copies (its upload id as the uuid column returns it, its
    decimals as numeric takes them), None when the decoder refuses the record."""
    try:
        row = sale_row(decode_validated(value))
    except (ValidationError, ValueError):
        return None
    try:
        upload = str(uuid.UUID(row[1]))
    except ValueError:  # COPY refuses it: only the Python path tries
        upload = row[1]
    price, amount = Decimal(row[5]), Decimal(row[7])
    return (row[0], upload, *row[2:5], price, row[6], amount, *row[8:])


def validated_records(count: int, now: datetime = NOW) -> list[bytes]:
    """sales.validated records as the validator writes them, from generated rows."""
    out = []
    for raw, ids in raw_records(count, seed=5):
        [decoded] = decode_raw(raw)
        rows = PackRules(decoded, RuleSettings(), HASHER, now)
        for index, customer_id in enumerate(ids):
            result = rows.validate(index, customer_id)
            if not isinstance(result, RejectedSaleStruct):
                out.append(encode_struct(result))
    return out


def test_the_validators_records_are_copied_as_the_python_path_copies_them() -> None:
    records = validated_records(5000)
    # A time on the second, and one before 2000: other fractions and epochs.
    records += validated_records(200, datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC))
    records += validated_records(200, datetime(1999, 12, 31, 23, 59, 59, 120000, tzinfo=UTC))
    copy = SalesCopy()
    uploads = [copy.append(value) for value in records]
    assert None not in uploads
    assert copy.rows == len(records)
    expected = [python_row(value) for value in records]
    assert copied_sales(copy.payload()) == expected
    assert uploads == [row[1] for row in expected if row is not None]


BASE = validated_records(1)[0]

# (what is replaced, by what): the validator never writes these, other writers of the
# contract might; each either copies as the Python path reads it or is left to it.
VARIANTS = [
    (b'"row_number":', b'"row_number": '),  # whitespace
    (b'"schema_version":1', b'"schema_version":2'),
    (b'{"schema_version":1,', b"{"),  # its default
    (b'"product":"', b'"product":"\\u00e9'),  # an escape
    (b'"product":"', b'"product":"\xc3\xa9 '),  # UTF-8 as it is
    (b'"product":"', b'"product":"\xc3('),  # not UTF-8
    (b'"product":"', b'"product":"\x01'),  # a control character
    (b'"product":"Halal', b'"product":"Halal\\"'),
    (b'"upload_id":"', b'"upload_id":"{'),
    (b"-0000-0000-0000-", b"0000-0000-0000-"),  # a UUID without one dash
    (b'"price":"', b'"price":"-'),
    (b'"price":"', b'"price":"1e3'),
    (b'"price":"', b'"price":".'),
    (b'"amount":"', b'"amount":"1.'),
    (b'"quantity":', b'"quantity":0'),
    (b'"quantity":', b'"quantity":-'),
    (b'"quantity":', b'"quantity":1.0,"x":'),
    (b'"pii_key_id":"k1"', b'"pii_key_id":null'),
    (b'"customer_hash":"', b'"customer_hash":"A'),
    (b"}", b"} "),
    (b"}", b"}x"),
    (b"}", b',"extra":1}'),
    (b'Z"}', b'+00:00"}'),
    (b'Z"}', b'1Z"}'),  # seven decimals of a second
    (b'Z"}', b'"}'),  # naive
]


def variants() -> list[bytes]:
    out = []
    for old, new in VARIANTS:
        assert old in BASE, old
        out.append(BASE.replace(old, new, 1))
    # Values at and past the edges of the row's integers, dates and times.
    for number in (b"1", b"2147483647", b"2147483648", b"01", b"9" * 12):
        out.append(BASE.replace(b'"row_number":', b'"row_number":' + number + b',"x":', 1))
        out.append(_with(BASE, b"row_number", number))
        out.append(_with(BASE, b"quantity", number))
    for day in (b'"2024-02-29"', b'"2023-02-29"', b'"0001-01-01"', b'"9999-12-31"', b"null",
                b'"2024-13-01"', b'"20240101"', b'"2024-1-01"'):  # fmt: skip
        out.append(_with(BASE, b"sale_date", day))
    for moment in (b'"2026-11-26T23:59:59Z"', b'"2026-11-26T24:00:00Z"', b'"2016-12-31T23:59:60Z"',
                   b'"0001-01-01T00:00:00.000001Z"', b'"9999-12-31T23:59:59.999999Z"',
                   b'"2026-11-26T12:00:01.5Z"', b'"2026-11-26t12:00:01Z"'):  # fmt: skip
        out.append(_with(BASE, b"validated_at", moment))
    for upload in (b'"7D1C2A4E-0000-4000-8000-00000000000A"', b'"not-a-uuid"'):
        out.append(_with(BASE, b"upload_id", upload))
    return out


def _with(record: bytes, key: bytes, value: bytes) -> bytes:
    """The record with `key`'s value (the text up to the next comma or brace) replaced."""
    start = record.index(b'"' + key + b'":') + len(key) + 3
    end = min(i for i in (record.find(b",", start), record.find(b"}", start)) if i >= 0)
    return record[:start] + value + record[end:]


@pytest.mark.parametrize("value", variants(), ids=lambda v: v.decode(errors="replace")[-60:])
def test_other_forms_are_copied_as_the_python_path_reads_them_or_left_to_it(value: bytes) -> None:
    copy = SalesCopy()
    upload = copy.append(value)
    expected = python_row(value)
    if upload is None:
        assert copy.rows == 0
        assert copied_sales(copy.payload()) == []
        return
    assert expected is not None, "copied a record the contract refuses"
    assert copied_sales(copy.payload()) == [expected]
    assert upload == value.split(b'"upload_id":"')[1].split(b'"')[0].decode()


def test_undo_takes_back_the_last_row_appended_and_no_other() -> None:
    first, second = validated_records(2)
    copy = SalesCopy()
    assert copy.append(first) is not None
    assert copy.append(b"not json") is None
    copy.undo()  # the last append appended nothing
    assert copy.rows == 1
    assert copy.append(second) is not None
    copy.undo()
    copy.undo()
    assert copy.rows == 1
    assert copied_sales(copy.payload()) == [python_row(first)]


def test_customer_hashes_are_the_copied_rows_hashes_in_order_through_undo() -> None:
    records = validated_records(300)
    records += [_with(r, b"customer_hash", b"null") for r in records[:20]]  # no customer id
    copy = SalesCopy()
    kept = []
    for n, value in enumerate(records):
        assert copy.append(value) is not None
        if n % 7 == 3:  # rows with and without a hash taken back
            copy.undo()
        else:
            kept.append(value)
    hashes = [decode_validated(value).customer_hash for value in kept]
    assert copy.customer_hashes() == "".join(h for h in hashes if h is not None)
    assert any(h is None for h in hashes)
    assert SalesCopy().customer_hashes() == ""


def python_totals(values: list[bytes]) -> dict[str, dict[tuple[object, ...], tuple[object, ...]]]:
    """What the merge's SQL adds to each aggregate for these records: amounts rounded to cents
    as numeric(14, 2) rounds them, then summed (in cents); a sale's day is its date, else the
    UTC day it was validated."""
    sums: dict[str, dict[tuple[object, ...], tuple[Decimal, int, int]]] = {}
    for value in values:
        sale = decode_validated(value)
        amount = Decimal(sale.amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
        day = sale.sale_date or sale.validated_at.astimezone(UTC).date()
        for table, key in (
            ("products", (sale.product,)),
            ("days", ((day - date(2000, 1, 1)).days, sale.product)),
            ("uploads", (sale.upload_id,)),
        ):
            a, q, n = sums.setdefault(table, {}).get(key, (Decimal(0), 0, 0))
            sums[table][key] = (a + amount, q + sale.quantity, n + 1)
    return {
        table: {key: (int(a * 100), q, n) for key, (a, q, n) in by_key.items()}
        for table, by_key in sums.items()
    }


def native_totals(copy: SalesCopy) -> dict[str, dict[tuple[object, ...], tuple[object, ...]]]:
    """SalesCopy.totals in python_totals' form (an upload's quantity is not summed)."""
    totals = copy.totals()
    assert totals is not None
    products, literals, uploads = totals  # columns: strict zips check their lengths
    days = [[int(v) for v in literal.strip("{}").split(",") if v] for literal in literals]
    names = products[0]
    return {
        "products": {(p,): (a, q, n) for p, a, q, n in zip(*products, strict=True)},
        "days": {(d, names[p - 1]): (a, q, n) for d, p, a, q, n in zip(*days, strict=True)},
        "uploads": {(u,): (a, None, n) for u, a, n in zip(*uploads, strict=True)},
    }


def test_totals_are_the_sums_the_merge_would_add() -> None:
    records = validated_records(3000)
    # No sale date: the day comes from validated_at, also on either side of 2000-01-01.
    for moment in (b'"1999-12-31T23:59:59.999999Z"', b'"2000-01-01T00:00:00Z"'):
        records += [_with(_with(r, b"sale_date", b"null"), b"validated_at", moment)
                    for r in records[:40]]  # fmt: skip
    # Amounts numeric(14, 2) rounds: half away from zero at the third decimal only.
    for amount in (b'"2.675"', b'"0.005"', b'"0.0049999"', b'"10"', b'".5"', b'"7.999"'):
        records += [_with(r, b"amount", amount) for r in records[:25]]
    copy = SalesCopy()
    assert all(copy.append(value) is not None for value in records)
    expected = python_totals(records)
    expected["uploads"] = {k: (a, None, n) for k, (a, _, n) in expected["uploads"].items()}
    assert native_totals(copy) == expected


def test_totals_follow_undo_and_give_up_past_their_integers() -> None:
    first, second = validated_records(2)
    copy = SalesCopy()
    copy.append(first)
    copy.append(second)
    copy.undo()
    assert native_totals(copy)["products"] == python_totals([first])["products"]
    assert copy.append(_with(second, b"amount", b'"' + b"9" * 18 + b'"')) is not None
    assert copy.totals() is None  # past bigint cents: the merge sums in SQL
    empty = SalesCopy().totals()
    assert empty == (([], [], [], []), ("{}", "{}", "{}", "{}", "{}"), ([], [], []))


DECIMALS = ["0", "0.00", "000.0100", "1", ".5", "7.", "10000", "12345.6789", "0.00005",
            "99999999.999", "100000000.005", "1" * 40 + ".25", "0." + "0" * 30 + "1"]  # fmt: skip


@pytest.mark.parametrize("text", DECIMALS)
def test_decimals_are_copied_as_numeric_exactly(text: str) -> None:
    value = _with(_with(BASE, b"price", f'"{text}"'.encode()), b"amount", f'"{text}"'.encode())
    copy = SalesCopy()
    assert copy.append(value) is not None
    [row] = copied_sales(copy.payload())
    assert row[5] == row[7] == Decimal(text)
    assert row == python_row(value)
