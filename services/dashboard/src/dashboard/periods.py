"""The range of days a figure covers: inclusive, in UTC, validated once here.

A sale belongs to its own date (the CSV's `date` column), or to the day it was validated in
UTC when it had none: the day the loader files it under in `daily_product_totals`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, model_validator

FROM = "first day (UTC), included; none: the first sale"
TO = "last day (UTC), included; none: the last sale"


class Period(BaseModel):
    """Days `from`..`to`, both included; an open end reaches the first or the last sale."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: date | None = Field(default=None, alias="from", description=FROM)
    to: date | None = Field(default=None, description=TO)

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.from_ is not None and self.to is not None and self.to < self.from_:
            raise ValueError("'to' is before 'from'")
        return self

    @computed_field(description="the number of days, when both ends are given")  # type: ignore[prop-decorator]
    @property
    def days(self) -> int | None:
        if self.from_ is None or self.to is None:
            return None
        return (self.to - self.from_).days + 1

    @property
    def all_time(self) -> bool:
        return self.from_ is None and self.to is None

    def bounds(self) -> tuple[date, date]:
        """Both ends as dates, an open one as the first or last date there is."""
        return self.from_ or date.min, self.to or date.max

    def previous(self) -> Period | None:
        """The period of the same length just before, for comparison; none for an open one."""
        if self.days is None or self.from_ is None:
            return None
        try:
            start = self.from_ - timedelta(days=self.days)
        except OverflowError:  # before year 1
            return None
        return Period(from_=start, to=self.from_ - timedelta(days=1))

    def label(self) -> str:
        if self.all_time:
            return "all time"
        if self.from_ == self.to:
            return str(self.from_)
        return f"{self.from_ or 'first sale'} \u2013 {self.to or 'last sale'}"


ALL_TIME = Period()


def period_of(start: date | None, end: date | None) -> Period:
    """A period from two query parameters; a reversed one fails as a bad parameter (422)."""
    if start is None and end is None:
        return ALL_TIME  # the summary's most frequent question, without building a model
    try:
        return Period(from_=start, to=end)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("query", "to"), "msg": str(e["msg"]), "type": e["type"]}
                for e in exc.errors()
            ]
        ) from exc


def today_utc() -> date:
    return datetime.now(UTC).date()


def presets(today: date) -> list[tuple[str, Period]]:
    """The page's one-click ranges, each ending today (UTC)."""
    return [
        ("Today", Period(from_=today, to=today)),
        ("7 days", Period(from_=today - timedelta(days=6), to=today)),
        ("30 days", Period(from_=today - timedelta(days=29), to=today)),
        ("This month", Period(from_=today.replace(day=1), to=today)),
        ("All time", ALL_TIME),
    ]
