"""The dashboard page in a real browser (Debian's chromium, headless, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from dashboard.figures import change, compact_money, money
from devstack.pipeline import RunningPipeline
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ARTIFACTS, DATA

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ARTIFACTS / "screenshots"
# No network here: keep Chromium from calling home (it would be refused, many times over).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(started: RunningPipeline) -> Iterator[Browser]:
    """Launched after the pipeline (and its database) is up: Playwright's sync API keeps an
    event loop running in this thread while the browser lives."""
    if not shutil.which("chromium"):
        # Never a silent skip: `make test` installs it (the `browser` target).
        pytest.fail(
            "Debian's chromium is not installed: `make browser` or apt-get install chromium"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def log_in(page: Page, pipeline: RunningPipeline) -> None:
    page.goto(f"{pipeline.url('dashboard')}/")
    expect(page).to_have_url(f"{pipeline.url('dashboard')}/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(pipeline.secrets.user_passwords["alice"])
    page.get_by_role("button", name="Log in").click()


def test_log_in_see_numbers_open_rejections_log_out(
    started: RunningPipeline, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    token = started.token("uploader")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, started)
    expect(page.locator('[data-kpi="total_sales"]')).to_have_text("0.00")

    # A real upload lands while the page is open: the figures update without a reload.
    upload = started.client.upload(DATA / "sales.csv", token).json()
    started.client.wait_complete(upload["upload_id"], token)
    expect(page.locator('[data-kpi="total_sales"]')).to_have_text("2,499.83", timeout=20_000)
    expect(page.locator('[data-kpi="valid_count"]')).to_have_text("3")
    expect(page.locator('[data-kpi="rejected_count"]')).to_have_text("3")
    expect(page.locator('[data-kpi="rejected_share"]')).to_have_text("50.0%")
    expect(page.get_by_role("img", name="Sales by product")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "sales_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

    page.get_by_role("link", name="sales.csv").click()
    rejections = page.get_by_role("table", name="Rejected rows with every reason")
    expect(rejections).to_contain_text("product: product is missing")
    expect(rejections).to_contain_text("price: price is not a number")
    expect(rejections).to_contain_text("quantity: quantity 150 is above the allowed range")
    page.screenshot(path=str(SHOTS / "rejections.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{started.url('dashboard')}/login")
    page.goto(f"{started.url('dashboard')}/")
    expect(page).to_have_url(f"{started.url('dashboard')}/login")
    context.close()


def test_phone_sized_screen(started: RunningPipeline, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    log_in(page, started)
    expect(page.locator('[data-kpi="total_sales"]')).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    context.close()


def test_failed_logins_are_rate_limited(started: RunningPipeline) -> None:
    url = f"{started.url('dashboard')}/login"
    with httpx.Client() as http:
        codes = [
            http.post(url, data={"username": "alice", "password": "wrong"}).status_code
            for _ in range(6)
        ]
        right = http.post(
            url, data={"username": "alice", "password": started.secrets.user_passwords["alice"]}
        )
    assert codes == [401] * 5 + [429]
    assert right.status_code == 429  # still locked out for the window, even with the right password


# --- real volume: totals above 10^10 and 500 products -------------------------------------

TOP = 10  # the dashboard's default top_products
# Every element that shows a figure or a label and must never be cut: its content fits its box.
OVERFLOWING = """() => {
  const cut = [];
  const boxes = document.querySelectorAll(
    '.tile, .tile .label, .tile .value, .tile .delta, .hbars, .hbar, .hbar-label, .hbar-value');
  for (const el of boxes) {
    if (el.scrollWidth > el.clientWidth) {
      cut.push(`${el.className}: "${el.textContent}" ${el.scrollWidth} > ${el.clientWidth}`);
    }
  }
  for (const text of document.querySelectorAll('svg text')) {
    const box = text.ownerSVGElement.getBoundingClientRect();
    const r = text.getBoundingClientRect();
    if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
      cut.push(`svg text "${text.textContent}" ${r.left}..${r.right} in ${box.left}..${box.right}`);
    }
  }
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth) cut.push(`page: ${page.scrollWidth}px wide`);
  return cut;
}"""


def big_dataset(path: Path, today: date) -> list[tuple[date, Decimal]]:
    """1,500 sales of 500 products over the last 45 days (UTC), three products priced in
    billions: all time is above 10^10. Returns each sale's day and amount."""
    sales = []
    lines = ["product,price,quantity,date"]
    for n in range(1, 1501):
        product = n % 500
        if product < 3:
            price, quantity = Decimal(9_000_000_000 + n), 7
        else:
            price, quantity = Decimal(n * 37 % 100_000) / 100 + 1, n % 5 + 1
        day = today - timedelta(days=n % 45)
        lines.append(f"Halal Product {product:03d},{price:.2f},{quantity},{day}")
        sales.append((day, price * quantity))
    path.write_text("\n".join(lines) + "\n")
    return sales


