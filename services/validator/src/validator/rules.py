"""Pure business rules: a raw row in, a validated sale or a rejection with every reason out.

The rules are a table, `FIELD_RULES`: per field, whether it is required, how its text is
parsed (text that does not parse breaks a rule of its own) and the checks on the parsed
value. Each entry names its rule and its message; each check is a small function of the value
(and the text it was written as) and the `RuleSettings`, so every limit stays a setting
(`VALIDATOR_RULES__*`).

This runs for every row (tens of thousands a second per core): the parsers use str methods
rather than regular expressions, check_row walks the table as plain tuples (`plan`), and a row
is read as its cells, each field at its column's place in the record (`PackRules`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sales_common.codec import (
    RawRowsStruct,
    RejectedSaleStruct,
    ValidatedSaleStruct,
    ViolationStruct,
)
from sales_common.events import event_id_for
from sales_common.pii import CustomerHasher, PiiSettings
from sales_common.rejections import rejected_row
from sales_native import ValidRows

from validator.config import RuleSettings

T = TypeVar("T")

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Parse(Generic[T]):
    """How a field's text becomes a value; text that `parse` refuses (None) breaks `rule`."""

    rule: str
    parse: Callable[[str], T | None]
    message: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Check(Generic[T]):
    """A rule on a field's parsed value, broken when `passes` is false. `passes` also gets the
    text the value was parsed from: some rules are about how a value is written."""

    rule: str
    passes: Callable[[T, str, RuleSettings], bool]
    message: Callable[[T, RuleSettings], str]


@dataclass(frozen=True, slots=True)
class FieldRules(Generic[T]):
    """Every rule of one field, in the order they are reported.

    A blank required field breaks `required` ("<field> is missing") and nothing else; a blank
    optional field breaks nothing; a field that does not parse breaks its parse rule and no
    check; every failed check is reported.
    """

    field: str
    parse: Parse[T] | None = None  # None: the stripped text is the value
    checks: tuple[Check[T], ...] = ()
    required: bool = True


# Parsers: None means "not this kind of value". They raise nothing of their own, so an
# error they do raise (int() of a 5,000-digit string) still makes the record unreadable.
# str.isdecimal() is true for exactly the characters the regular expression \d matches
# (Unicode category Nd), at a tenth of the cost of a match.
def parse_price(text: str) -> Decimal | None:
    r"""A plain decimal, `[+-]?(\d+(\.\d*)?|\.\d+)`: Decimal() alone would also take "1e3",
    "NaN" and "1_000"."""
    # The usual unsigned case first; the sign, if any, must come before the point.
    if text.replace(".", "", 1).isdecimal() or (
        text[:1] in "+-" and text[1:].replace(".", "", 1).isdecimal()
    ):
        return Decimal(text)
    return None


def parse_quantity(text: str) -> int | None:
    r"""An integer, `[+-]?\d+`: int() alone would also take "1_000"."""
    if text.isdecimal() or (text[:1] in "+-" and text[1:].isdecimal()):
        return int(text)
    return None


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# Checks: True when the value keeps the rule.
def has_prefix(product: str, _text: str, rules: RuleSettings) -> bool:
    return product.startswith(rules.product_prefix)


def is_positive(price: Decimal, _text: str, rules: RuleSettings) -> bool:
    return price > rules.price_min_exclusive


def is_at_most_max(price: Decimal, _text: str, rules: RuleSettings) -> bool:
    return price <= rules.price_max


def has_allowed_decimals(_price: Decimal, text: str, rules: RuleSettings) -> bool:
    # As written: "1.230" has 3 decimals although it equals 1.23. The text parse_price took
    # gives the Decimal's exponent at a fraction of the cost of Decimal.as_tuple().
    point = text.find(".")
    return point < 0 or len(text) - point - 1 <= rules.price_max_decimals


def is_in_range(quantity: int, _text: str, rules: RuleSettings) -> bool:
    return rules.quantity_min <= quantity <= rules.quantity_max


def _range_message(quantity: int, rules: RuleSettings) -> str:
    direction = "above" if quantity > rules.quantity_max else "below"
    return (
        f"quantity {quantity} is {direction} the allowed range "
        f"{rules.quantity_min}..{rules.quantity_max}"
    )


FIELD_RULES: tuple[FieldRules[Any], ...] = (
    FieldRules(
        "product",
        checks=(
            Check(
                "prefix", has_prefix, lambda _, r: f"product must start with '{r.product_prefix}'"
            ),
        ),
    ),
    FieldRules(
        "price",
        parse=Parse("number", parse_price, lambda text: f"price is not a number: {text[:40]!r}"),
        checks=(
            Check(
                "positive",
                is_positive,
                lambda _, r: f"price must be greater than {r.price_min_exclusive}",
            ),
            Check(
                "maximum",
                is_at_most_max,
                lambda _, r: f"price must be at most {r.price_max}",
            ),
            Check(
                "decimals",
                has_allowed_decimals,
                lambda _, r: f"price has more than {r.price_max_decimals} decimals",
            ),
        ),
    ),
    FieldRules(
        "quantity",
        parse=Parse(
            "integer", parse_quantity, lambda text: f"quantity is not an integer: {text[:40]!r}"
        ),
        checks=(Check("range", is_in_range, _range_message),),
    ),
    FieldRules(
        "date",
        parse=Parse("date", parse_date, lambda text: f"date is not YYYY-MM-DD: {text[:40]!r}"),
        required=False,
    ),
)


