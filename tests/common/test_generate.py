import csv
import io

from devstack.generate import HEADER, rows


def test_generated_rows_are_deterministic_with_the_requested_invalid_share() -> None:
    first = list(rows(1000, invalid_share=0.1, seed=3))
    assert first == list(rows(1000, invalid_share=0.1, seed=3))
    assert first != list(rows(1000, invalid_share=0.1, seed=4))
    parsed = list(csv.DictReader(io.StringIO(HEADER + "".join(first))))
    invalid = [
        r
        for r in parsed
        if not r["product"].startswith("Halal")
        or not r["quantity"].isdigit()
        or not 1 <= int(r["quantity"]) <= 100
        or r["price"] in ("abc", "-1.00", "1.234", "invalid")
    ]
    assert len(invalid) == 100
    assert len({r["transaction_id"] for r in parsed}) == 1000
