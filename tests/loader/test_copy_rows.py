"""The rows the loader copies, decoded by the hot path, against the rows it built from the
contract's models before (`_sale_row` / `_rejection_row` of a decoded model), but for the
price and amount, copied as the exact text of the Decimal (and cast to numeric by the INSERT)."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
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
from sales_common.rejections import unreadable
from validator.config import RuleSettings
from validator.rules import PackRules

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
    """The decimals as the text of the contract's Decimal: staged as text, cast by the INSERT
    (`str(Decimal)` is the exact value, which numeric reads as the Decimal itself)."""
    sale = decode(ValidatedSale, payload)
    return tuple(
        str(value) if isinstance(value, Decimal) else value
        for value in (getattr(sale, column) for column in _SALES_COLUMNS)
    )


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
    for raw, ids in raw_records(20_000, seed=3):
        [decoded] = decode_raw(raw)
        rows = PackRules(decoded, RuleSettings(), HASHER, NOW)
        for index, customer_id in enumerate(ids):
            result = rows.validate(index, customer_id)
            wire = encode_struct(result)
            if isinstance(result, RejectedSaleStruct):
                row = rejection_row(decode_rejected(wire))
                assert exact(row) == exact(contract_rejection_row(wire))
                rejections += 1
            else:
                assert exact(sale_row(decode_validated(wire))) == exact(contract_sale_row(wire))
                sales += 1
    assert (sales, rejections) == (18_000, 2_000)


def test_rows_of_built_rejections_are_the_rows_built_from_the_contract() -> None:
    # Characters JSON encoders may escape differently: the text copied is the same as before.
    message = 'not a valid record: \u2028"x"\\ \x00\x7f \u00e9\U0001f600'
    rejection = unreadable("sales.validated/1/5", message, NOW)
    assert exact(rejection_row(rejection)) == exact(
        contract_rejection_row(encode_struct(rejection))
    )
