"""What the validator writes for generated rows, against the contract: every record is one the
contract accepts, and the bytes are those events.encode writes for it."""

from datetime import UTC, datetime

from devstack.generate import raw_records
from pydantic import SecretStr
from sales_common.codec import ValidatedSaleStruct, decode_raw, encode_struct
from sales_common.events import RawRows, RejectedSale, ValidatedSale, decode, encode
from sales_common.pii import CustomerHasher, PiiSettings
from validator.config import RuleSettings
from validator.rules import PackRules

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1"))


def test_generated_rows_are_written_as_the_contract_writes_them() -> None:
    outcomes = {"valid": 0, "rejected": 0}
    for payload, ids in raw_records(20_000):
        [pack] = decode_raw(payload)
        contract = decode(RawRows, payload)
        assert (pack.upload_id, pack.first_row, pack.columns, pack.rows, pack.received_at) == (
            contract.upload_id,
            contract.first_row,
            contract.columns,
            contract.rows,
            contract.received_at,
        )
        rows = PackRules(pack, RuleSettings(), HASHER, NOW)
        for index, customer_id in enumerate(ids):
            assert customer_id is not None
            result = rows.validate(index, customer_id)
            wire = encode_struct(result)
            if isinstance(result, ValidatedSaleStruct):
                sale = decode(ValidatedSale, wire)
                assert encode(sale) == wire
                assert sale.customer_hash == HASHER.hash(customer_id)
                assert sale.amount == sale.price * sale.quantity
                outcomes["valid"] += 1
            else:
                rejection = decode(RejectedSale, wire)
                assert encode(rejection) == wire
                assert rejection.fields["customer_id"] == HASHER.hash(customer_id)
                outcomes["rejected"] += 1
            assert b"CUST-" not in wire
    assert outcomes == {"valid": 18_000, "rejected": 2_000}
