"""The rule table piece by piece: parsers, checks and the messages the table gives them."""

import re
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from validator.config import RuleSettings
from validator.rules import (
    FIELD_RULES,
    Check,
    FieldRules,
    check_row,
    field_count,
    has_allowed_decimals,
    has_prefix,
    is_in_range,
    is_positive,
    parse_date,
    parse_price,
    parse_quantity,
    plan,
)

RULES = RuleSettings()
# The grammar the parsers implement, as the regular expressions they replace.
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
INTEGER = re.compile(r"[+-]?\d+")
TEXTS = [
    *("0", "5", "+5", "-5", "007", "1.5", "5.", ".5", "+.5", "-5.", "1.230", "999.99"),
    *("", ".", "+", "-", "+.", "+-1", "--1", ".+5", "5.-", "1..", "1.2.3", "1 2", "1e3", "1E3"),
    *("NaN", "nan", "Infinity", "inf", "1_000", "0x10"),
    # Arabic-Indic and fullwidth digits are digits to both; a superscript or a fraction is not.
    *("\u0661\u0662", "\u0661.\u0665\u0660", "+\u0663", "\uff15", "\u00b2", "\u00bd"),
]


def spec(field: str) -> FieldRules[Any]:
    return next(s for s in FIELD_RULES if s.field == field)


def check(field: str, rule: str) -> Check[Any]:
    return next(c for c in spec(field).checks if c.rule == rule)


def test_the_table_names_every_field_and_rule_in_reporting_order() -> None:
    table = [
        (s.field, s.required, s.parse.rule if s.parse else None, [c.rule for c in s.checks])
        for s in FIELD_RULES
    ]
    assert table == [
        ("product", True, None, ["prefix"]),
        ("price", True, "number", ["positive", "maximum", "decimals"]),
        ("quantity", True, "integer", ["range"]),
        ("date", False, "date", []),
    ]


def test_isdecimal_is_the_digit_class_of_the_regular_expressions() -> None:
    digit = re.compile(r"\d")
    assert all(
        bool(digit.fullmatch(c)) == c.isdecimal() for c in map(chr, range(sys.maxunicode + 1))
    )


@pytest.mark.parametrize(
    ("parse", "grammar", "convert"),
    [(parse_price, NUMBER, Decimal), (parse_quantity, INTEGER, int)],
    ids=["price", "quantity"],
)
@pytest.mark.parametrize("text", TEXTS)
def test_parsers_take_exactly_what_their_grammar_matches(
    parse: Callable[[str], object],
    grammar: re.Pattern[str],
    convert: Callable[[str], object],
    text: str,
) -> None:
    value = parse(text)
    assert (value is not None) == bool(grammar.fullmatch(text))
    if value is not None:
        assert value == convert(text)


def test_parse_date_takes_iso_dates() -> None:
    assert parse_date("2026-11-01") == date(2026, 11, 1)
    assert parse_date("2026-13-05") is None
    assert parse_date("01/11/2026") is None


def test_prefix_is_case_sensitive_and_configurable() -> None:
    assert has_prefix("Halal Tea", "Halal Tea", RULES)
    assert not has_prefix("halal tea", "halal tea", RULES)
    assert has_prefix("Organic Tea", "Organic Tea", RuleSettings(product_prefix="Organic"))


@pytest.mark.parametrize(
    ("text", "positive"), [("0.01", True), ("0", False), ("-0.00", False), ("-3", False)]
)
def test_price_must_be_above_the_minimum(text: str, positive: bool) -> None:
    assert is_positive(Decimal(text), text, RULES) is positive
    assert not is_positive(Decimal("1"), "1", RuleSettings(price_min_exclusive=Decimal(1)))