# What check_row walks: FIELD_RULES as plain tuples, each with the place of its field among a
# pack's columns (`plan`). Unpacking an exact tuple is several times cheaper than reading
# attributes (or unpacking a NamedTuple): ~0.3 us of a ~10 us row.
_CheckStep = tuple[
    str, Callable[[Any, str, RuleSettings], bool], Callable[[Any, RuleSettings], str]
]
_Step = tuple[int, str, Parse[Any] | None, tuple[_CheckStep, ...], bool]
Plan = tuple[_Step, ...]
_RULES: tuple[tuple[str, Parse[Any] | None, tuple[_CheckStep, ...], bool], ...] = tuple(
    (
        spec.field,
        spec.parse,
        tuple((check.rule, check.passes, check.message) for check in spec.checks),
        spec.required,
    )
    for spec in FIELD_RULES
)
# The place of a column a pack does not have: past every row's cells, so its text is "".
_ABSENT = sys.maxsize


def plan(columns: Sequence[str]) -> Plan:
    """The rules of FIELD_RULES for rows of these columns (cells in this order)."""
    place = {name: index for index, name in enumerate(columns)}
    return tuple(
        (place.get(name, _ABSENT), name, parse, checks, required)
        for name, parse, checks, required in _RULES
    )


# The places of the columns the native path reads, in its order (sales_native.ValidRows).
_NATIVE_COLUMNS = ("product", "price", "quantity", "date", "transaction_id")
Places = tuple[int, int, int, int, int]


# Every record of an upload has its columns: what the rules need of them is worked out once
# (2.5 -> 0.6-0.9 us a record, most of a record's own cost when it holds a few rows).
@functools.lru_cache(maxsize=256)
def _layout(columns: tuple[str, ...]) -> tuple[Plan, Places, int | None]:
    """plan(columns), the places the native path reads (transaction_id's last) and the place
    of customer_id (None: absent)."""
    place = {name: index for index, name in enumerate(columns)}
    product, price, quantity, day, transaction = (
        place.get(name, _ABSENT) for name in _NATIVE_COLUMNS
    )
    return plan(columns), (product, price, quantity, day, transaction), place.get("customer_id")


# FIELD_RULES as the native path (libs/native) knows them: per field its parse
# rule, checks and whether it is required. It runs only while FIELD_RULES is this table, so a
# rule added or removed here turns it off instead of letting the two disagree.
# tests/validator/test_native.py compares both paths row by row, at every limit.
NATIVE_RULES = (
    ("product", None, ("prefix",), True),
    ("price", "number", ("positive", "maximum", "decimals"), True),
    ("quantity", "integer", ("range",), True),
    ("date", "date", (), False),
)
_I64 = range(-(2**63), 2**63)
_U64_MAX = 2**64 - 1


def native_rows(rules: RuleSettings, pii: PiiSettings) -> ValidRows | None:
    """The native path for these rules and this hashing key, or None where it cannot serve
    (FIELD_RULES changed, a limit too large for it): the Python rules then take every row."""
    table = tuple(
        (
            spec.field,
            spec.parse.rule if spec.parse else None,
            tuple(check.rule for check in spec.checks),
            spec.required,
        )
        for spec in FIELD_RULES
    )
    minimum = rules.price_min_exclusive.as_integer_ratio()
    maximum = rules.price_max.as_integer_ratio()
    limits = (*minimum, *maximum, rules.quantity_min, rules.quantity_max)
    if (
        table != NATIVE_RULES
        or rules.price_max_decimals < 0
        or not all(limit in _I64 for limit in limits)
    ):
        return None
    return ValidRows(
        rules.product_prefix,
        minimum,
        maximum,
        min(rules.price_max_decimals, 2),  # it leaves a price of more decimals to Python
        rules.quantity_min,
        rules.quantity_max,
        pii.hmac_key.get_secret_value().encode(),
        pii.key_id,
    )


def field_count(column_count: int, found: int) -> ViolationStruct:
    """The one rule on the row rather than a field, broken when the row has not as many fields
    as the header has columns."""
    return ViolationStruct(
        field="row",
        rule="field_count",
        message=f"expected {column_count} fields, found {found}",
    )


