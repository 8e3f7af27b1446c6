"""The rows the loader copies, decoded by the hot path, against the rows it built from the
contract's models before (`_sale_row` / `_rejection_row` of a decoded model)."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from devstack.generate import raw_records
from loader.repository import (
    _REJECTION_COLUMNS,
    _SALES_COLUMNS,
    rejection_row,
    sale_row,
)
from pydantic import SecretStr
from sales_common.codec import (
    RejectedSaleStruct,
    ValidatedSaleStruct,
    decode_raw,
    decode_rejected,
    decode_validated,
    encode_struct,
)
from sales_common.events import RejectedSale, ValidatedSale, decode
from sales_common.pii import CustomerHasher, PiiSettings
from sales_common.rejections import ReusedTransactionId, duplicate_transaction_id, unreadable
from validator.config import RuleSettings
from validator.rules import validate

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1"))


def exact(row: tuple[object, ...]) -> list[Any]:
    """Decimals as written and datetimes with their offset: `==` alone would take 1.5 for 1.50."""
    return [
        (type(v).__name__, str(v) if isinstance(v, Decimal) else v.isoformat())
        if isinstance(v, Decimal | date)
        else v
        for v in row
    ]


def contract_sale_row(payload: bytes) -> tuple[object, ...]:
    sale = decode(ValidatedSale, payload)
    return tuple(getattr(sale, column) for column in _SALES_COLUMNS)


def contract_rejection_row(payload: bytes) -> tuple[object, ...]:
    rejection = decode(RejectedSale, payload)
    return (
        rejection.event_id,
        rejection.upload_id,
        rejection.row_number,
        orjson.dumps(rejection.fields).decode(),
        orjson.dumps([v.model_dump() for v in rejection.violations]).decode(),
        rejection.pii_key_id,
        rejection.source,
        rejection.rejected_at,
    )


def test_the_columns_are_the_records_fields_in_contract_order() -> None:
    assert ValidatedSaleStruct.__struct_fields__[1:] == _SALES_COLUMNS
    assert RejectedSaleStruct.__struct_fields__[1:] == _REJECTION_COLUMNS


def test_rows_of_generated_records_are_the_rows_built_from_the_contract() -> None:
    sales = rejections = 0
    for raw in raw_records(20_000, seed=3):
        result = validate(decode_raw(raw), RuleSettings(), HASHER, NOW)
        wire = encode_struct(result)
        if isinstance(result, RejectedSaleStruct):
            row = rejection_row(decode_rejected(wire))
            assert exact(row) == exact(contract_rejection_row(wire))
            rejections += 1
        else:
            assert exact(sale_row(decode_validated(wire))) == exact(contract_sale_row(wire))
            sales += 1
    assert (sales, rejections) == (18_000, 2_000)


def consumed(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="sales.validated",
        partition=1,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{",
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=1,
        headers=(),
    )


@pytest.mark.parametrize(
    "rejection",
    [
        unreadable(consumed(5), 'not a valid record: \u2028"x"\\', NOW),
        duplicate_transaction_id(
            ReusedTransactionId(
                upload_id="u2",
                row_number=7,
                transaction_id="T-9",
                product="Halal B \u00e9",
                price=Decimal("2.00"),
                quantity=3,
                customer_hash="c" * 64,
                pii_key_id="k1",
                sale_date=date(2026, 11, 1),
                first_upload_id="u1",
                first_row_number=2,
            ),
            NOW,
        ),
    ],
    ids=["unreadable", "duplicate"],
)
def test_rows_of_built_rejections_are_the_rows_built_from_the_contract(
    rejection: RejectedSaleStruct,
) -> None:
    assert exact(rejection_row(rejection)) == exact(
        contract_rejection_row(encode_struct(rejection))
    )
