import csv
import io

import pytest
from dashboard.export import csv_lines, neutralise


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Halal =1+1", "Halal =1+1"),
        ("", ""),
        (None, ""),
        (3, "3"),
    ],
)
def test_formula_cells_are_neutralised(cell: object, written: str) -> None:
    assert neutralise(cell) == written


def test_csv_lines_round_trip_with_quoting() -> None:
    text = "".join(csv_lines(["a", "b"], [["x, y", "=1"], ["line\nbreak", "ok"]]))
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["a", "b"],
        ["x, y", "'=1"],
        ["line\nbreak", "ok"],
    ]
