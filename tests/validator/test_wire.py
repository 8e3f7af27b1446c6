"""What the validator writes for generated rows, against the contract: every record is one the
contract accepts, and the bytes are those events.encode writes for it."""

from datetime import UTC, datetime

from devstack.generate import raw_records
from pydantic import SecretStr
from sales_common.codec import ValidatedSaleStruct, decode_raw, encode_struct
from sales_common.events import RawSale, RejectedSale, ValidatedSale, decode, encode
from sales_common.pii import CustomerHasher, PiiSettings
from validator.config import RuleSettings
from validator.rules import validate

NOW = datetime(2026, 11, 26, 12, 0, 1, 654321, tzinfo=UTC)
HASHER = CustomerHasher(PiiSettings(hmac_key=SecretStr("p" * 32), key_id="k1"))


def test_generated_rows_are_written_as_the_contract_writes_them() -> None:
    outcomes = {"valid": 0, "rejected": 0}
    for payload in raw_records(20_000):
        [raw] = decode_raw(payload).rows
        contract_raw = decode(RawSale, payload)
        assert (raw.upload_id, raw.row_number, raw.fields, raw.received_at) == (
            contract_raw.upload_id,
            contract_raw.row_number,
            contract_raw.fields,
            contract_raw.received_at,
        )
        result = validate(raw, RuleSettings(), HASHER, NOW)
        wire = encode_struct(result)
        if isinstance(result, ValidatedSaleStruct):
            sale = decode(ValidatedSale, wire)
            assert encode(sale) == wire
            assert sale.customer_hash == HASHER.hash(raw.fields["customer_id"])
            assert sale.amount == sale.price * sale.quantity
            outcomes["valid"] += 1
        else:
            rejection = decode(RejectedSale, wire)
            assert encode(rejection) == wire
            assert rejection.fields["customer_id"] == HASHER.hash(raw.fields["customer_id"])
            outcomes["rejected"] += 1
        assert b"CUST-" not in wire
    assert outcomes == {"valid": 18_000, "rejected": 2_000}
