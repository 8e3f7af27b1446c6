from __future__ import annotations

import orjson
import pytest
from ingest.config import SpoolSettings
from ingest.csv_stream import CheckedRows, CsvProblem
from ingest.spool import Spool, SpoolBudget, SpoolFull
from pydantic import SecretStr
from sales_common.pii import EncryptionSettings, FieldCipher, UnreadableCustomerId

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
        assert spool.columns == columns
        assert [(count, orjson.loads(cells), i) for count, cells, i in spool.rows()] == [
            (3, ["Halal A", "1", "2"], None),
            (4, ['quote " and, comma', "", "\n"], None),  # the cell past the header left out
            (1, ["short"], None),
        ]
    assert budget.free == 1 << 20


def test_customer_ids_are_encrypted_before_they_reach_the_disk() -> None:
    columns = ["product", "customer_id", "price", "quantity"]
    rows = [
        ["Halal A", "CUST-7", "1", "2"],
        ["Halal B", " ", "1", "2", "extra"],
        ["Halal C"],
        ["Halal D", "CUST-8", "3", "4"],
    ]
    with Spool(SpoolSettings(), SpoolBudget(1 << 20), CIPHER, "u") as spool:
        spool.write(columns, [list(cells) for cells in rows[:2]])
        spool.write(columns, [list(cells) for cells in rows[2:]])
        spool._file.seek(0)
        on_disk = spool._file.read()
        read = [(count, orjson.loads(cells), i) for count, cells, i in spool.rows()]
        assert spool.columns == ["product", "price", "quantity"]
    assert b"CUST-" not in on_disk
    # The ids of each write sealed together, bound to the upload and the rows they belong to.
    tokens = [line.split(b" ")[1].decode() for line in on_disk.splitlines() if line[:1] == b"*"]
    assert len(tokens) == 2
    assert all(token.startswith("pii:v1:e1:") for token in tokens)
    assert CIPHER.open_ids(tokens[1], "u", 3, 2) == [None, "CUST-8"]
    with pytest.raises(UnreadableCustomerId):
        CIPHER.open_ids(tokens[1], "u", 1, 2)
    assert read == [
        (4, ["Halal A", "1", "2"], "CUST-7"),
        (5, ["Halal B", "1", "2"], " "),
        (1, ["Halal C"], None),  # a short row has no id
        (4, ["Halal D", "3", "4"], "CUST-8"),
    ]


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
