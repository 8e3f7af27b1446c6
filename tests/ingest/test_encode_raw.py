from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError
from sales_common.codec import decode_raw
from sales_common.events import RAW_SCHEMA_VERSION, RawRecords, RawRows, decode

RECEIVED = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
COLUMNS = ["product", "price", "quantity"]


@pytest.mark.parametrize(
    ("filename", "rows", "field_counts"),
    [
        ("f.csv", [["Halal X", "1", "2"]], []),
        (
            'we"ird\\name\n.csv',
            [['quote " back\\slash \u00e9 \u2603', "", "\n"], ["short"], [], ["long", "1", "2"]],
            [(1, 2), (2, 1), (3, 5)],
        ),
    ],
)
def test_hot_path_encoding_matches_the_raw_contract(
    filename: str, rows: list[list[str]], field_counts: list[tuple[int, int]]
) -> None:
    records = RawRecords("u1", COLUMNS, 4, filename, RECEIVED.isoformat())
    for token in ("pii:v1:e1:abc", None):
        wire = records.pack(7, [orjson.dumps(cells) for cells in rows], token, field_counts)
        record = RawRows(
            upload_id="u1",
            first_row=7,
            columns=COLUMNS,
            column_count=4,
            source_filename=filename,
            received_at=RECEIVED,
            customer_ids=token,
            field_counts=field_counts,
            rows=rows,
        )
        assert decode(RawRows, wire) == record
        # The very bytes orjson writes for the whole record, in the contract's field order.
        assert wire == orjson.dumps(
            {
                "schema_version": RAW_SCHEMA_VERSION,
                "upload_id": "u1",
                "first_row": 7,
                "columns": COLUMNS,
                "column_count": 4,
                "source_filename": filename,
                "received_at": RECEIVED.isoformat(),
                "customer_ids": token,
                "field_counts": field_counts,
                "rows": rows,
            }
        )
        [hot] = decode_raw(wire)
        assert (hot.first_row, hot.columns, hot.rows, hot.customer_ids) == (7, COLUMNS, rows, token)
        assert [tuple(count) for count in hot.field_counts] == field_counts


def test_a_rows_fields_are_the_columns_zipped_with_its_cells() -> None:
    records = RawRecords("u1", COLUMNS, 4, "f.csv", RECEIVED.isoformat())
    wire = records.pack(3, [b'["Halal A","1","2"]', b'["Halal B"]'], None, [(1, 2)])
    first, short = decode(RawRows, wire).sales()
    assert (first.row_number, first.fields, first.field_count, first.column_count) == (
        3,
        {"product": "Halal A", "price": "1", "quantity": "2"},
        4,
        4,
    )
    assert (short.row_number, short.fields, short.field_count) == (4, {"product": "Halal B"}, 2)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"columns": ["product", "customer_id"]}, "customer_id"),
        ({"columns": ["product", "product"]}, "distinct"),
        ({"rows": [["a", "b", "c", "d"]]}, "more values than columns"),
        ({"field_counts": [[1, 2]]}, "field_counts"),
        ({"rows": [["a"], ["b"]], "field_counts": [[1, 2], [0, 2]]}, "field_counts"),
        ({"rows": [["a"], ["b"]], "field_counts": [[1, 2], [1, 3]]}, "field_counts"),
        ({"field_counts": [[0, -1]]}, "greater than or equal"),
        ({"rows": []}, "at least 1"),
        ({"first_row": 0}, "greater than or equal"),
    ],
)
def test_the_contract_refuses_a_record_that_is_not_rows_of_its_columns(
    change: dict[str, object], reason: str
) -> None:
    record = {
        "schema_version": 2,
        "upload_id": "u1",
        "first_row": 1,
        "columns": COLUMNS,
        "column_count": 4,
        "source_filename": "f.csv",
        "received_at": RECEIVED.isoformat(),
        "rows": [["Halal A", "1", "2"]],
    }
    with pytest.raises(ValidationError, match=reason):
        decode(RawRows, orjson.dumps(record | change))
    with pytest.raises(ValidationError, match=reason):  # the hot path as well
        decode_raw(orjson.dumps(record | change))
