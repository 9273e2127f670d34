"""The same labelled time in a real browser whose own zone is a third one (Asia/Tokyo):
the pages carry the site's time in their HTML, so no client-side code can shift it.

The site is Europe/Berlin, the server process America/New_York (tests/fixtures/site_times.py);
the app is served on a free port from this process. Screenshots go to test-output/."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from ris_app.db import transaction
from ris_app.web.auth import create_user
from tests.conftest import TEST_OUTPUT, free_port
from tests.e2e.test_pages_browser import browser  # noqa: F401
from tests.fixtures.site_times import ABBREVIATION, RECEIVED_ATTR, SHOWN, berlin  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.db]

BROWSER_ZONE = "Asia/Tokyo"  # neither the site's (Berlin), the server's (New York) nor UTC
PASSWORD = "site time 2026"


@pytest.fixture
def served(berlin):  # noqa: F811
    port = free_port()
    server = make_server("127.0.0.1", port, berlin.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


def test_the_browser_shows_the_sites_labelled_time_whatever_its_own_zone(browser, berlin, served):  # noqa: F811
    with transaction(berlin.app.extensions["ris_sessions"]) as s:
        create_user(s, "tz-admin", PASSWORD, "admin")
    context = browser.new_context(viewport={"width": 1280, "height": 640}, locale="en-US", timezone_id=BROWSER_ZONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
        page.goto(f"{served}/login")
        page.fill("input[name=username]", "tz-admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served}/")
        TEST_OUTPUT.mkdir(exist_ok=True)
        for name, path in (
            ("hl7", "/hl7"),
            ("order", f"/orders/{berlin.accession}"),
            ("journey", f"/orders/{berlin.accession}/journey"),
        ):
            page.goto(served + path)
            shown = page.locator(f'time[datetime="{RECEIVED_ATTR}"]').first
            text = shown.inner_text()
            assert text.startswith(SHOWN) and text.endswith(f" {ABBREVIATION}"), (name, text)
            page.screenshot(path=str(TEST_OUTPUT / f"times-{name}.png"), full_page=True)
    finally:
        context.close()
