"""HTML for people: pure functions from data to markup (escaped), charts as server-side SVG.

Every chart has a table with the same numbers beside it, so the page works without
JavaScript and with screen readers; a small script refreshes the data in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

STYLE = """
:root { --ink:#1d2733; --muted:#5b6b7c; --line:#d6dde5; --accent:#1f7a5a; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.45 system-ui, sans-serif; color:var(--ink); background:#f6f8fa; }
header { display:flex; justify-content:space-between; align-items:center; padding:.75rem 1rem;
         background:#fff; border-bottom:1px solid var(--line); }
main { max-width:1100px; margin:0 auto; padding:1rem; }
h1 { font-size:1.25rem; margin:0; } h2 { font-size:1.05rem; margin:1.5rem 0 .5rem; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit,minmax(180px,1fr)); gap:.75rem; }
.tile { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.75rem 1rem; }
.tile .label { color:var(--muted); font-size:.85rem; } .tile .value { font-size:1.6rem; font-weight:600; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:1rem; overflow-x:auto; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(320px,1fr)); gap:1rem; }
table { border-collapse:collapse; width:100%; font-size:.9rem; }
th, td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
svg { width:100%; height:auto; } .bar { fill:var(--accent); } .line { stroke:var(--accent); fill:none; stroke-width:2; }
.axis { fill:var(--muted); font-size:11px; }
.status-complete { color:var(--accent); } .status-failed { color:var(--bad); }
form.login { max-width:360px; margin:3rem auto; background:#fff; padding:1.5rem; border:1px solid var(--line); border-radius:8px; }
form.login label { display:block; margin:.5rem 0 .25rem; } form.login input { width:100%; padding:.5rem; font-size:1rem; }
button { padding:.5rem 1rem; font-size:1rem; border-radius:6px; border:1px solid var(--ink); background:var(--ink); color:#fff; cursor:pointer; }
.error { color:var(--bad); } .sr-only { position:absolute; left:-10000px; }
"""


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


def money(value: Decimal | str | int) -> str:
    return f"{Decimal(value):,.2f}"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Decimal]) -> str:
    if not values:
        return f"<p>No data yet for {escape(title.lower())}.</p>"
    width, row = 600, 26
    top = max(values) or Decimal(1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        length = float(value / top) * 300
        y = i * row
        bars.append(
            f'<text class="axis" x="0" y="{y + 17}">{escape(label[:28])}</text>'
            f'<rect class="bar" x="200" y="{y + 5}" width="{length:.1f}" height="{row - 8}"/>'
            f'<text class="axis" x="{205 + length:.1f}" y="{y + 17}">{money(value)}</text>'
        )
    return (
        f'<svg viewBox="0 0 {width} {row * len(values)}" role="img" aria-label="{escape(title)}">'
        + "".join(bars)
        + "</svg>"
    )


def line_chart(title: str, labels: Sequence[str], values: Sequence[Decimal]) -> str:
    if not values:
        return f"<p>No data yet for {escape(title.lower())}.</p>"
    width, height, pad = 600, 200, 30
    top = max(values) or Decimal(1)
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    xy = [
        (pad + i * step, height - pad - float(v / top) * (height - 2 * pad))
        for i, v in enumerate(values)
    ]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle class="bar" cx="{x:.1f}" cy="{y:.1f}" r="4"/>' for x, y in xy)
    ticks = f'<text class="axis" x="{pad}" y="{height - 8}">{escape(labels[0])}</text>'
    if len(labels) > 1:
        ticks += f'<text class="axis" x="{width - pad - 60}" y="{height - 8}">{escape(labels[-1])}</text>'
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f'<polyline class="line" points="{points}"/>{dots}{ticks}'
        f'<text class="axis" x="{pad}" y="14">max {money(top)}</text></svg>'
    )


def table(
    caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]
) -> str:
    head = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{escape(h)}</th>'
        for i, h in enumerate(header)
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


def dashboard_body(
    summary: dict[str, Any],
    uploads: list[dict[str, Any]],
    selected: dict[str, Any] | None,
    refresh_s: int,
) -> str:
    total_rows = summary["valid_count"] + summary["rejected_count"]
    share = summary["rejected_count"] / total_rows if total_rows else 0.0
    tiles = "".join(
        f'<div class="tile"><div class="label">{label}</div><div class="value" data-kpi="{key}">{value}</div></div>'
        for key, label, value in (
            ("total_sales", "Total sales", money(summary["total_sales"])),
            ("valid_count", "Valid rows", f"{summary['valid_count']:,}"),
            ("rejected_count", "Rejected rows", f"{summary['rejected_count']:,}"),
            ("rejected_share", "Share rejected", f"{share:.1%}"),
        )
    )
    products = summary["products"]
    daily = list(reversed(summary["daily"]))
    product_chart = bar_chart(
        "Sales by product",
        [p["product"] for p in products],
        [Decimal(p["total_amount"]) for p in products],
    )
    day_chart = line_chart(
        "Sales per day", [str(d["day"]) for d in daily], [Decimal(d["total_amount"]) for d in daily]
    )
    product_table = table(
        "Sales by product",
        ["Product", "Amount", "Quantity", "Sales"],
        [
            [escape(p["product"]), money(p["total_amount"]), p["quantity"], p["sales_count"]]
            for p in products
        ],
        {1, 2, 3},
    )
    day_table = table(
        "Sales per day",
        ["Day", "Amount", "Sales"],
        [[escape(str(d["day"])), money(d["total_amount"]), d["sales_count"]] for d in daily],
        {1, 2},
    )
    upload_rows = [
        [
            f'<a href="/?upload={u["upload_id"]}#rejections">{escape(u["filename"])}</a>',
            f'<span class="status-{escape(u["status"])}">{escape(u["status"])}</span>',
            "" if u["rows_total"] is None else f"{u['rows_total']:,}",
            f"{u['valid_count']:,}",
            f"{u['rejected_count']:,}",
            escape(str(u["created_at"])[:19]),
        ]
        for u in uploads
    ]
    uploads_table = table(
        "Recent uploads",
        ["File", "Status", "Rows", "Valid", "Rejected", "Received"],
        upload_rows,
        {2, 3, 4},
    )
    detail = ""
    if selected is not None:
        rejected = [
            [
                r["row_number"],
                escape("; ".join(f"{v['field']}: {v['message']}" for v in r["violations"])),
                escape(", ".join(f"{k}={v}" for k, v in r["fields"].items())),
            ]
            for r in selected["rejections"]
        ]
        detail = (
            f'<h2 id="rejections">Rejected rows of {escape(selected["filename"])}</h2>'
            f'<div class="panel">'
            + (
                table(
                    "Rejected rows with every reason", ["Row", "Reasons", "Fields"], rejected, {0}
                )
                if rejected
                else "<p>No rejected rows.</p>"
            )
            + f'<p><a href="/api/v1/uploads/{selected["upload_id"]}/rejections.csv">Download as CSV</a></p></div>'
        )
    return f"""
<div id="live" data-refresh="{refresh_s}">
<section aria-label="Key figures" class="tiles">{tiles}</section>
<div class="grid2">
<section><h2>Sales by product</h2><div class="panel">{product_chart}<details><summary>Table</summary>{product_table}</details></div></section>
<section><h2>Sales per day</h2><div class="panel">{day_chart}<details><summary>Table</summary>{day_table}</details></div></section>
</div>
<section><h2>Recent uploads</h2><div class="panel">{uploads_table}</div></section>
{detail}
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
