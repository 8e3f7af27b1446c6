"""The native path (libs/native) against the Python rules, row by row: a row it
encodes is one the rules accept, to the byte; a row it leaves alone is decided by the rules.
Rows are drawn from every limit and odd form of each field, under several rule settings."""

import dataclasses
import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from pydantic import SecretStr
from sales_common.codec import RawRowsStruct, ValidatedSaleStruct, encode_struct
from sales_common.pii import CustomerHasher, PiiSettings
from validator import rules
from validator.config import RuleSettings
from validator.rules import PackRules, native_rows

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
STAMP = msgspec.json.encode(NOW).decode()
PII = PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1")
COLUMNS = ["product", "price", "quantity", "date", "transaction_id"]

# fmt: off
PRODUCTS = ["Halal beef", " Halal lamb ", "Halal", "halal x", "Beef", "", "  ", 'Halal "q"',
            "Halal \\ x", "Halal ☃", "Halal\tx", "Halal\x7fx", "\x1cHalal y\x1f", "Org tea"]
PRICES = ["1", "1.0", "1.00", "1.005", ".5", "5.", ".", "0", "0.00", "0.01", "-1", "+1", "1e3",
          "NaN", "1_000", "9999999999.99", "10000000000.00", "9999999999.991", "007.50",
          " 3.5 ", "", "١٢", "1.2.3", "49.99", "50", "50.01", "123456789012345678901", "2.5",
          "0.5", "0.50", "0.51", "1000", "1000.0", "1000.01", "99999999999", "9999999999999.99",
          "9999999999999999"]
QUANTITIES = ["1", "100", "101", "0", "-1", "+5", "007", "5.0", "", "99999999999999999999",
              "٣", " 7 ", "4", "5", "10", "11", "999999999999"]
DATES = ["", "2024-02-29", "2023-02-29", "2024-13-01", "20240101", "2024-1-01", "0000-01-01",
         "9999-12-31", " 2024-01-01 ", "2024-04-31", "2024-W01-1", "2024-12-31T00:00"]
TRANSACTIONS = ["", "T-1", " T-2 ", 'T"3', "T\\4", "Tü", "  "]
CUSTOMERS = [None, "", " ", "C1", " C2 ", "Ćü", "C\x1f", "x" * 100]
# fmt: on

SETTINGS = [
    RuleSettings(),
    RuleSettings(product_prefix="Org", price_max=Decimal(50), quantity_min=5, quantity_max=10),
    RuleSettings(price_min_exclusive=Decimal("-1"), price_max_decimals=1),
    RuleSettings(price_min_exclusive=Decimal("0.5"), price_max_decimals=3),
    RuleSettings(price_max=Decimal("1E+3"), price_max_decimals=0),
    RuleSettings(quantity_max=10**12),  # amounts of 24 digits
    # Amounts about Decimal's 28 digits: exact below, rounded (or refused) by Python above.
    RuleSettings(price_max=Decimal(10**17), quantity_max=10**12),
]


def random_rows(seed: int, count: int) -> tuple[list[list[str]], list[str | None]]:
    pick = random.Random(seed).choice
    rows, ids = [], []
    for _ in range(count):
        cells = [pick(PRODUCTS), pick(PRICES), pick(QUANTITIES), pick(DATES), pick(TRANSACTIONS)]
        rows.append(cells[: pick([5, 5, 5, 5, 3, 2])])  # some short rows
        ids.append(pick(CUSTOMERS))
    return rows, ids


def pack(
    rows: list[list[str]],
    counts: list[tuple[int, int]],
    columns: list[str] = COLUMNS,
    first_row: int = 41,
    upload_id: str = "7d1c2a4e-0000-4000-8000-000000000003",
) -> RawRowsStruct:
    return RawRowsStruct(
        upload_id=upload_id,
        first_row=first_row,
        columns=columns,
        column_count=len(columns) + 1,  # and customer_id, taken out by ingest
        source_filename="f.csv",
        received_at=NOW,
        field_counts=counts,
        rows=rows,
    )


@pytest.mark.parametrize("settings", SETTINGS, ids=range(len(SETTINGS)))
@pytest.mark.parametrize("key", [b"p" * 32, b"k" * 100], ids=["short_key", "long_key"])
def test_a_row_the_native_path_encodes_is_one_the_rules_accept_to_the_byte(
    settings: RuleSettings, key: bytes
) -> None:
    pii = PiiSettings(hmac_key=SecretStr(key.decode()), key_id="k9")
    native = native_rows(settings, pii)
    assert native is not None
    rows, ids = random_rows(seed=len(key), count=12_000)
    counts = [(n, 7) for n in range(0, len(rows), 97)]  # a field too many: rejected
    # ids are 6th of 6 columns: a row of 5 cells (and its id) has every field
    counts += [(n, len(cells) + 1) for n, cells in enumerate(rows) if len(cells) != 5]
    counts.sort()
    packed = pack(rows, counts)
    pack_rules = PackRules(packed, settings, CustomerHasher(pii), NOW)
    encoded = pack_rules.encode_valid(native, ids, STAMP)
    assert len(encoded) == len(rows)
    assert agree(pack_rules, encoded, ids) > 0  # test_plain_valid_rows_...: which ones


