from datetime import UTC, datetime

from sales_common.events import RawSale, decode, encode_raw


def test_hot_path_encoding_matches_the_raw_contract() -> None:
    received = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
    wire = encode_raw(
        "u1", 4, {"product": "Halal X", "price": "1"}, 2, 3, "f.csv", received.isoformat()
    )
    record = decode(RawSale, wire)
    assert record == RawSale(
        upload_id="u1",
        row_number=4,
        fields={"product": "Halal X", "price": "1"},
        field_count=2,
        column_count=3,
        source_filename="f.csv",
        received_at=received,
    )
