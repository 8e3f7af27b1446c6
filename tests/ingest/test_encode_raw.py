from datetime import UTC, datetime

import orjson
import pytest
from sales_common.events import SCHEMA_VERSION, RawRecords, RawSale, decode

RECEIVED = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("filename", "fields"),
    [
        ("f.csv", {"product": "Halal X", "price": "1"}),
        ('we"ird\\name\n.csv', {"product": 'quote " back\\slash \u00e9 \u2603', "price": ""}),
    ],
)
def test_hot_path_encoding_matches_the_raw_contract(filename: str, fields: dict[str, str]) -> None:
    records = RawRecords("u1", 3, filename, RECEIVED.isoformat())
    wire = records.encode(4, orjson.dumps(fields), 2)
    assert decode(RawSale, wire) == RawSale(
        upload_id="u1",
        row_number=4,
        fields=fields,
        field_count=2,
        column_count=3,
        source_filename=filename,
        received_at=RECEIVED,
    )
    # The very bytes orjson writes for the whole record, in the contract's field order.
    assert wire == orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "upload_id": "u1",
            "row_number": 4,
            "fields": fields,
            "field_count": 2,
            "column_count": 3,
            "source_filename": filename,
            "received_at": RECEIVED.isoformat(),
        }
    )
