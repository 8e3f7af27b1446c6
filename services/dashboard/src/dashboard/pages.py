"""HTML for people: pure functions from data to markup (escaped), charts drawn server-side.

Every chart has a table with the same numbers beside it, so the page works without
JavaScript and with screen readers; a small script refreshes the data in place. Numbers are
written by figures.py: compact in tiles and chart labels, exact on hover and in the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape
from urllib.parse import urlencode

from dashboard.figures import change, compact_count, compact_money, count, money, percent
from dashboard.models import (
    ProductPage,
    ProductSort,
    SortOrder,
    Summary,
    UploadDetail,
    UploadPage,
)
from dashboard.periods import presets

STYLE = """
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d6dde5; --accent:#1f7a5a; --other:#8a9aab; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, sans-serif; color:var(--ink); background:#f6f8fa; }
header { display:flex; justify-content:space-between; align-items:center; gap:.5rem; padding:.75rem 1rem;
         background:#fff; border-bottom:1px solid var(--line); }
main { max-width:1100px; margin:0 auto; padding:1rem; }
h1 { font-size:1.25rem; margin:0; } h2 { font-size:1.05rem; margin:1.5rem 0 .5rem; }
data, .num, .tile .value, .hbar-value { font-variant-numeric:tabular-nums; }
.range { display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; margin-bottom:.5rem; }
.range a { padding:.25rem .6rem; border:1px solid var(--line); border-radius:999px; background:#fff; color:var(--ink); text-decoration:none; }
.range a[aria-current] { background:var(--ink); color:#fff; border-color:var(--ink); }
.range form { display:flex; flex-wrap:wrap; gap:.35rem; align-items:center; }
.range input { font:inherit; padding:.2rem .3rem; max-width:10.5rem; }
.range button { padding:.25rem .75rem; }
.period { color:var(--muted); margin:.25rem 0 .75rem; overflow-wrap:anywhere; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit,minmax(min(100%,180px),1fr)); gap:.75rem; }
.tile { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.75rem 1rem; min-width:0; container-type:inline-size; }
.tile .label { color:var(--muted); font-size:.85rem; }
.tile .value { font-size:clamp(1.1rem, 14cqi, 1.6rem); font-weight:600; white-space:nowrap; }
.tile .delta { font-size:.8rem; color:var(--muted); overflow-wrap:anywhere; }
.delta .up { color:var(--accent); } .delta .down { color:var(--bad); }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:1rem; overflow-x:auto; min-width:0; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(min(100%,320px),1fr)); gap:1rem; }
.grid2 > section { min-width:0; }
table { border-collapse:collapse; width:100%; font-size:.9rem; }
th, td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
td.num, th.num { text-align:right; white-space:nowrap; }
td { overflow-wrap:break-word; }
.hbars { display:grid; gap:.3rem; font-size:.85rem; }
.hbar { display:grid; grid-template-columns:minmax(0,10rem) minmax(2rem,1fr) auto; gap:.5rem; align-items:center; min-width:0; }
.hbar-label { overflow-wrap:anywhere; display:-webkit-box; -webkit-line-clamp:2; -webkit-box-orient:vertical; overflow:hidden; }
.hbar-track { display:block; height:1rem; }
.hbar-fill { display:block; height:100%; min-width:2px; background:var(--accent); border-radius:2px; }
.hbar.other .hbar-fill { background:var(--other); }
.hbar-value { white-space:nowrap; text-align:right; }
svg { width:100%; height:auto; } .line { stroke:var(--accent); fill:none; stroke-width:2; } .dot { fill:var(--accent); }
.axis { fill:var(--muted); font-size:13px; }
.pager { display:flex; flex-wrap:wrap; gap:1rem; align-items:center; margin-top:.5rem; }
.status-complete { color:var(--accent); } .status-failed { color:var(--bad); }
form.login { max-width:360px; margin:3rem auto; background:#fff; padding:1.5rem; border:1px solid var(--line); border-radius:8px; }
form.login label { display:block; margin:.5rem 0 .25rem; } form.login input { width:100%; padding:.5rem; font-size:1rem; }
button { padding:.5rem 1rem; font-size:1rem; border-radius:6px; border:1px solid var(--ink); background:var(--ink); color:#fff; cursor:pointer; }
.error { color:var(--bad); } .sr-only { position:absolute; left:-10000px; }
"""

PRODUCTS_PAGE_SIZE = 25


def layout(title: str, body: str, user: str | None = None) -> str:
    logout = (
        f'<form method="post" action="/logout"><span>{escape(user)}</span> '
        '<button type="submit">Log out</button></form>'
        if user
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="stylesheet" href="/static/app.css"></head>
<body><header><h1>Sales pipeline</h1>{logout}</header><main id="main">{body}</main>
<script src="/static/app.js" defer></script></body></html>"""


def login_page(error: str | None = None, username: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return layout(
        "Log in - Sales pipeline",
        f"""
<form class="login" method="post" action="/login">
  <h2>Log in</h2>{message}
  <label for="username">User name</label>
  <input id="username" name="username" autocomplete="username" required value="{escape(username)}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <p><button type="submit">Log in</button></p>
</form>""",
    )


def amount(value: Decimal) -> str:
    """An amount as shown in a tile or a chart: compact, the exact amount on hover."""
    return f'<data value="{value}" title="{money(value)}">{escape(compact_money(value))}</data>'


def rows_figure(value: int) -> str:
    return f'<data value="{value}" title="{count(value)}">{escape(compact_count(value))}</data>'


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    other: bool = False


def bar_chart(title: str, bars: Sequence[Bar]) -> str:
    """Horizontal bars in HTML, not SVG: labels wrap and values keep their size on a phone,
    where text in a scaled SVG shrank to unreadable and ran past the edge."""
    if not bars:
        return f"<p>No data yet for {escape(title.lower())}.</p>"
    top = max(b.value for b in bars) or Decimal(1)
    rows = "".join(
        f'<div class="hbar{" other" if b.other else ""}">'
        f'<span class="hbar-label" title="{escape(b.label)}">{escape(b.label)}</span>'
        f'<span class="hbar-track"><span class="hbar-fill" style="width:{float(b.value / top) * 100:.1f}%"></span></span>'
        f'<span class="hbar-value">{amount(b.value)}</span></div>'
        for b in bars
    )
    return f'<div class="hbars" role="img" aria-label="{escape(title)}">{rows}</div>'


def line_chart(title: str, labels: Sequence[str], values: Sequence[Decimal]) -> str:
    if not values:
        return f"<p>No data yet for {escape(title.lower())}.</p>"
    width, height, pad = 480, 200, 12
    top = max(values) or Decimal(1)
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    xy = [
        (pad + i * step, height - 28 - float(v / top) * (height - 56)) for i, v in enumerate(values)
    ]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in xy)
    # Anchored at the edges they stand for, so neither end runs past the box.
    ticks = f'<text class="axis" x="{pad}" y="{height - 6}">{escape(labels[0])}</text>'
    if len(labels) > 1:
        ticks += f'<text class="axis" x="{width - pad}" y="{height - 6}" text-anchor="end">{escape(labels[-1])}</text>'
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<polyline class="line" points="{points}"/>{dots}{ticks}'
        f'<text class="axis" x="{pad}" y="16">max {escape(compact_money(top))}</text></svg>'
    )


def table(
    caption: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric: set[int],
    head_html: Sequence[str] | None = None,
) -> str:
    """Cells are markup already (escape user text before); `head_html`: markup for the header."""
    heads = head_html or [escape(h) for h in header]
    head = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{h}</th>'
        for i, h in enumerate(heads)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class PageView:
    """Everything one rendering of the dashboard shows, and the query that chose it."""

    summary: Summary
    all_time: Summary  # the rejection share is of all rows ever, whatever the period
    products: ProductPage
    product_sort: ProductSort
    product_order: SortOrder
    uploads: UploadPage
    products_offset: int
    uploads_cursor: str | None
    selected: UploadDetail | None
    today: date
    refresh_s: int
    error: str | None = None

    def url(self, **changes: str | int | None) -> str:
        """This page's address with some parameters changed (None drops one)."""
        period = self.summary.period
        params: dict[str, str | int | None] = {
            "from": str(period.from_) if period.from_ else None,
            "to": str(period.to) if period.to else None,
            "sort": None if self.product_sort == "total_amount" else self.product_sort,
            "order": None if self.product_order == "desc" else self.product_order,
            "offset": None,  # a new sort or range starts at the first page
            "uploads": self.uploads_cursor,
            "upload": str(self.selected.upload_id) if self.selected else None,
        }
        params.update(changes)
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return "/?" + query if query else "/"


def _range_bar(view: PageView) -> str:
    period = view.summary.period
    links = "".join(
        f'<a href="{escape(view.url(**{"from": str(p.from_) if p.from_ else None, "to": str(p.to) if p.to else None}, offset=None, uploads=None))}"'
        f"{' aria-current=page' if p == period else ''}>{escape(name)}</a>"
        for name, p in presets(view.today)
    )
    start = escape(str(period.from_) if period.from_ else "")
    end = escape(str(period.to) if period.to else "")
    form = (
        '<form method="get" action="/" aria-label="Custom range">'
        f'<label for="range-from">From</label><input id="range-from" name="from" type="date" value="{start}">'
        f'<label for="range-to">To</label><input id="range-to" name="to" type="date" value="{end}">'
        '<button type="submit">Apply</button></form>'
    )
    return f'<nav class="range" aria-label="Period">{links}{form}</nav>'


def _period_line(view: PageView) -> str:
    summary = view.summary
    text = f"Sales of <strong>{escape(summary.period.label())}</strong>"
    if summary.period.days:
        days = summary.period.days
        text += f" ({days:,} day{'s' if days > 1 else ''}, by sale date in UTC)"
    if summary.previous is not None:
        text += f", compared with {escape(summary.previous.period.label())}"
    text += ". Rejected rows: all time."
    error = f'<p class="error" role="alert">{escape(view.error)}</p>' if view.error else ""
    return f'{error}<p class="period" data-period="{escape(summary.period.label())}">{text}</p>'


def _delta(current: Decimal | int, previous: Decimal | int | None) -> str:
    if previous is None:
        return ""
    moved = change(current, previous)
    if moved is None:
        return '<div class="delta">none in the previous period</div>'
    direction = "up" if current >= previous else "down"
    arrow = "\u25b2" if direction == "up" else "\u25bc"
    return f'<div class="delta"><span class="{direction}">{arrow} {escape(moved)}</span> vs previous</div>'


def _tiles(view: PageView) -> str:
    summary, all_time = view.summary, view.all_time
    total_rows = all_time.valid_count + all_time.rejected_count
    share = all_time.rejected_count / total_rows if total_rows else 0.0
    previous = summary.previous
    tiles = (
        (
            "total_sales",
            "Total sales",
            amount(summary.total_sales),
            _delta(summary.total_sales, previous.total_sales if previous else None),
        ),
        (
            "valid_count",
            "Valid rows",
            rows_figure(summary.valid_count),
            _delta(summary.valid_count, previous.valid_count if previous else None),
        ),
        ("rejected_count", "Rejected rows, all time", rows_figure(all_time.rejected_count), ""),
        ("rejected_share", "Share rejected, all time", escape(percent(share)), ""),
    )
    return "".join(
        f'<div class="tile" data-tile="{key}"><div class="label">{label}</div>'
        f'<div class="value" data-kpi="{key}">{value}</div>{delta}</div>'
        for key, label, value, delta in tiles
    )


def _products_section(view: PageView) -> str:
    page = view.products
    arrows = {"asc": " \u2191", "desc": " \u2193"}
    heads = []
    for column, name in (
        ("product", "Product"),
        ("total_amount", "Amount"),
        ("quantity", "Quantity"),
        ("sales_count", "Sales"),
    ):
        current = view.product_sort == column
        order = "asc" if current and view.product_order == "desc" else "desc"
        if column == "product" and not current:
            order = "asc"
        mark = arrows[view.product_order] if current else ""
        href = view.url(sort=column, order=order, offset=None)
        heads.append(f'<a href="{escape(href)}#products">{name}{mark}</a>')
    rows = [
        [escape(p.product), money(p.total_amount), count(p.quantity), count(p.sales_count)]
        for p in page.items
    ]
    pager = []
    start = view.products_offset
    if start > 0:
        before = max(start - PRODUCTS_PAGE_SIZE, 0)
        pager.append(f'<a href="{escape(view.url(offset=before or None))}#products">Previous</a>')
    if page.items:
        pager.append(
            f"<span>{count(start + 1)}\u2013{count(start + len(page.items))} of {count(page.product_count)}</span>"
        )
    if page.next_offset is not None:
        pager.append(f'<a href="{escape(view.url(offset=page.next_offset))}#products">Next</a>')
    period = view.summary.period
    csv_query = urlencode(
        {
            k: v
            for k, v in {
                "from": period.from_,
                "to": period.to,
                "sort": view.product_sort,
                "order": view.product_order,
            }.items()
            if v is not None
        }
    )
    pager.append(f'<a href="/ui/products.csv?{escape(csv_query)}" download>Download all as CSV</a>')
    body = (
        table("All products", [], rows, {1, 2, 3}, head_html=heads)
        if rows
        else "<p>No products in this period.</p>"
    )
    return (
        f'<section id="products"><h2>All products ({count(page.product_count)})</h2>'
        f'<div class="panel">{body}<div class="pager">{"".join(pager)}</div></div></section>'
    )


def _uploads_section(view: PageView) -> str:
    upload_rows = [
        [
            f'<a href="{escape(view.url(upload=str(u.upload_id)))}#rejections">{escape(u.filename)}</a>',
            f'<span class="status-{escape(u.status)}">{escape(u.status)}</span>',
            "" if u.rows_total is None else count(u.rows_total),
            count(u.valid_count),
            count(u.rejected_count),
            escape(u.created_at.isoformat(sep=" ")[:19]),
        ]
        for u in view.uploads.items
    ]
    pager = []
    if view.uploads_cursor is not None:
        pager.append(f'<a href="{escape(view.url(uploads=None))}#uploads">Newest</a>')
    if view.uploads.next_cursor is not None:
        pager.append(
            f'<a href="{escape(view.url(uploads=view.uploads.next_cursor))}#uploads">Older</a>'
        )
    uploads_table = table(
        "Recent uploads",
        ["File", "Status", "Rows", "Valid", "Rejected", "Received (UTC)"],
        upload_rows,
        {2, 3, 4},
    )
    return (
        f'<section id="uploads"><h2>Recent uploads</h2><div class="panel">{uploads_table}'
        f'<div class="pager">{"".join(pager)}</div></div></section>'
    )


def _detail_section(selected: UploadDetail | None) -> str:
    if selected is None:
        return ""
    rejected = [
        [
            r.row_number,
            escape("; ".join(f"{v.field}: {v.message}" for v in r.violations)),
            escape(", ".join(f"{k}={v}" for k, v in r.fields.items())),
        ]
        for r in selected.rejections
    ]
    return (
        f'<h2 id="rejections">Rejected rows of {escape(selected.filename)}</h2>'
        f'<div class="panel">'
        + (
            table("Rejected rows with every reason", ["Row", "Reasons", "Fields"], rejected, {0})
            if rejected
            else "<p>No rejected rows.</p>"
        )
        + f'<p><a href="/ui/uploads/{selected.upload_id}/rejections.csv" download>Download as CSV</a></p></div>'
    )


def dashboard_body(view: PageView) -> str:
    summary = view.summary
    bars = [Bar(p.product, p.total_amount) for p in summary.products]
    if summary.other is not None:
        others = summary.other.product_count
        bars.append(
            Bar(
                f"Other ({others:,} product{'s' if others > 1 else ''})",
                summary.other.total_amount,
                True,
            )
        )
    product_rows = [
        [escape(p.product), money(p.total_amount), count(p.quantity), count(p.sales_count)]
        for p in summary.products
    ]
    if summary.other is not None:
        o = summary.other
        product_rows.append(
            [
                f"Other ({count(o.product_count)} products)",
                money(o.total_amount),
                count(o.quantity),
                count(o.sales_count),
            ]
        )
    daily = list(reversed(summary.daily))
    day_chart = line_chart(
        "Sales per day", [str(d.day) for d in daily], [d.total_amount for d in daily]
    )
    product_table = table(
        "Sales by product", ["Product", "Amount", "Quantity", "Sales"], product_rows, {1, 2, 3}
    )
    day_table = table(
        "Sales per day",
        ["Day", "Amount", "Sales"],
        [[escape(str(d.day)), money(d.total_amount), count(d.sales_count)] for d in daily],
        {1, 2},
    )
    return f"""
<div id="live" data-refresh="{view.refresh_s}">
{_range_bar(view)}{_period_line(view)}
<section aria-label="Key figures" class="tiles">{_tiles(view)}</section>
<div class="grid2">
<section><h2>Sales by product</h2><div class="panel">{bar_chart("Sales by product", bars)}<details><summary>Table</summary>{product_table}</details><p><a href="#products">All {count(summary.product_count)} products</a></p></div></section>
<section><h2>Sales per day</h2><div class="panel">{day_chart}<details><summary>Table</summary>{day_table}</details></div></section>
</div>
{_products_section(view)}
{_uploads_section(view)}
{_detail_section(view.selected)}
</div>"""


APP_JS = """
// Refresh the figures in place (no page reload); the page works without this script.
(function () {
  var live = document.getElementById('live');
  if (!live) return;
  var seconds = parseInt(live.dataset.refresh || '5', 10);
  setInterval(function () {
    fetch('/ui/live' + window.location.search, {credentials: 'same-origin'})
      .then(function (r) { if (r.status === 401) { window.location = '/login'; } return r.ok ? r.text() : null; })
      .then(function (html) { if (html) { document.getElementById('live').outerHTML = html; } })
      .catch(function () {});
  }, seconds * 1000);
})();
"""
