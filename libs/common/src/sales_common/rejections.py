"""How every `sales.rejected` record (`RejectedSale`, in events.py) is made: one builder per
kind of rejection. They build the hot path's form, `RejectedSaleStruct` (codec.py), which
encodes to the same bytes as the model.

- `rejected_row`: a row that broke business rules (validator);
- `unreadable_customer_id`: a row whose customer id does not decrypt (validator), rule
  `unreadable` on `customer_id`;
- `duplicate_transaction_id`: a valid row whose transaction_id was already stored from another
  row (loader), rule `duplicate`;
- `unreadable`: a record that is not a valid record at all (validator and loader), rule
  `unreadable`.

A rejected row is identified by its row, never by its transaction_id, so it cannot collide
with the stored sale that carries that transaction_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sales_common.codec import RejectedSaleStruct, ViolationStruct
from sales_common.events import event_id_for, event_id_for_source


def rejected_row(
    upload_id: str,
    row_number: int,
    fields: dict[str, str],
    violations: list[ViolationStruct],
    customer_hash: str | None,
    pii_key_id: str | None,
    now: datetime,
) -> RejectedSaleStruct:
    """A row with every rule it broke; `fields` (the rejection keeps them: a dict of their
    own) with the customer id replaced by `customer_hash`."""
    if "customer_id" in fields:
        fields["customer_id"] = customer_hash or ""
    return RejectedSaleStruct(
        event_id=event_id_for(upload_id, row_number, None),
        upload_id=upload_id,
        row_number=row_number,
        fields=fields,
        violations=violations,
        pii_key_id=pii_key_id,
        rejected_at=now,
    )


def unreadable_customer_id(
    upload_id: str, row_number: int, fields: dict[str, str], reason: str, now: datetime
) -> RejectedSaleStruct:
    """A row whose customer id no configured key decrypts: kept as a row of its upload (so
    the upload completes), without the id or anything derived from it. `fields` as for
    rejected_row."""
    violation = ViolationStruct(field="customer_id", rule="unreadable", message=reason)
    fields.pop("customer_id", None)
    return rejected_row(upload_id, row_number, fields, [violation], None, None, now)


@dataclass(frozen=True, slots=True)
class ReusedTransactionId:
    """A sale (as stored, customer id already hashed) whose transaction_id was first stored
    from another row: `first_upload_id`, `first_row_number`."""

    upload_id: str
    row_number: int
    transaction_id: str | None
    product: str
    price: Decimal
    quantity: int
    customer_hash: str | None
    pii_key_id: str | None
    sale_date: date | None
    first_upload_id: str
    first_row_number: int


def duplicate_transaction_id(sale: ReusedTransactionId, now: datetime) -> RejectedSaleStruct:
    """Not a replay (another row), so it is rejected, counted, rather than silently dropped."""
    fields = {
        "transaction_id": sale.transaction_id or "",
        "product": sale.product,
        "price": str(sale.price),
        "quantity": str(sale.quantity),
    }
    if sale.customer_hash:
        fields["customer_id"] = sale.customer_hash
    if sale.sale_date:
        fields["date"] = sale.sale_date.isoformat()
    return RejectedSaleStruct(
        event_id=event_id_for(sale.upload_id, sale.row_number, None),
        upload_id=sale.upload_id,
        row_number=sale.row_number,
        fields=fields,
        violations=[
            ViolationStruct(
                field="transaction_id",
                rule="duplicate",
                message=f"transaction_id already stored from upload {sale.first_upload_id} "
                f"row {sale.first_row_number}",
            )
        ],
        pii_key_id=sale.pii_key_id,
        rejected_at=now,
    )


def unreadable(source: str, message: str, now: datetime) -> RejectedSaleStruct:
    """A poison message (not a valid record at all), kept with the reason, never blocking.

    Identified by where it was read (`source`: topic/partition/offset), as it has no
    upload or row of its own.
    """
    return RejectedSaleStruct(
        event_id=event_id_for_source(source),
        upload_id=None,
        fields={},
        violations=[ViolationStruct(field="record", rule="unreadable", message=message[:300])],
        source=source,
        rejected_at=now,
    )
