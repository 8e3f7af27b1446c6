"""Pure business rules: a raw row in, a validated sale or a rejection with every reason out."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from sales_common.events import (
    RawSale,
    RejectedSale,
    ValidatedSale,
    Violation,
    event_id_for,
)
from sales_common.pii import CustomerHasher
from sales_common.rejections import rejected_row

from validator.config import RuleSettings

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"[+-]?\d+")
_CENT = Decimal("0.01")


def check_row(raw: RawSale, rules: RuleSettings) -> tuple[list[Violation], dict[str, object]]:
    """Every rule the row breaks, and the parsed values of the fields that were fine."""
    fields = raw.fields
    violations: list[Violation] = []
    parsed: dict[str, object] = {}

    if raw.field_count != raw.column_count:
        violations.append(
            Violation(
                field="row",
                rule="field_count",
                message=f"expected {raw.column_count} fields, found {raw.field_count}",
            )
        )

    product = fields.get("product", "").strip()
    if not product:
        violations.append(Violation(field="product", rule="required", message="product is missing"))
    elif not product.startswith(rules.product_prefix):
        violations.append(
            Violation(
                field="product",
                rule="prefix",
                message=f"product must start with '{rules.product_prefix}'",
            )
        )
    parsed["product"] = product

    price_text = fields.get("price", "").strip()
    if not price_text:
        violations.append(Violation(field="price", rule="required", message="price is missing"))
    elif not _NUMBER.fullmatch(price_text):
        violations.append(
            Violation(
                field="price", rule="number", message=f"price is not a number: {price_text[:40]!r}"
            )
        )
    else:
        price = Decimal(price_text)
        exponent = price.as_tuple().exponent
        assert isinstance(exponent, int)  # finite by the regex
        if price <= rules.price_min_exclusive:
            violations.append(
                Violation(
                    field="price",
                    rule="positive",
                    message=f"price must be greater than {rules.price_min_exclusive}",
                )
            )
        if -exponent > rules.price_max_decimals:
            violations.append(
                Violation(
                    field="price",
                    rule="decimals",
                    message=f"price has more than {rules.price_max_decimals} decimals",
                )
            )
        parsed["price"] = price

    quantity_text = fields.get("quantity", "").strip()
    if not quantity_text:
        violations.append(
            Violation(field="quantity", rule="required", message="quantity is missing")
        )
    elif not _INTEGER.fullmatch(quantity_text):
        violations.append(
            Violation(
                field="quantity",
                rule="integer",
                message=f"quantity is not an integer: {quantity_text[:40]!r}",
            )
        )
    else:
        quantity = int(quantity_text)
        if not rules.quantity_min <= quantity <= rules.quantity_max:
            direction = "above" if quantity > rules.quantity_max else "below"
            violations.append(
                Violation(
                    field="quantity",
                    rule="range",
                    message=f"quantity {quantity} is {direction} the allowed range "
                    f"{rules.quantity_min}..{rules.quantity_max}",
                )
            )
        parsed["quantity"] = quantity

    date_text = fields.get("date", "").strip()
    if date_text:
        try:
            parsed["sale_date"] = date.fromisoformat(date_text)
        except ValueError:
            violations.append(
                Violation(
                    field="date", rule="date", message=f"date is not YYYY-MM-DD: {date_text[:40]!r}"
                )
            )
    return violations, parsed


def validate(
    raw: RawSale, rules: RuleSettings, hasher: CustomerHasher, now: datetime
) -> ValidatedSale | RejectedSale:
    violations, parsed = check_row(raw, rules)
    transaction_id = raw.fields.get("transaction_id", "").strip() or None
    customer_id = raw.fields.get("customer_id", "").strip()
    customer_hash = hasher.hash(customer_id) if customer_id else None
    pii_key_id = hasher.key_id if customer_hash else None
    if violations:
        return rejected_row(raw, violations, customer_hash, pii_key_id, now)
    price = parsed["price"]
    quantity = parsed["quantity"]
    assert isinstance(price, Decimal)
    assert isinstance(quantity, int)
    sale_date = parsed.get("sale_date")
    assert sale_date is None or isinstance(sale_date, date)
    return ValidatedSale(
        event_id=event_id_for(raw.upload_id, raw.row_number, transaction_id),
        upload_id=raw.upload_id,
        row_number=raw.row_number,
        transaction_id=transaction_id,
        product=str(parsed["product"]),
        price=price.quantize(_CENT),
        quantity=quantity,
        amount=(price * quantity).quantize(_CENT),
        customer_hash=customer_hash,
        pii_key_id=pii_key_id,
        sale_date=sale_date,
        validated_at=now,
    )
