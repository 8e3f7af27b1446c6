from dashboard.pages import bar_chart, dashboard_body, line_chart, login_page

SUMMARY = {
    "total_sales": "2499.83",
    "valid_count": 3,
    "rejected_count": 1,
    "products": [
        {
            "product": "<script>alert(1)</script>",
            "total_amount": "10.00",
            "quantity": 1,
            "sales_count": 1,
        }
    ],
    "rejections_by_rule": {"prefix": 1},
    "daily": [
        {"day": "2026-11-02", "total_amount": "5.00", "sales_count": 1},
        {"day": "2026-11-01", "total_amount": "5.00", "sales_count": 1},
    ],
}


def test_user_text_is_escaped_everywhere() -> None:
    html = dashboard_body(
        SUMMARY,
        [
            {
                "upload_id": "u1",
                "filename": '"><img src=x onerror=alert(1)>',
                "status": "complete",
                "rows_total": 4,
                "valid_count": 3,
                "rejected_count": 1,
                "created_at": "2026-11-26T00:00:00",
            }
        ],
        None,
        5,
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_kpis_and_tables_behind_the_charts() -> None:
    html = dashboard_body(SUMMARY, [], None, 5)
    assert 'data-kpi="total_sales">2,499.83<' in html
    assert 'data-kpi="rejected_share">25.0%<' in html
    assert "<caption>Sales by product</caption>" in html
    assert "<caption>Sales per day</caption>" in html
    assert 'role="img" aria-label="Sales by product"' in html


def test_charts_handle_no_data_and_one_point() -> None:
    assert "No data yet" in bar_chart("Sales by product", [], [])
    assert "<polyline" in line_chart(
        "Sales per day", ["2026-11-01"], [__import__("decimal").Decimal(5)]
    )


def test_login_page_escapes_the_echoed_name_and_error() -> None:
    html = login_page("<b>bad</b>", '"><script>')
    assert "<b>bad</b>" not in html
    assert '"><script>' not in html
