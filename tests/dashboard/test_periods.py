from datetime import date

import pytest
from dashboard.periods import ALL_TIME, Period, presets
from pydantic import ValidationError


def test_a_range_counts_both_ends_and_compares_with_the_one_before() -> None:
    march = Period.model_validate({"from": "2026-03-01", "to": "2026-03-31"})
    assert march.days == 31
    assert march.previous() == Period(from_=date(2026, 1, 29), to=date(2026, 2, 28))
    one_day = Period(from_=date(2026, 3, 1), to=date(2026, 3, 1))
    assert one_day.days == 1
    assert one_day.previous() == Period(from_=date(2026, 2, 28), to=date(2026, 2, 28))


def test_open_ranges_have_no_previous_period() -> None:
    assert ALL_TIME.all_time
    assert ALL_TIME.previous() is None
    assert ALL_TIME.bounds() == (date.min, date.max)
    since = Period(from_=date(2026, 3, 1))
    assert since.days is None
    assert since.previous() is None
    assert since.bounds() == (date(2026, 3, 1), date.max)
    # The previous period would start before year 1.
    assert Period(from_=date.min, to=date(1, 1, 2)).previous() is None


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="'to' is before 'from'"):
        Period.model_validate({"from": "2026-03-02", "to": "2026-03-01"})


def test_the_response_says_from_and_to() -> None:
    assert Period(from_=date(2026, 3, 1), to=date(2026, 3, 7)).model_dump(
        mode="json", by_alias=True
    ) == {"from": "2026-03-01", "to": "2026-03-07", "days": 7}


def test_presets_end_today() -> None:
    today = date(2026, 3, 15)
    assert {name: (p.from_, p.to) for name, p in presets(today)} == {
        "Today": (today, today),
        "7 days": (date(2026, 3, 9), today),
        "30 days": (date(2026, 2, 14), today),
        "This month": (date(2026, 3, 1), today),
        "All time": (None, None),
    }


def test_query_parameters_make_a_period_or_a_422() -> None:
    from dashboard.periods import period_of
    from fastapi.exceptions import RequestValidationError

    assert period_of(None, None) is ALL_TIME
    assert period_of(date(2026, 3, 1), None) == Period(from_=date(2026, 3, 1))
    with pytest.raises(RequestValidationError) as refused:
        period_of(date(2026, 3, 2), date(2026, 3, 1))
    assert refused.value.errors()[0]["loc"] == ("query", "to")


def test_the_summary_query_string_is_parsed_once_and_checked() -> None:
    from dashboard.service import SummaryQuery, summary_query
    from fastapi.exceptions import RequestValidationError

    month = Period(from_=date(2026, 3, 1), to=date(2026, 3, 31))
    assert summary_query(b"from=2026-03-01&to=2026-03-31&top=3", 10) == SummaryQuery(month, 3, None)
    assert summary_query(b"from=&to=&other=1", 10) == SummaryQuery(ALL_TIME, 10, None)
    assert summary_query(b"days=7", 10) is summary_query(b"days=7", 10)  # parsed once
    for bad, where in (
        (b"from=2026-03-02&to=2026-03-01", ("query", "to")),
        (b"from=2026-02-30", ("query", "from")),
        (b"top=0", ("query", "top")),
        (b"days=367", ("query", "days")),
    ):
        with pytest.raises(RequestValidationError) as refused:
            summary_query(bad, 10)
        assert refused.value.errors()[0]["loc"] == where, bad
