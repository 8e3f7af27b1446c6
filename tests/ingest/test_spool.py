from __future__ import annotations

import orjson
import pytest
from ingest.config import SpoolSettings
from ingest.csv_stream import CheckedRows, CsvProblem
from ingest.spool import Spool, SpoolBudget, SpoolFull
from pydantic import SecretStr
from sales_common.pii import EncryptionSettings, FieldCipher, row_context

CIPHER = FieldCipher(EncryptionSettings(key=SecretStr("s" * 32), key_id="e1"))


def test_rows_come_back_in_order_and_the_budget_is_returned() -> None:
    budget = SpoolBudget(1 << 20)
    columns = ["product", "price", "quantity"]
    rows = [["Halal A", "1", "2"], ['quote " and, comma', "", "\n", "extra"], ["short"]]
    with Spool(SpoolSettings(), budget, CIPHER, "u") as spool:
        spool.write(columns, rows[:1])
        spool.write(columns, [])
        spool.write(columns, rows[1:])
        assert budget.free == (1 << 20) - spool.bytes
        assert [(count, orjson.loads(fields)) for count, fields in spool.rows()] == [
            (3, {"product": "Halal A", "price": "1", "quantity": "2"}),
            (4, {"product": 'quote " and, comma', "price": "", "quantity": "\n"}),
            (1, {"product": "short"}),
        ]
    assert budget.free == 1 << 20


def test_customer_ids_are_encrypted_before_they_reach_the_disk() -> None:
    columns = ["product", "price", "quantity", "customer_id"]
    rows = [["Halal A", "1", "2", "CUST-7"], ["Halal B", "1", "2", " "], ["Halal C", "1", "2"]]
    with Spool(SpoolSettings(), SpoolBudget(1 << 20), CIPHER, "u") as spool:
        spool.write(columns, rows[:1])
        spool.write(columns, rows[1:])
        spool._file.seek(0)
        assert b"CUST-7" not in spool._file.read()
        fields = [orjson.loads(f) for _, f in spool.rows()]
    token = fields[0]["customer_id"]
    assert token.startswith("pii:v1:e1:")
    assert CIPHER.decrypt(token, row_context("u", 1)) == "CUST-7"
    assert fields[1]["customer_id"] == " "  # nothing to hide in a blank
    assert "customer_id" not in fields[2]


def test_a_full_spool_refuses_with_503() -> None:
    budget = SpoolBudget(10)
    with Spool(SpoolSettings(), budget, CIPHER, "u") as spool, pytest.raises(SpoolFull) as full:
        spool.write(["product"], [["x" * 20]])
    assert full.value.status_code == 503
    assert budget.free == 10


def test_checked_rows_number_rows_after_the_header_and_check_field_lengths() -> None:
    rows = CheckedRows(max_record_chars=1000, max_field_chars=5)
    assert rows.feed(b"Product,price,quantity\nHalal,1,") == []
    assert rows.feed(b"2\nHalal,2,3,extra-long-cell\n") == [
        ["Halal", "1", "2"],
        ["Halal", "2", "3", "extra-long-cell"],  # cells past the header are not forwarded
    ]
    assert rows.columns == ["product", "price", "quantity"]
    with pytest.raises(CsvProblem, match="row 3: field 'product' is longer than 5"):
        rows.feed(b"Halal Chicken,1,1\n")


def test_checked_rows_refuse_an_empty_file() -> None:
    rows = CheckedRows(max_record_chars=1000, max_field_chars=5)
    with pytest.raises(CsvProblem, match="empty"):
        rows.close()
