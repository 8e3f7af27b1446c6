"""What the dashboard's API answers: one typed model per response, in the OpenAPI schema."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sales_common.events import Violation
from sales_common.uploads import UploadStatus, UploadSummary

from dashboard.periods import Period


class ProductTotal(BaseModel):
    product: str
    total_amount: Decimal
    quantity: int
    sales_count: int


class OtherProducts(BaseModel):
    """Every product after the top ones, summed into one."""

    product_count: int
    total_amount: Decimal
    quantity: int
    sales_count: int


class DayTotal(BaseModel):
    day: date
    total_amount: Decimal
    sales_count: int


class PeriodTotals(BaseModel):
    period: Period
    total_sales: Decimal
    valid_count: int


class Summary(BaseModel):
    period: Period = Field(description="the days the sales figures cover")
    total_sales: Decimal
    valid_count: int
    product_count: int = Field(description="products sold in the period")
    products: list[ProductTotal] = Field(description="the top products by amount, largest first")
    other: OtherProducts | None = Field(description="the remaining products, summed; null if none")
    daily: list[DayTotal] = Field(description="per day with sales, latest first")
    previous: PeriodTotals | None = Field(
        description="the period of the same length just before, for comparison; null for all time"
    )
    rejected_count: int = Field(
        description="all time: a rejected row has no trustworthy day (its date may be what broke)"
    )
    rejections_by_rule: dict[str, int] = Field(description="all time, as rejected_count")


ProductSort = Literal["total_amount", "quantity", "sales_count", "product"]
SortOrder = Literal["asc", "desc"]


class ProductPage(BaseModel):
    period: Period
    product_count: int
    items: list[ProductTotal]
    next_offset: int | None = Field(description="the offset of the next page; null on the last")


class UploadPage(BaseModel):
    items: list[UploadSummary] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: none")


class RejectedRow(BaseModel):
    row_number: int | None
    fields: dict[str, str] = Field(description="the row as received, customer id hashed")
    violations: list[Violation]


class RejectionPage(BaseModel):
    items: list[RejectedRow] = Field(description="by row number")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: none")


class UploadDetail(UploadStatus):
    rejections: list[RejectedRow]