def check_row(
    cells: list[str], plan: Plan, found: int, column_count: int, rules: RuleSettings
) -> tuple[list[ViolationStruct], dict[str, Any]]:
    """Every rule the row breaks (its cells, in the order `plan` was made for; `found` fields
    in the CSV), and the parsed values of the fields that parsed, by field."""
    violations: list[ViolationStruct] = []
    if found != column_count:
        violations.append(field_count(column_count, found))
    parsed: dict[str, Any] = {}
    width = len(cells)
    for place, name, parse, checks, required in plan:
        text = cells[place].strip() if place < width else ""
        if not text:
            if required:
                violations.append(
                    ViolationStruct(field=name, rule="required", message=f"{name} is missing")
                )
            continue
        if parse is None:
            value: Any = text
        else:
            value = parse.parse(text)
            if value is None:
                violations.append(
                    ViolationStruct(field=name, rule=parse.rule, message=parse.message(text))
                )
                continue
        for rule, passes, message in checks:
            if not passes(value, text, rules):
                violations.append(
                    ViolationStruct(field=name, rule=rule, message=message(value, rules))
                )
        parsed[name] = value
    return violations, parsed


class PackRules:
    """The rules as they read the rows of one record (`RawRowsStruct`): each field's place
    among its columns is looked up once, and a row is read as its cells, by place. Only a
    rejected row becomes a dict of fields: a RawSaleStruct built per row (its fields dict)
    cost more than the record's whole decoding saved (docs/BENCHMARKS.md)."""

    __slots__ = (
        "_column_count",
        "_columns",
        "_counts",
        "_first_row",
        "_hasher",
        "_now",
        "_places",
        "_plan",
        "_rows",
        "_rules",
        "_transaction",
        "customer_column",
        "upload_id",
    )

    def __init__(
        self, pack: RawRowsStruct, rules: RuleSettings, hasher: CustomerHasher, now: datetime
    ) -> None:
        self._columns = pack.columns
        self._rows = pack.rows
        self._first_row = pack.first_row
        self._column_count = pack.column_count
        self._counts = dict(pack.field_counts)
        # customer_column: only in what ingest wrote before packs, a column of customer ids,
        # each in clear or sealed on its own; ingest seals a record's ids together.
        self._plan, self._places, self.customer_column = _layout(tuple(pack.columns))
        self._transaction = self._places[-1]
        self._rules, self._hasher, self._now = rules, hasher, now
        self.upload_id = pack.upload_id

    def row_number(self, index: int) -> int:
        return self._first_row + index

    def cell(self, index: int, place: int) -> str | None:
        """The row's value in the column at `place`, None when the row is shorter."""
        cells = self._rows[index]
        return cells[place] if place < len(cells) else None

    def fields(self, index: int, customer_id: str | None = None) -> dict[str, str]:
        """The row's fields (a new dict), with its customer id when it has one: as a
        `RawSale`'s fields, the id at its column or after the others."""
        fields = dict(zip(self._columns, self._rows[index], strict=False))
        if customer_id is not None:
            fields["customer_id"] = customer_id
        return fields

    def encode_valid(
        self, native: ValidRows, customer_ids: list[str | None] | None, validated_at: str
    ) -> list[tuple[bytes, bytes] | None]:
        """Each row's sales.validated record (key, value) where the native path is sure the
        row keeps every rule, None where `validate` must decide. `customer_ids`: each row's id
        in clear; `validated_at`: the JSON of `now`."""
        if self._first_row + len(self._rows) > _U64_MAX:  # beyond its integers
            return [None] * len(self._rows)
        return native.encode(
            self._rows,
            self._places,
            self.upload_id,
            self._first_row,
            self._counts,
            customer_ids,
            validated_at,
        )

    def validate(
        self, index: int, customer_id: str | None
    ) -> ValidatedSaleStruct | RejectedSaleStruct:
        """Row `index`, its customer id given in clear (None: it has none)."""
        cells, column_count = self._rows[index], self._column_count
        found = self._counts.get(index, column_count) if self._counts else column_count
        violations, parsed = check_row(cells, self._plan, found, column_count, self._rules)
        hashed = customer_id.strip() if customer_id else ""
        customer_hash = self._hasher.hash(hashed) if hashed else None
        pii_key_id = self._hasher.key_id if customer_hash else None
        upload_id, row_number = self.upload_id, self._first_row + index
        if violations:
            fields = self.fields(index, customer_id)
            return rejected_row(
                upload_id, row_number, fields, violations, customer_hash, pii_key_id, self._now
            )
        place = self._transaction
        transaction_id = (cells[place].strip() if place < len(cells) else "") or None
        price: Decimal = parsed["price"]
        quantity: int = parsed["quantity"]
        return ValidatedSaleStruct(
            event_id=event_id_for(upload_id, row_number, transaction_id),
            upload_id=upload_id,
            row_number=row_number,
            transaction_id=transaction_id,
            product=parsed["product"],
            # str() of a Decimal is what pydantic's JSON mode writes: the exact value.
            price=str(price.quantize(_CENT)),
            quantity=quantity,
            amount=str((price * quantity).quantize(_CENT)),
            customer_hash=customer_hash,
            pii_key_id=pii_key_id,
            sale_date=parsed.get("date"),
            validated_at=self._now,
        )
