"""The dashboard page in a real browser (Debian's chromium, headless, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
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
