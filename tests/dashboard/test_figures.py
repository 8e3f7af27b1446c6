from decimal import Decimal

import pytest
from dashboard.figures import change, compact_count, compact_money, count, money, percent


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "0.00"),
        ("2499.83", "2,499.83"),
        ("999999.99", "999,999.99"),
        ("1000000", "1.00 M"),
        ("9156240634.9", "9.16 B"),
        ("54627860010.0", "54.6 B"),
        ("123456789", "123 M"),
        ("999950000", "1.00 B"),  # rounds up into the next unit, never "1,000 M"
        ("999499999", "999 M"),
        ("1234567890123456.78", "1,235 T"),
        ("99999999999999999.99", "100,000 T"),  # the largest numeric(20, 2) still fits a tile
        ("-2500000", "\u22122.50 M"),
    ],
)
def test_compact_money_has_three_significant_digits_from_a_million(value: str, shown: str) -> None:
    assert compact_money(Decimal(value)) == shown


def test_every_compact_figure_fits_a_tile() -> None:
    """At most 10 characters, what the narrowest tile holds at its smallest font."""
    for exponent in range(0, 18):
        for mantissa in ("1", "4.995", "9.9999"):
            value = Decimal(mantissa).scaleb(exponent)
            assert len(compact_money(value)) <= 10, value


def test_exact_figures_and_counts() -> None:
    assert money(Decimal("54627860010.004")) == "54,627,860,010.00"
    assert money(5) == "5.00"
    assert count(2_200_000) == "2,200,000"
    assert compact_count(2_200_000) == "2.20 M"
    assert compact_count(999_999) == "999,999"
    assert percent(0.5) == "50.0%"


@pytest.mark.parametrize(
    ("current", "previous", "shown"),
    [
        (Decimal(112), Decimal(100), "+12.0%"),
        (Decimal(90), Decimal(100), "\u221210.0%"),
        (100, 100, "+0.0%"),
        (Decimal(5), Decimal(0), None),
        (Decimal(10_000), Decimal(1), "> +999%"),
    ],
)
def test_change_against_the_previous_period(
    current: Decimal | int, previous: Decimal | int, shown: str | None
) -> None:
    assert change(current, previous) == shown
