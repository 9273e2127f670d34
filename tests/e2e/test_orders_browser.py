"""The order page in a real browser against the whole system (`orthanc-ris up`): the clerk
edits an order, the scanner's images arrive at a real Orthanc while the order page is open
and the page follows without a reload (static/live.js), and a cancel asks why and the
history names who. Debian's chromium driven by Playwright; screenshots go to test-output/."""

from __future__ import annotations

import re

import pytest

from ris_app.clock import site_today
from tests.conftest import TEST_OUTPUT
from tests.e2e.test_pages_browser import _create_user, _log_in, browser, page  # noqa: F401  (fixtures)
from tests.fixtures.dicom_factory import write_series

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _shot(page, name: str) -> None:  # noqa: F811  (the fixture `page` is imported above)
    TEST_OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(TEST_OUTPUT / f"orders-{name}.png"), full_page=True)


def _order(system, mrn: str, family: str, at: str, priority: str = "ROUTINE") -> str:
    r = system.api("POST", "/api/patients", json={"mrn": mrn, "family_name": family, "given_name": "Eva", "sex": "F"})
    assert r.status_code == 201, r.text
    start = f"{site_today().isoformat()}T{at}"
    return system.place_order(mrn, start, station_aet="CT1", priority=priority)


def test_order_page_edits_follows_images_live_and_cancel_asks_why(system, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    _create_user(system, "desk3", "clerk", full_name="Desk Three")
    r = system.api("POST", "/api/stations", json={"aet": "CT1", "name": "CT 1", "modality": "CT", "location": "R3"})
    assert r.status_code in (201, 409), r.text
    accession = _order(system, "LIVE-1", "Lindqvist", "09:00")
    other = _order(system, "LIVE-2", "Nakamura", "09:30")

    page.goto(system.ris_url + "/login")
    _log_in(page, "desk3")
    page.goto(system.ris_url + f"/orders/{accession}")

    # Edit: what may change before the exam; moving in time is the calendar's.
    page.click("#edit-order-link")
    expect(page.locator("#reschedule-link")).to_be_visible()
    page.select_option("#f-priority", "STAT")
    page.fill("#f-reason_for_exam", "fall, on anticoagulants")
    page.fill("#f-notes", "wheelchair; interpreter (Swedish)")
    _shot(page, "edit")
    page.click("button:has-text('Save changes')")
    expect(page).to_have_url(system.ris_url + f"/orders/{accession}")
    expect(page.locator(".flash.ok")).to_contain_text("priority")
    expect(page.locator("#order-notes")).to_have_text("wheelchair; interpreter (Swedish)")
    changes = page.locator("#changes")  # beside the history: what changed and who
    expect(changes).to_contain_text("edited: priority ROUTINE → STAT; reason for exam; notes")
    expect(changes.locator("td.actor")).to_have_text("desk3")

    # The scanner sends images while the page is open: it follows without a reload.
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#study")).to_contain_text("No images received yet")
    files = write_series(tmp_path / "series", 6, patient_id="LIVE-1", patient_name="Lindqvist^Eva", accession=accession)
    proc = system.storescu(files)
    assert proc.returncode == 0, proc.stderr
    expect(page.locator("#instance-count")).to_have_text("1 series · 6 instances", timeout=40_000)
    expect(page.locator("#step-status")).to_have_text("started", timeout=15_000)
    expect(page.locator("#history")).to_contain_text("plugin")  # who started it: the Orthanc plugin's events
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    expect(page.locator("#live-status")).to_contain_text("Updated")
    expect(page.locator("#edit-order-link")).to_have_count(0)  # started: no more edits
    _shot(page, "live-images")
    page.click("text=Exam journey")
    events = page.locator("#journey-events")
    expect(events).to_contain_text("first image received")
    expect(events).to_contain_text("plugin")
    _shot(page, "journey")

    # Cancel from the schedule: a page that asks why, then back to the schedule.
    page.goto(system.ris_url + "/")
    row = page.locator(f"#schedule tr[data-accession='{other}']")
    row.locator("a:has-text('Cancel')").click()
    expect(page).to_have_url(re.compile(rf"/orders/{other}/cancel\?next=/"))
    expect(page.locator("#cancel-summary")).to_contain_text("Nakamura")
    page.click("button:has-text('Cancel the exam')")  # no reason chosen: the browser holds the form
    expect(page).to_have_url(re.compile(rf"/orders/{other}/cancel"))
    page.check("input[name=reason][value=other]")
    page.click("button:has-text('Cancel the exam')")  # "Other" without words: the page says so
    expect(page.locator("#e-reason_text")).to_contain_text("is required when the reason is Other")
    page.check("input[name=reason][value=duplicate]")
    page.fill("#f-reason_text", "also ordered as RIS-elsewhere")
    _shot(page, "cancel-reason")
    page.click("button:has-text('Cancel the exam')")
    expect(page).to_have_url(system.ris_url + "/")
    expect(row.locator(".status")).to_have_text("canceled")
    _shot(page, "schedule-after-cancel")
    page.goto(system.ris_url + f"/orders/{other}")
    history = page.locator("#history")
    expect(history).to_contain_text("Duplicate order: also ordered as RIS-elsewhere")
    expect(history.locator("td.actor").last).to_have_text("desk3")
    _shot(page, "history-who")