@pytest.mark.parametrize(
    ("text", "allowed"),
    [("5", True), ("5.", True), (".5", True), ("999.99", True), ("1.230", False), ("-.001", False)],
)
def test_decimals_are_counted_as_written(text: str, allowed: bool) -> None:
    # Decimal's own count: the exponent of the parsed value.
    assert (-int(Decimal(text).as_tuple().exponent) <= 2) is allowed
    assert has_allowed_decimals(Decimal(text), text, RULES) is allowed
    assert has_allowed_decimals(Decimal("1.230"), "1.230", RuleSettings(price_max_decimals=3))


@pytest.mark.parametrize(("quantity", "inside"), [(0, False), (1, True), (100, True), (101, False)])
def test_quantity_range_includes_both_limits(quantity: int, inside: bool) -> None:
    assert is_in_range(quantity, str(quantity), RULES) is inside


def test_messages_name_the_configured_limits() -> None:
    assert check("product", "prefix").message("Pork", RULES) == "product must start with 'Halal'"
    assert check("price", "positive").message(Decimal(0), RULES) == "price must be greater than 0"
    assert check("price", "decimals").message(Decimal("1.234"), RULES) == (
        "price has more than 2 decimals"
    )
    in_range = check("quantity", "range")
    assert in_range.message(150, RULES) == "quantity 150 is above the allowed range 1..100"
    assert in_range.message(0, RuleSettings(quantity_min=5, quantity_max=9)) == (
        "quantity 0 is below the allowed range 5..9"
    )


def test_parse_messages_quote_at_most_40_characters() -> None:
    price = spec("price").parse
    assert price is not None
    assert price.message("abc") == "price is not a number: 'abc'"
    assert price.message("x" * 100) == f"price is not a number: {'x' * 40!r}"
    quantity, day = spec("quantity").parse, spec("date").parse
    assert quantity is not None
    assert day is not None
    assert quantity.message("2.5") == "quantity is not an integer: '2.5'"
    assert day.message("2026-13-05") == "date is not YYYY-MM-DD: '2026-13-05'"


def test_field_count_compares_fields_with_columns() -> None:
    violation = field_count(3, 2)
    assert (violation.field, violation.rule, violation.message) == (
        "row",
        "field_count",
        "expected 3 fields, found 2",
    )


def test_check_row_stops_a_field_at_its_first_failed_stage() -> None:
    fields = {"product": " ", "price": "-1.234", "quantity": "x", "date": ""}
    violations, parsed = check_row(list(fields.values()), plan(list(fields)), 4, 4, RULES)
    assert [(v.field, v.rule, v.message) for v in violations] == [
        ("product", "required", "product is missing"),
        ("price", "positive", "price must be greater than 0"),
        ("price", "decimals", "price has more than 2 decimals"),
        ("quantity", "integer", "quantity is not an integer: 'x'"),
    ]
    assert parsed == {"price": Decimal("-1.234")}


def test_check_row_reads_each_field_at_its_columns_place() -> None:
    """Whatever the header's order; a column the file lacks, or a row too short to reach it,
    reads as a blank field."""
    columns = ["quantity", "note", "price", "product", "date"]
    steps = plan(columns)
    assert [(place, name) for place, name, *_ in steps] == [
        (3, "product"),
        (2, "price"),
        (0, "quantity"),
        (4, "date"),
    ]
    cells = ["3", "ignored", "1.50", "Halal A", "2026-11-01"]
    violations, parsed = check_row(cells, steps, 5, 5, RULES)
    assert violations == []
    assert parsed == {
        "product": "Halal A",
        "price": Decimal("1.50"),
        "quantity": 3,
        "date": date(2026, 11, 1),
    }
    violations, parsed = check_row(cells[:3], steps, 3, 5, RULES)
    assert [(v.field, v.rule) for v in violations] == [
        ("row", "field_count"),
        ("product", "required"),
    ]
    assert parsed == {"price": Decimal("1.50"), "quantity": 3}
    no_date = plan(["product", "price", "quantity"])
    assert check_row(["Halal A", "1", "2"], no_date, 3, 3, RULES)[0] == []
