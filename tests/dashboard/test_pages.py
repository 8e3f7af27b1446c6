import re
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from dashboard.models import (
    DayTotal,
    OtherProducts,
    PeriodTotals,
    ProductPage,
    ProductTotal,
    Summary,
    UploadPage,
)
from dashboard.pages import Bar, PageView, bar_chart, dashboard_body, line_chart, login_page
from dashboard.periods import ALL_TIME, Period
from sales_common.uploads import UploadSummary

WEEK = Period(from_=date(2026, 11, 20), to=date(2026, 11, 26))


def summary(**changes: object) -> Summary:
    base = Summary(
        period=ALL_TIME,
        total_sales=Decimal("2499.83"),
        valid_count=3,
        product_count=1,
        products=[
            ProductTotal(
                product="<script>alert(1)</script>",
                total_amount=Decimal("10.00"),
                quantity=1,
                sales_count=1,
            )
        ],
        other=None,
        daily=[
            DayTotal(day=date(2026, 11, 2), total_amount=Decimal("5.00"), sales_count=1),
            DayTotal(day=date(2026, 11, 1), total_amount=Decimal("5.00"), sales_count=1),
        ],
        previous=None,
        rejected_count=1,
        rejections_by_rule={"prefix": 1},
    )
    return base.model_copy(update=changes)


def view(current: Summary | None = None, **changes: object) -> PageView:
    current = current or summary()
    fields: dict[str, object] = {
        "summary": current,
        "all_time": summary(),
        "products": ProductPage(
            period=current.period,
            product_count=current.product_count,
            items=current.products,
            next_offset=None,
        ),
        "product_sort": "total_amount",
        "product_order": "desc",
        "products_offset": 0,
        "uploads": UploadPage(items=[], next_cursor=None),
        "uploads_cursor": None,
        "selected": None,
        "today": date(2026, 11, 26),
        "refresh_s": 5,
    }
    fields.update(changes)
    return PageView(**fields)  # type: ignore[arg-type]


def kpi(html: str, key: str) -> str:
    found = re.search(rf'data-kpi="{key}">(.*?)</div>', html)
    assert found, key
    return re.sub(r"<[^>]+>", "", found.group(1))


def test_user_text_is_escaped_everywhere() -> None:
    upload = UploadSummary(
        upload_id=UUID(int=1),
        filename='"><img src=x onerror=alert(1)>',
        status="complete",
        rows_total=4,
        valid_count=3,
        rejected_count=1,
        valid_amount=Decimal("1.00"),
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
        completed_at=None,
    )
    html = dashboard_body(view(uploads=UploadPage(items=[upload], next_cursor="abc")))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_kpis_and_tables_behind_the_charts() -> None:
    html = dashboard_body(view())
    assert kpi(html, "total_sales") == "2,499.83"
    assert kpi(html, "rejected_share") == "25.0%"
    assert "<caption>Sales by product</caption>" in html
    assert "<caption>Sales per day</caption>" in html
    assert 'role="img" aria-label="Sales by product"' in html


def test_large_figures_are_compact_with_the_exact_value_on_hover() -> None:
    big = summary(total_sales=Decimal("54627860010.00"), valid_count=2_200_000)
    html = dashboard_body(view(big))
    assert kpi(html, "total_sales") == "54.6 B"
    assert 'value="54627860010.00" title="54,627,860,010.00"' in html
    assert kpi(html, "valid_count") == "2.20 M"


def test_top_products_and_the_rest_as_one_bar() -> None:
    top = [
        ProductTotal(
            product=f"Halal {n}", total_amount=Decimal(1000 - n), quantity=1, sales_count=1
        )
        for n in range(10)
    ]
    other = OtherProducts(
        product_count=490, total_amount=Decimal("9156240634.90"), quantity=5, sales_count=5
    )
    html = dashboard_body(view(summary(products=top, other=other, product_count=500)))
    chart = html[html.index('class="hbars"') : html.index("</div></div><details>")]
    assert chart.count('<div class="hbar') == 11
    assert "Other (490 products)" in chart
    assert ">9.16 B<" in chart
    assert "Other (490 products)</td><td class=num>9,156,240,634.90" in html
    assert "All 500 products" in html


def test_a_period_compares_with_the_previous_one() -> None:
    previous = PeriodTotals(
        period=Period(from_=date(2026, 11, 13), to=date(2026, 11, 19)),
        total_sales=Decimal("2000.00"),
        valid_count=4,
    )
    html = dashboard_body(view(summary(period=WEEK, previous=previous)))
    assert "2026-11-20 \u2013 2026-11-26" in html
    assert "\u25b2 +25.0%" in html  # 2,499.83 against 2,000.00
    assert "\u25bc \u221225.0%" in html  # 3 rows against 4
    assert 'href="/?from=2026-11-20&amp;to=2026-11-26" aria-current=page>7 days' in html
    nothing_before = previous.model_copy(update={"total_sales": Decimal(0), "valid_count": 0})
    html = dashboard_body(view(summary(period=WEEK, previous=nothing_before)))
    assert "none in the previous period" in html


def test_sorting_and_paging_links_keep_the_period() -> None:
    html = dashboard_body(view(summary(period=WEEK)))
    assert (
        'href="/?from=2026-11-20&amp;to=2026-11-26&amp;sort=product&amp;order=asc#products"' in html
    )
    assert (
        'href="/ui/products.csv?from=2026-11-20&amp;to=2026-11-26&amp;sort=total_amount&amp;order=desc"'
        in html
    )


def test_charts_handle_no_data_and_one_point() -> None:
    assert "No data yet" in bar_chart("Sales by product", [])
    assert "<polyline" in line_chart("Sales per day", ["2026-11-01"], [Decimal(5)])
    assert 'style="width:0.0%"' in bar_chart("x", [Bar("Halal A", Decimal(0))])  # no 0 / 0


def test_login_page_escapes_the_echoed_name_and_error() -> None:
    html = login_page("<b>bad</b>", '"><script>')
    assert "<b>bad</b>" not in html
    assert '"><script>' not in html


def test_the_page_shows_a_bad_range_as_an_error_over_all_time() -> None:
    from dashboard.ui import _period

    assert _period("2026-03-01", "") == (Period(from_=date(2026, 3, 1)), None)
    period, error = _period("2026-03-02", "2026-03-01")
    assert period == ALL_TIME
    assert error == "That range cannot be shown ('to' is before 'from'); showing all time."
    assert _period("2026-02-30", None)[0] == ALL_TIME
    html = dashboard_body(view(error=error))
    assert '<p class="error" role="alert">That range cannot be shown' in html