def agree(
    pack_rules: PackRules,
    encoded: list[tuple[bytes, bytes] | None],
    ids: list[str | None] | None,
) -> int:
    """Asserts every row the native path encoded is the Python rules' record, byte for byte;
    how many it encoded."""
    taken = 0
    for index, sale in enumerate(encoded):
        customer_id = None if ids is None else ids[index]
        try:
            python = pack_rules.validate(index, customer_id)
        except ArithmeticError:  # an amount past Decimal's precision (a price_max too large)
            assert sale is None
            continue
        if sale is None:
            continue
        taken += 1
        assert type(python) is ValidatedSaleStruct, (pack_rules.fields(index), customer_id)
        assert sale == (python.event_id.encode(), encode_struct(python)), python
    return taken


@pytest.mark.parametrize(
    "columns",
    [
        ["quantity", "transaction_id", "price", "product"],  # another order, no date
        ["price", "product", "note", "quantity", "date", "transaction_id"],  # one it ignores
        ["product", "price", "date"],  # no quantity: every row rejected
    ],
)
def test_columns_in_any_order_or_missing_read_as_the_rules_read_them(columns: list[str]) -> None:
    native = native_rows(RuleSettings(), PII)
    assert native is not None
    rows, _ = random_rows(seed=3, count=2000)
    by_name = [dict(zip(COLUMNS, cells, strict=False)) for cells in rows]
    shuffled = [[fields.get(name, "n") for name in columns] for fields in by_name]
    pack_rules = PackRules(pack(shuffled, [], columns), RuleSettings(), CustomerHasher(PII), NOW)
    taken = agree(pack_rules, pack_rules.encode_valid(native, None, STAMP), None)
    assert (taken > 0) == ("quantity" in columns)


@pytest.mark.parametrize("first_row", [2**31, 2**63, 2**64 - 2, 2**64 - 1, 2**64, 2**70])
def test_row_numbers_past_its_integers_are_left_to_the_python_rules(first_row: int) -> None:
    native = native_rows(RuleSettings(), PII)
    assert native is not None
    rows = [["Halal a", "1", "1", "", ""], ["Halal b", "2", "2", "", ""]]
    pack_rules = PackRules(
        pack(rows, [], first_row=first_row), RuleSettings(), CustomerHasher(PII), NOW
    )
    encoded = pack_rules.encode_valid(native, None, STAMP)
    assert agree(pack_rules, encoded, None) == (2 if first_row + 2 <= 2**64 - 1 else 0)


def test_an_upload_id_json_would_escape_leaves_every_row_to_the_python_rules() -> None:
    native = native_rows(RuleSettings(), PII)
    assert native is not None
    rows = [["Halal a", "1", "1", "", ""]]
    odd = PackRules(pack(rows, [], upload_id='u"1'), RuleSettings(), CustomerHasher(PII), NOW)
    assert odd.encode_valid(native, None, STAMP) == [None]


def test_plain_valid_rows_all_take_the_native_path() -> None:
    native = native_rows(RuleSettings(), PII)
    assert native is not None
    rows = [
        [product, price, quantity, date, transaction]
        for product, price, quantity, date, transaction in itertools.product(
            ["Halal beef", " Halal lamb "],
            ["1", "0.01", "2.5", "9999999999.99", " 007.50 ", ".5", "5."],
            ["1", "100", " 42 "],
            ["", "2024-02-29", "9999-12-31"],
            ["", "T-1", " T-2 "],
        )
    ]
    ids: list[str | None] = [["C1", None, "", " C2 "][n % 4] for n in range(len(rows))]
    pack_rules = PackRules(pack(rows, []), RuleSettings(), CustomerHasher(PII), NOW)
    encoded = pack_rules.encode_valid(native, ids, STAMP)
    for index, sale in enumerate(encoded):
        python = pack_rules.validate(index, ids[index])
        assert type(python) is ValidatedSaleStruct
        assert sale == (python.event_id.encode(), encode_struct(python)), rows[index]


def test_the_native_path_turns_itself_off_when_the_rules_table_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert native_rows(RuleSettings(), PII) is not None
    price = rules.FIELD_RULES[1]
    fewer = dataclasses.replace(price, checks=price.checks[:2])
    monkeypatch.setattr(rules, "FIELD_RULES", (rules.FIELD_RULES[0], fewer, *rules.FIELD_RULES[2:]))
    assert native_rows(RuleSettings(), PII) is None


def test_limits_it_cannot_hold_leave_every_row_to_the_python_rules() -> None:
    assert native_rows(RuleSettings(price_max=Decimal("1E+30")), PII) is None
    assert native_rows(RuleSettings(price_max_decimals=-1), PII) is None
    assert native_rows(RuleSettings(quantity_max=2**70), PII) is None