def total(sales: list[tuple[date, Decimal]], start: date, end: date) -> Decimal:
    return sum((amount for day, amount in sales if start <= day <= end), Decimal("0.00"))


def assert_nothing_overflows(page: Page, where: str) -> None:
    cut = page.evaluate(OVERFLOWING)
    assert cut == [], f"{where}: {cut}"


def assert_total(page: Page, expected: Decimal) -> None:
    tile = page.locator('[data-kpi="total_sales"]')
    expect(tile).to_have_text(compact_money(expected), timeout=20_000)
    # The exact figure stays one hover away.
    assert Decimal(tile.locator("data").get_attribute("value") or "") == expected
    expect(tile.locator("data")).to_have_attribute("title", money(expected))


@pytest.mark.parametrize("width", [375, 1280])
def test_real_volume_fits_at_any_width_and_ranges_change_the_figures(
    started: RunningPipeline, browser: Browser, tmp_path: Path, width: int
) -> None:
    today = datetime.now(UTC).date()
    sales = big_dataset(tmp_path / "big.csv", today)
    all_time = total(sales, date.min, date.max)
    assert all_time > 10**10
    token = started.token("uploader")
    upload = started.client.upload(tmp_path / "big.csv", token).json()
    started.client.wait_complete(upload["upload_id"], token)

    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport={"width": width, "height": 900 if width > 375 else 740}, is_mobile=width == 375
    )
    page = context.new_page()
    log_in(page, started)
    assert_total(page, all_time)
    bars = page.get_by_role("img", name="Sales by product").locator(".hbar")
    expect(bars).to_have_count(TOP + 1)
    expect(bars.last).to_contain_text(f"Other ({500 - TOP} products)")
    expect(page.get_by_role("heading", name="All products (500)")).to_be_visible()
    assert_nothing_overflows(page, f"all time at {width}px")
    page.screenshot(path=str(SHOTS / f"volume-{width}.png"), full_page=True)

    for preset, start in (("7 days", today - timedelta(days=6)), ("Today", today)):
        page.get_by_role("navigation", name="Period").get_by_role("link", name=preset).click()
        assert_total(page, total(sales, start, today))
        length = (today - start).days + 1
        before = total(sales, start - timedelta(days=length), start - timedelta(days=1))
        moved = change(total(sales, start, today), before)
        assert moved is not None
        expect(page.locator('[data-tile="total_sales"] .delta')).to_contain_text(moved)
        expect(bars).to_have_count(TOP + 1)
        assert_nothing_overflows(page, f"{preset} at {width}px")
    page.screenshot(path=str(SHOTS / f"volume-today-{width}.png"), full_page=True)

    # A range of one's own, through the form: a day with no sales at all.
    page.get_by_label("From", exact=True).fill("2020-01-01")
    page.get_by_label("To", exact=True).fill("2020-01-01")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator('[data-kpi="total_sales"]')).to_have_text("0.00")
    expect(page.locator('[data-kpi="valid_count"]')).to_have_text("0")
    context.close()
