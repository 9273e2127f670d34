"""Each dashboard in Debian's chromium over 120 days of demo history: the charts are
drawn, the tables are beside them, and a screenshot of each goes to test-output/
(analytics-<theme>.png) to be looked at, then copied to docs/screenshots/ by hand: a test
run must not change the repository."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from ris_app.analytics.boards import THEMES
from ris_app.analytics.demo import generate
from ris_app.db import transaction
from ris_app.web.auth import create_user
from tests.conftest import TEST_OUTPUT, free_port
from tests.e2e.test_pages_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
SHOTS = TEST_OUTPUT
PASSWORD = "manager of the dept 1"


@pytest.fixture
def served(app):
    with app.extensions["ris_engine"].begin() as conn:
        generate(conn, 120, seed=13)
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "head", PASSWORD, "admin", "Head of Department")
        create_user(s, "ops", PASSWORD, "manager", "Operations Lead")
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


@contextmanager
def _logged_in(served: str, username: str):
    """Debian's chromium at 1280 px, logged in as `username`; yields the page."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is missing: scripts/install-debian-packages.sh chromium chromium-driver fonts-dejavu-core"
        )
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page.set_default_timeout(30_000)
        page.goto(f"{served}/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        try:
            yield page
        finally:
            browser.close()


def test_every_dashboard_in_chromium(served):
    with _logged_in(served, "head") as page:
        page.click("nav summary:has-text('Admin')")  # the admin's pages fold into a menu of the bar
        page.click("nav >> text=Analytics")
        for theme, (title, _, _) in THEMES.items():
            page.goto(f"{served}/analytics/{theme}")
            assert page.locator("h1").inner_text() == title
            assert page.locator("figure.chart svg").count() >= 1, theme
            assert page.locator("section.analytics-table table").count() >= 1, theme
            page.screenshot(path=str(SHOTS / f"analytics-{theme}.png"), full_page=False)


def test_a_manager_sees_the_analytics_and_nothing_else(served):
    """The manager role in the browser: lands on the analytics, the bar holds Analytics
    alone, and the durations dashboard offers no button that changes the catalog."""
    with _logged_in(served, "ops") as page:
        page.wait_for_url(f"{served}/analytics/turnaround")
        assert page.locator("nav[aria-label=Pages] a").all_inner_texts() == ["Analytics"]
        page.screenshot(path=str(SHOTS / "analytics-manager.png"), full_page=False)
        page.goto(f"{served}/analytics/durations")
        assert page.locator("section.analytics-table table").count() >= 1
        assert page.locator("button:has-text('Set ')").count() == 0
