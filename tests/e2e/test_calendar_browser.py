"""A clerk's day at the calendar in a real browser against the whole system (`orthanc-ris
up`, site zone Europe/Paris): the day of every room, a week of one room and of all, a
free slot booked through the order form it opens, a check-in and a no-show from an
exam's panel, the waiting list's "book" link. Debian's chromium driven by Playwright;
the day and week screenshots go to test-output/ (copied to docs/screenshots/ by hand, once
looked at: a test run must not change the repository)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from ris_app.clock import site_today, zone_named
from tests.conftest import TEST_OUTPUT, start_system, stop_system, wait_for
from tests.e2e import test_pages_browser as pages_browser

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
browser, page = pages_browser.browser, pages_browser.page
_create_user, _log_in = pages_browser._create_user, pages_browser._log_in
ZONE = "Europe/Paris"
DAY = site_today(zone_named(ZONE)) + timedelta(days=1)  # tomorrow: every slot still bookable
SHOTS = TEST_OUTPUT
ROOMS = (
    ("CT1", "CT 1", "CT", "Room 3", [("08:00", "12:00"), ("13:00", "17:00")]),
    ("CT2", "CT 2", "CT", "Room 4", [("08:00", "16:00")]),
    ("MR1", "MR 1", "MR", "Room 5", [("08:00", "18:00")]),
)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    s = start_system(tmp_path_factory.mktemp("calendar"), {"ORTHANC_RIS_TIMEZONE": ZONE})
    yield s
    stop_system(s)


def _ok(r, status=200):
    assert r.status_code == status, r.text
    return r.json()


def _order(system, mrn, code, at, aet="", **more) -> str:
    body = {"mrn": mrn, "procedure_code": code, "scheduled_start": f"{DAY}T{at}", **more}
    if aet:
        body["station_aet"] = aet
    return _ok(system.api("POST", "/api/orders", json=body), 201)["accession_number"]


def _seed(system) -> dict[str, str]:
    """Rooms with opening hours, a maintenance block, and a morning of exams (one
    checked in, one overbooked, a STAT before opening) plus two orders with no room."""
    for aet, name, modality, room, periods in ROOMS:
        _ok(
            system.api(
                "POST", "/api/stations", json={"aet": aet, "name": name, "modality": modality, "location": room}
            ),
            201,
        )
        hours = [{"weekday": d, "opens": a, "closes": b} for d in range(7) for a, b in periods]
        _ok(system.api("PUT", f"/api/stations/{aet}/hours", json={"hours": hours}))
    block = {"start": f"{DAY}T10:00", "end": f"{DAY}T11:00", "kind": "maintenance", "reason": "tube check"}
    _ok(system.api("POST", "/api/stations/CT2/blocks", json=block), 201)
    people = (
        ("CA-01", "Schmidt", "Anna"),
        ("CA-02", "Dubois", "Marie"),
        ("CA-03", "Okafor", "Chidi"),
        ("CA-04", "Rossi", "Luca"),
        ("CA-05", "Nowak", "Ewa"),
        ("CA-06", "Ковальчук", "Олена"),
        ("CA-07", "Lindqvist", "Sven"),
    )
    for mrn, family, given in people:
        _ok(system.api("POST", "/api/patients", json={"mrn": mrn, "family_name": family, "given_name": given}), 201)
    acc = {
        "arrived": _order(system, "CA-01", "CTCHEST", "08:00", "CT1"),
        "missed": _order(system, "CA-02", "CTHEAD", "08:30", "CT1"),
        "checkin": _order(system, "CA-03", "CTABD", "09:00", "CT1"),
        "overbook": _order(system, "CA-04", "CTHEAD", "09:05", "CT1", overbook=True),
        "stat": _order(system, "CA-05", "CTHEAD", "06:30", "CT2", priority="STAT"),
        "mr": _order(system, "CA-06", "MRBRAIN", "09:00", "MR1"),
        "wait_stat": _order(system, "CA-07", "MRKNEE", "10:00", priority="STAT"),
        "wait": _order(system, "CA-02", "CTABD", "11:00"),
    }
    _ok(system.api("POST", f"/api/orders/{acc['arrived']}/status", json={"action": "arrive"}))
    return acc


def _press_on(page, accession: str, button: str) -> None:
    page.click(f".cal-exam[data-accession='{accession}']")
    page.locator("#exam-panel").get_by_role("button", name=button).click()


def test_clerk_books_checks_in_and_marks_a_no_show_from_the_calendar(system, page):
    from playwright.sync_api import expect

    acc = _seed(system)
    _create_user(system, "desk", "clerk")
    page.goto(f"{system.ris_url}/calendar?date={DAY}")
    _log_in(page, "desk")
    expect(page).to_have_url(re.compile(rf"/calendar\?date={DAY}$"))
    expect(page.locator(".cal-zone")).to_have_text(f"Times are {ZONE} time.")
    for aet, *_ in ROOMS:
        expect(page.locator(f"section.cal-col[data-station='{aet}']")).to_be_visible()
    ct1 = page.locator("section.cal-col[data-station='CT1']")
    expect(ct1.locator(f".cal-exam[data-accession='{acc['arrived']}'] .status")).to_have_text("arrived")
    expect(ct1.locator(f".cal-exam[data-accession='{acc['overbook']}']")).to_contain_text("overbook")
    expect(page.locator(f".cal-exam[data-accession='{acc['stat']}']")).to_contain_text("out of hours")
    expect(page.locator("section.cal-col[data-station='CT2'] .cal-closed")).to_contain_text("tube check")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "calendar-day.png"), full_page=True)

    # A free slot of CT1 for a head CT opens the order form filled in.
    page.select_option("select[name=procedure]", "CTHEAD")
    page.click(".cal-filter button")
    slot = ct1.locator(".cal-slot", has_text="13:00")  # the afternoon opens at 13:00
    slot.focus()  # a link: reachable by keyboard
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/orders/new\?"))
    expect(page.locator("#f-station_aet")).to_have_value("CT1")
    expect(page.locator("#f-procedure_code")).to_have_value("CTHEAD")
    expect(page.locator("#f-scheduled_date")).to_have_value(str(DAY))
    expect(page.locator("#f-scheduled_time")).to_have_value("13:00")
    page.fill("#f-mrn", "CA-03")
    page.click("button:has-text('Place order')")
    expect(page).to_have_url(re.compile(r"/orders/RIS\d+$"))
    booked = page.url.rsplit("/", 1)[1]

    # Back at the day: the new exam sits in the slot; check one patient in, mark another no-show.
    page.goto(f"{system.ris_url}/calendar?date={DAY}")
    expect(ct1.locator(f".cal-exam[data-accession='{booked}']")).to_contain_text("13:00")
    _press_on(page, acc["checkin"], "Check in")
    expect(page.locator(".flash.ok")).to_have_text(f"Order {acc['checkin']} is now arrived.")
    expect(page.locator(f".cal-exam[data-accession='{acc['checkin']}'] .status")).to_have_text("arrived")
    _press_on(page, acc["missed"], "No-show")
    expect(page.locator(".flash.ok")).to_contain_text(f"Order {acc['missed']} is now no_show")
    expect(page.locator(f".cal-exam[data-accession='{acc['missed']}'] .status")).to_have_text("no-show")
    expect(page.locator("#exam-panel").get_by_role("button", name="Check in")).to_have_count(0)
    assert _ok(system.api("GET", f"/api/orders/{acc['missed']}"))["status"] == "NO_SHOW"

    # The waiting list: STAT first; its "book" link moves it into the next free MR slot.
    page.click("a:has-text('Waiting list')")
    rows = page.locator("#waiting tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-accession", acc["wait_stat"])
    rows.first.locator("a.book").click()
    expect(page.locator("#f-station")).to_have_value("MR1")
    page.click("button:has-text('Move the exam')")
    expect(page.locator(".flash.ok")).to_contain_text(f"Order {acc['wait_stat']} moved to")
    expect(page.locator(f".cal-exam[data-accession='{acc['wait_stat']}']")).to_be_visible()

    # A week of CT1, then of every room.
    page.goto(f"{system.ris_url}/calendar/week?date={DAY}&station=CT1")
    expect(page.locator(".cal-colhead")).to_have_count(7)
    expect(page.locator(f".cal-exam[data-accession='{booked}']")).to_be_visible()
    page.screenshot(path=str(SHOTS / "calendar-week.png"), full_page=True)
    page.goto(f"{system.ris_url}/calendar/week?date={DAY}")
    rooms = len(_ok(system.api("GET", "/api/stations"))["items"])
    expect(page.locator("#calendar-week tbody tr")).to_have_count(rooms)
    expect(page.locator(f"#calendar-week a[data-accession='{acc['mr']}']")).to_be_visible()
    page.screenshot(path=str(SHOTS / "calendar-week-all.png"), full_page=True)


def test_the_sync_worker_marks_a_missed_appointment_no_show(system):
    """`orthanc-ris up`'s sync worker, not a test's call: yesterday's exam on a room with
    opening hours, never checked in, becomes NO_SHOW by itself; a walk-in scanner's does not."""
    yesterday = DAY - timedelta(days=2)
    missed = _order(system, "CA-01", "CTHEAD", "08:00", "CT1", scheduled_start=f"{yesterday}T08:00")
    walk_in = _order(system, "CA-02", "CTHEAD", "08:00", "FINDSCU", scheduled_start=f"{yesterday}T08:00")
    wait_for(lambda: _ok(system.api("GET", f"/api/orders/{missed}"))["status"] == "NO_SHOW", timeout=30)
    moved = _ok(system.api("GET", f"/api/orders/{missed}"))["scheduled_procedure_step"]
    assert moved["changed_by"] == "system:no-show"
    assert _ok(system.api("GET", f"/api/orders/{walk_in}"))["status"] == "SCHEDULED"
