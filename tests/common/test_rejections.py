import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from sales_common.codec import (
    RejectedSaleStruct,
    ViolationStruct,
    decode_rejected,
    encode_struct,
)
from sales_common.events import (
    RejectedSale,
    decode,
    encode,
    event_id_for,
    event_id_for_source,
)
from sales_common.rejections import (
    ReusedTransactionId,
    duplicate_transaction_id,
    rejected_row,
    unreadable,
    unreadable_customer_id,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BROKEN = [
    ViolationStruct(field="product", rule="prefix", message="product must start with 'Halal'")
]


def raw(**fields: str) -> tuple[str, int, dict[str, str]]:
    """A row's upload, number and fields (a dict of its own, as the validator builds them)."""
    return "u1", 4, fields


SALE = ReusedTransactionId(
    upload_id="u2",
    row_number=7,
    transaction_id="T-9",
    product="Halal B",
    price=Decimal("2.00"),
    quantity=3,
    customer_hash="c" * 64,
    pii_key_id="k1",
    sale_date=date(2026, 11, 1),
    first_upload_id="u1",
    first_row_number=2,
)


def assert_is_a_contract_record(rejection: RejectedSaleStruct) -> None:
    """What a builder makes is a `sales.rejected` record to the contract, byte for byte."""
    wire = encode_struct(rejection)
    assert encode(decode(RejectedSale, wire)) == wire


def test_rejected_row_keeps_every_violation_and_is_identified_by_its_row() -> None:
    rejection = rejected_row(
        *raw(product="Pork", price="1", quantity="1", transaction_id="T-1"), BROKEN, None, None, NOW
    )
    assert rejection.violations == BROKEN
    assert (rejection.upload_id, rejection.row_number) == ("u1", 4)
    # Never the transaction_id form: a rejected row must not shadow the sale stored under it.
    assert rejection.event_id == event_id_for("u1", 4, None) != event_id_for("u1", 4, "T-1")
    assert rejection.fields["transaction_id"] == "T-1"
    assert rejection.source is None
    assert decode_rejected(encode_struct(rejection)) == rejection
    assert_is_a_contract_record(rejection)


def test_rejected_row_replaces_the_customer_id_by_its_hash() -> None:
    hashed = rejected_row(*raw(product="X", customer_id="CUST-1"), BROKEN, "h" * 64, "k1", NOW)
    assert hashed.fields == {"product": "X", "customer_id": "h" * 64}
    assert hashed.pii_key_id == "k1"
    blank = rejected_row(*raw(product="X", customer_id="  "), BROKEN, None, None, NOW)
    assert blank.fields == {"product": "X", "customer_id": ""}
    assert "customer_id" not in rejected_row(*raw(product="X"), BROKEN, None, None, NOW).fields


def test_a_row_whose_id_does_not_decrypt_keeps_nothing_of_it() -> None:
    rejection = unreadable_customer_id(
        *raw(product="Halal X", customer_id="pii:v1:e9:abc"), "no key e9", NOW
    )
    assert_is_a_contract_record(rejection)
    assert rejection.fields == {"product": "Halal X"}
    assert [(v.field, v.rule, v.message) for v in rejection.violations] == [
        ("customer_id", "unreadable", "no key e9")
    ]
    assert (rejection.upload_id, rejection.row_number, rejection.pii_key_id) == ("u1", 4, None)


def test_duplicate_transaction_id_names_the_row_that_stored_it_first() -> None:
    rejection = duplicate_transaction_id(SALE, NOW)
    assert_is_a_contract_record(rejection)
    assert [(v.field, v.rule, v.message) for v in rejection.violations] == [
        ("transaction_id", "duplicate", "transaction_id already stored from upload u1 row 2")
    ]
    assert rejection.event_id == event_id_for("u2", 7, None)
    assert (rejection.upload_id, rejection.row_number, rejection.pii_key_id) == ("u2", 7, "k1")
    assert rejection.fields == {
        "transaction_id": "T-9",
        "product": "Halal B",
        "price": "2.00",
        "quantity": "3",
        "customer_id": "c" * 64,
        "date": "2026-11-01",
    }


def test_duplicate_transaction_id_leaves_out_what_the_sale_did_not_have() -> None:
    rejection = duplicate_transaction_id(
        replace(SALE, transaction_id=None, customer_hash=None, pii_key_id=None, sale_date=None),
        NOW,
    )
    assert rejection.fields == {
        "transaction_id": "",
        "product": "Halal B",
        "price": "2.00",
        "quantity": "3",
    }
    assert rejection.pii_key_id is None


def consumed(topic: str, partition: int, offset: int) -> str:
    """Where a record was read, as `source_of` names it."""
    return f"{topic}/{partition}/{offset}"


def test_unreadable_record_has_no_row_and_a_bounded_reason() -> None:
    rejection = unreadable(consumed("sales.raw", 2, 17), "not a record: " + "x" * 500, NOW)
    assert_is_a_contract_record(rejection)
    assert (rejection.upload_id, rejection.row_number, rejection.fields) == (None, None, {})
    assert rejection.source == "sales.raw/2/17"
    [violation] = rejection.violations
    assert (violation.field, violation.rule) == ("record", "unreadable")
    assert len(violation.message) == 300


def test_unreadable_record_is_identified_by_where_it_was_read() -> None:
    rejection = unreadable(consumed("sales.raw", 2, 17), "bad", NOW)
    assert rejection.event_id == event_id_for_source("sales.raw/2/17")
    assert rejection.event_id == hashlib.sha256(b"src:sales.raw/2/17").hexdigest()[:32]
    # Read again (a redone batch, a restart): the same id, so the copy is skipped.
    assert unreadable(consumed("sales.raw", 2, 17), "other reason", NOW).event_id == (
        rejection.event_id
    )
    elsewhere = {
        unreadable(consumed(topic, partition, offset), "bad", NOW).event_id
        for topic, partition, offset in [
            ("sales.raw", 2, 18),
            ("sales.raw", 3, 17),
            ("sales.validated", 2, 17),
        ]
    }
    assert len(elsewhere) == 3
    assert rejection.event_id not in elsewhere


def test_source_ids_differ_from_row_and_transaction_ids_of_the_same_text() -> None:
    source = "sales.raw/2/17"
    assert event_id_for_source(source) not in {
        event_id_for(source, 1, None),
        event_id_for("u1", 1, source),
        event_id_for(f"unreadable:{source}", 1, None),  # the placeholder used before
    }
