from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError
from sales_common.events import (
    RAW_SCHEMA_VERSION,
    RawSale,
    RejectedSale,
    ValidatedSale,
    Violation,
    decode,
    encode,
    event_id_for,
    record_headers,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_validated_sale_round_trips_with_exact_decimals() -> None:
    sale = ValidatedSale(
        event_id="e1",
        upload_id="u1",
        row_number=1,
        product="Halal Laptop",
        price=Decimal("999.99"),
        quantity=2,
        amount=Decimal("1999.98"),
        customer_hash="a" * 64,
        pii_key_id="k1",
        sale_date=date(2026, 11, 1),
        validated_at=NOW,
    )
    wire = encode(sale)
    assert orjson.loads(wire)["price"] == "999.99"
    assert orjson.loads(wire)["schema_version"] == 1
    assert decode(ValidatedSale, wire) == sale


def test_customer_hash_must_be_64_hex_chars() -> None:
    with pytest.raises(ValidationError):
        ValidatedSale(
            event_id="e1",
            upload_id="u1",
            row_number=1,
            product="Halal X",
            price=Decimal(1),
            quantity=1,
            amount=Decimal(1),
            customer_hash="CUST-1",
            validated_at=NOW,
        )


def test_rejection_needs_at_least_one_violation() -> None:
    with pytest.raises(ValidationError):
        RejectedSale(
            event_id="e", upload_id="u", row_number=1, fields={}, violations=[], rejected_at=NOW
        )
    rejected = RejectedSale(
        event_id="e",
        upload_id="u",
        row_number=1,
        fields={"product": ""},
        violations=[Violation(field="product", rule="required", message="product is missing")],
        rejected_at=NOW,
    )
    assert decode(RejectedSale, encode(rejected)) == rejected


def test_unknown_fields_are_refused() -> None:
    raw = RawSale(
        upload_id="u",
        row_number=1,
        fields={},
        field_count=3,
        column_count=3,
        source_filename="f.csv",
        received_at=NOW,
    )
    payload = orjson.loads(encode(raw)) | {"surprise": 1}
    with pytest.raises(ValidationError):
        decode(RawSale, orjson.dumps(payload))


def test_event_id_is_deterministic_and_prefers_transaction_id() -> None:
    assert event_id_for("u1", 3, None) == event_id_for("u1", 3, None)
    assert event_id_for("u1", 3, None) != event_id_for("u1", 4, None)
    assert event_id_for("u1", 3, "T-1") == event_id_for("u2", 9, "T-1")
    assert len(event_id_for("u1", 1, None)) == 32


def test_event_ids_are_the_stored_ones() -> None:
    """Every stage and every stored row keys on these values: a change of form is a change
    of every id (replays would no longer be recognised)."""
    assert event_id_for("u1", 7, "T-1") == "8c2f28cb1c52b9aa0a778861aebe8617"  # sha256("txn:T-1")
    assert event_id_for("u1", 7, None) == "c0ec3953feb85f2eeeb4b8a1bc779d4d"  # sha256("row:u1:7")
    assert event_id_for("u1", 7, "") == event_id_for("u1", 7, None)


def test_every_record_carries_content_type_and_schema_version_headers() -> None:
    assert dict(record_headers()) == {"content-type": b"application/json", "schema-version": b"1"}
    # sales.raw's records (RawRows), internal, have a version of their own.
    assert dict(record_headers(schema_version=RAW_SCHEMA_VERSION))["schema-version"] == b"2"
