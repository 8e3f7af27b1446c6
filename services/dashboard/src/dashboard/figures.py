"""How the dashboard writes a number, in one place: exact money and counts for the tables and
hover text, a compact form (`54.6 B`) that fits a tile or a chart label at any magnitude, shares
and changes. The page and the CSV export take their text from here."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# From a million up a figure is written with three significant digits and a unit: at most
# "999 B"-like widths, where the exact "54,627,860,010.00" overflowed a tile.
COMPACT_FROM = 1_000_000
_UNITS = ((Decimal(10**12), "T"), (Decimal(10**9), "B"), (Decimal(10**6), "M"))
_CENT = Decimal("0.01")


def money(value: Decimal | int | str) -> str:
    """The exact amount: `54,627,860,010.00`."""
    return f"{Decimal(value).quantize(_CENT, ROUND_HALF_UP):,.2f}"


def count(value: int) -> str:
    return f"{value:,}"


def _three_digits(scaled: Decimal) -> str:
    places = 2 if scaled < 10 else 1 if scaled < 100 else 0
    return f"{scaled.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,.{places}f}"


def _compact(value: Decimal) -> str | None:
    """Three significant digits and a unit, or None below a million."""
    magnitude = abs(value)
    if magnitude < COMPACT_FROM:
        return None
    sign = "\u2212" if value < 0 else ""
    i = next(i for i, (unit, _) in enumerate(_UNITS) if magnitude >= unit)
    text = _three_digits(magnitude / _UNITS[i][0])
    if text == "1,000" and i > 0:  # 999,950,000 is "1.00 B", not "1,000 M" (above T: "1,234 T")
        i -= 1
        text = _three_digits(magnitude / _UNITS[i][0])
    return f"{sign}{text} {_UNITS[i][1]}"


def compact_money(value: Decimal | int | str) -> str:
    """`54.6 B` from a million up, the exact amount below."""
    amount = Decimal(value)
    return _compact(amount) or money(amount)


def compact_count(value: int) -> str:
    """`2.20 M` from a million up, the exact count below."""
    return _compact(Decimal(value)) or count(value)


def percent(share: float) -> str:
    return f"{share:.1%}"


def change(current: Decimal | int, previous: Decimal | int) -> str | None:
    """`+12.3%` against the previous period; None when that had nothing to compare with."""
    if previous == 0:
        return None
    ratio = (Decimal(current) - Decimal(previous)) / Decimal(previous)
    if ratio > 10:  # a tile has no room for "+123,456.0%", and the reader needs no more
        return "> +999%"
    return f"{ratio:+.1%}".replace("-", "\u2212")  # a real minus sign, as wide as the plus
