"""An admin manages the users of the pages, and reads each part's health on the sync page,
in a real browser (Debian's chromium) against
the whole system (`orthanc-ris up`): creates a technologist, disables a clerk, and the
screenshot is test-output/pages-users.png (docs/screenshots/users.png)."""

from __future__ import annotations

import pytest

from tests.e2e import test_pages_browser as pages_browser

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
browser, page = pages_browser.browser, pages_browser.page
_create_user, _log_in, _shot = pages_browser._create_user, pages_browser._log_in, pages_browser._shot


def test_admin_creates_and_disables_users(system, page):
    from playwright.sync_api import expect

    _create_user(system, "boss", "admin", full_name="Ada Admin")
    _create_user(system, "desk", "clerk", full_name="Front Desk")
    _create_user(system, "rad", "radiologist", full_name="Dr 山田 Taro")
    page.goto(system.ris_url + "/admin/users")
    _log_in(page, "boss")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Users")

    page.fill("#f-username", "tech2")
    page.fill("#f-full_name", "Tomás Técnico")
    page.select_option("#f-role", "technologist")
    page.fill("#f-password", "a good password")
    page.click("button:has-text('Create user')")
    expect(page.locator(".flash.ok")).to_contain_text("User tech2 created (technologist)")
    row = page.locator("tr", has_text="desk")
    row.locator("button:has-text('Disable')").click()
    expect(page.locator(".flash.ok")).to_contain_text("desk disabled")
    expect(page.locator("tr.inactive")).to_contain_text("desk")
    _shot(page, "users")  # test-output/pages-users.png: docs/screenshots/users.png is a copy


def test_admin_reads_each_parts_health_on_the_sync_page(system, page):
    from playwright.sync_api import expect

    _create_user(system, "ops", "admin", full_name="Ops Admin")
    page.goto(system.ris_url + "/sync")
    _log_in(page, "ops")
    rows = page.locator("#parts tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("Orthanc (PACS)")
    expect(rows.first.locator(".badge")).to_have_text("ok")  # the whole system is up
    _shot(page, "sync")
