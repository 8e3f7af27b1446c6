from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from pydantic import SecretStr, ValidationError
from sales_common.codec import ValidatedSaleStruct, decode_raw, encode_struct
from sales_common.events import RawRows, RejectedSale, ValidatedSale, decode, encode
from sales_common.pii import CustomerHasher, PiiSettings
from validator import rules
from validator.config import RuleSettings

NOW = datetime(2026, 11, 26, tzinfo=UTC)
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1"))
RULES = RuleSettings()


class Row(NamedTuple):
    """A row as the validator holds it: in a `RawRows` record, its customer id opened."""

    record: RawRows
    customer_id: str | None


def raw_row(fields: dict[str, str], row: int = 1, columns: int | None = None) -> Row:
    column_count = columns or len(fields)
    cells = {name: value for name, value in fields.items() if name != "customer_id"}
    record = RawRows(
        upload_id="u1",
        first_row=row,
        columns=list(cells),
        column_count=column_count,
        source_filename="sales.csv",
        received_at=NOW,
        field_counts=[] if len(fields) == column_count else [(0, len(fields))],
        rows=[list(cells.values())],
    )
    return Row(record, fields.get("customer_id"))


def raw(**fields: str) -> Row:
    return raw_row(fields)


def validate(
    raw: Row, settings: RuleSettings, hasher: CustomerHasher, now: datetime
) -> ValidatedSale | RejectedSale:
    """The rules as the validator runs them (the record decoded and the result encoded by the
    hot path), read back through the contract, as every reader of the topics reads them."""
    [decoded] = decode_raw(encode(raw.record))
    result = rules.PackRules(decoded, settings, hasher, now).validate(0, raw.customer_id)
    if isinstance(result, ValidatedSaleStruct):
        return decode(ValidatedSale, encode_struct(result))
    return decode(RejectedSale, encode_struct(result))


def rules_broken(result: ValidatedSale | RejectedSale) -> list[tuple[str, str]]:
    assert isinstance(result, RejectedSale)
    return [(v.field, v.rule) for v in result.violations]


def test_valid_row_becomes_a_sale_with_exact_amount() -> None:
    result = validate(raw(product="Halal Laptop", price="999.99", quantity="2"), RULES, HASHER, NOW)
    assert isinstance(result, ValidatedSale)
    assert result.amount == Decimal("1999.98")
    assert result.price == Decimal("999.99")
    assert result.customer_hash is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"product": "", "price": "29.99", "quantity": "3"}, [("product", "required")]),
        (
            {"product": "Monitor", "price": "invalid", "quantity": "2"},
            [("product", "prefix"), ("price", "number")],
        ),
        (
            {"product": "Headphones", "price": "5.00", "quantity": "150"},
            [("product", "prefix"), ("quantity", "range")],
        ),
        (
            {"product": "Halal Laptop", "price": "999.99", "quantity": "invalid"},
            [("quantity", "integer")],
        ),
        ({"product": "Halal X", "price": "0", "quantity": "1"}, [("price", "positive")]),
        ({"product": "Halal X", "price": "-3.00", "quantity": "1"}, [("price", "positive")]),
        ({"product": "Halal X", "price": "3.456", "quantity": "1"}, [("price", "decimals")]),
        ({"product": "Halal X", "price": "1", "quantity": "0"}, [("quantity", "range")]),
        ({"product": "Halal X", "price": "1", "quantity": "2.5"}, [("quantity", "integer")]),
        (
            {"product": "Halal X", "price": "", "quantity": ""},
            [("price", "required"), ("quantity", "required")],
        ),
        ({"product": "halal x", "price": "1", "quantity": "1"}, [("product", "prefix")]),
        ({"product": "Halal X", "price": "NaN", "quantity": "1"}, [("price", "number")]),
        ({"product": "Halal X", "price": "1e3", "quantity": "1"}, [("price", "number")]),
        # Larger than the sales table holds; past 27 digits Decimal.quantize itself raised.
        ({"product": "Halal X", "price": "10000000000", "quantity": "1"}, [("price", "maximum")]),
        ({"product": "Halal X", "price": "1" + "0" * 30, "quantity": "1"}, [("price", "maximum")]),
    ],
)
def test_every_broken_rule_is_reported(
    fields: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert rules_broken(validate(raw_row(fields), RULES, HASHER, NOW)) == expected


def test_the_largest_storable_price_is_a_sale() -> None:
    result = validate(
        raw(product="Halal X", price="9999999999.99", quantity="100"), RULES, HASHER, NOW
    )
    assert isinstance(result, ValidatedSale)
    assert result.amount == Decimal("999999999999.00")


def test_ragged_row_is_rejected_with_field_count() -> None:
    result = validate(raw_row({"product": "Halal X", "price": "1"}, columns=3), RULES, HASHER, NOW)
    assert ("row", "field_count") in rules_broken(result)


def test_rules_are_configurable() -> None:
    rules = RuleSettings(product_prefix="Organic", quantity_max=1000)
    result = validate(raw(product="Organic Tea", price="1", quantity="500"), rules, HASHER, NOW)
    assert isinstance(result, ValidatedSale)


def test_customer_id_is_replaced_by_hmac_everywhere() -> None:
    good = validate(
        raw(product="Halal X", price="1", quantity="1", customer_id="CUST-1", date="2026-11-01"),
        RULES,
        HASHER,
        NOW,
    )
    assert isinstance(good, ValidatedSale)
    assert good.customer_hash == HASHER.hash("CUST-1")
    assert good.pii_key_id == "k1"
    assert good.sale_date == date(2026, 11, 1)
    bad = validate(
        raw(product="X", price="1", quantity="1", customer_id="CUST-1"), RULES, HASHER, NOW
    )
    assert isinstance(bad, RejectedSale)
    assert bad.fields["customer_id"] == HASHER.hash("CUST-1")
    assert "CUST-1" not in bad.model_dump_json()


def test_transaction_id_gives_the_event_id() -> None:
    a = validate(
        raw(product="Halal X", price="1", quantity="1", transaction_id="T-1"), RULES, HASHER, NOW
    )
    b = validate(
        raw_row(
            {"product": "Halal X", "price": "1", "quantity": "1", "transaction_id": "T-1"}, row=7
        ),
        RULES,
        HASHER,
        NOW,
    )
    assert isinstance(a, ValidatedSale)
    assert isinstance(b, ValidatedSale)
    assert a.event_id == b.event_id


def test_bad_date_is_reported() -> None:
    result = validate(
        raw(product="Halal X", price="1", quantity="1", date="2026-13-05"), RULES, HASHER, NOW
    )
    assert rules_broken(result) == [("date", "date")]


def test_a_quantity_minimum_below_the_contract_is_refused() -> None:
    # The contract's sales have quantity >= 1; the hot path writes what the rules let through.
    with pytest.raises(ValidationError):
        RuleSettings(quantity_min=0)
