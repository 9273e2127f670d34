"""An admin sets up a room in a real browser against the whole system (`orthanc-ris up`):
opening hours (a refused entry first), a maintenance block, the procedures done there,
the catalog's preparation text; then an order from the EHR over HL7 lands on taken time
and a clerk resolves it on the booking clashes page. Debian's chromium through
Playwright; screenshots go to test-output/ (copied to docs/screenshots/ by hand)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from ris_app.clock import site_today
from tests.e2e import test_pages_browser as pages_browser
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import msa, send

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
browser, page = pages_browser.browser, pages_browser.page
_create_user, _log_in, _shot = pages_browser._create_user, pages_browser._log_in, pages_browser._shot
DAY = site_today() + timedelta(days=3)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def test_admin_sets_up_a_room_and_a_clerk_resolves_a_clash(system, page):
    from playwright.sync_api import expect

    for aet, name, modality, room in (("CT1", "CT 1", "CT", "Room 3"), ("MR1", "MR 1", "MR", "Room 5")):
        r = system.api("POST", "/api/stations", json={"aet": aet, "name": name, "modality": modality, "location": room})
        assert r.status_code == 201, r.text
    _create_user(system, "setup", "admin", full_name="Site Admin")
    page.goto(system.ris_url + "/setup/stations")
    _log_in(page, "setup")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Setup")
    expect(page.locator("#stations")).to_contain_text("none: no booking rules")
    page.click("#stations >> text=CT1")
    expect(page.locator("h1")).to_contain_text("Station CT1")

    # Opening hours: two periods on weekdays, the morning on Saturday; an overlap first.
    for d in WEEKDAYS:
        page.fill(f"#f-hours_{d}", "07:30-12:00, 13:00-19:00")
    page.fill("#f-hours_tue", "07:30-12:00, 11:00-19:00")
    page.fill("#f-hours_sat", "08:00-12:00")
    page.click("button:has-text('Save hours')")
    expect(page.locator("#e-hours_tue")).to_have_text("Tuesday periods overlap on tue")
    expect(page.locator("#f-hours_sat")).to_have_value("08:00-12:00")  # what was typed stays
    page.fill("#f-hours_tue", "07:30-12:00, 13:00-19:00")
    page.fill("#f-hours_sun", "")
    page.click("button:has-text('Save hours')")
    expect(page.locator(".flash.ok")).to_have_text("CT1: opening hours saved.")
    expect(page.locator("#f-hours_mon")).to_have_value("07:30-12:00, 13:00-19:00")

    # A maintenance block: an afternoon; and a holiday, a whole day.
    page.select_option("#f-block_kind", "maintenance")
    page.fill("#f-block_reason", "Tube replacement")
    page.fill("#f-block_date", DAY.isoformat())
    page.fill("#f-block_from", "13:00")
    page.fill("#f-block_to", "15:30")
    page.click("button:has-text('Add block')")
    expect(page.locator("#block-list")).to_contain_text("Tube replacement")
    expect(page.locator("#block-list")).to_contain_text(f"{DAY} 13:00")
    page.select_option("#f-block_kind", "holiday")
    page.fill("#f-block_reason", "Public holiday")
    page.fill("#f-block_date", (DAY + timedelta(days=14)).isoformat())
    page.click("button:has-text('Add block')")
    expect(page.locator("#block-list tbody tr")).to_have_count(2)

    # Procedures done here, one with its own minutes.
    page.check("#procedures-form tr:has-text('CTHEAD') input[type=checkbox]")
    page.fill("#procedures-form tr:has-text('CTHEAD') input[name^=min_]", "20")
    page.check("#procedures-form tr:has-text('CTCHEST') input[type=checkbox]")
    page.click("button:has-text('Save procedures')")
    expect(page.locator(".flash.ok")).to_have_text("CT1: procedures saved.")
    expect(page.locator("#procedures-form tr:has-text('CTHEAD') input[name^=min_]")).to_have_value("20")
    _shot(page, "admin-station")
    hours = system.api("GET", "/api/stations/CT1/hours").json()["hours"]
    assert len(hours) == 11 and hours[-1] == {"weekday": "sat", "opens": "08:00", "closes": "12:00"}

    # The catalog: preparation text on several lines.
    page.goto(system.ris_url + "/setup/catalog")
    page.click("#catalog >> text=CTCHEST")
    page.fill("#f-default_duration_minutes", "0")
    page.click("button:has-text('Save')")
    expect(page.locator("#e-default_duration_minutes")).to_have_text("Minutes must be whole minutes from 1 to 1440")
    page.fill("#f-default_duration_minutes", "25")
    page.fill(
        "#f-preparation",
        "Nothing to eat for 4 hours before the exam; drink water as usual.\n"
        "Bring your creatinine result (not older than 3 months).\nTell us if you are allergic to contrast media.",
    )
    page.click("button:has-text('Save')")
    expect(page.locator(".flash.ok")).to_have_text("Procedure CTCHEST saved.")
    expect(page.locator("#catalog tr:has-text('CTCHEST')")).to_contain_text("Nothing to eat for 4 hours")
    page.click("#catalog >> text=CTCHEST")
    expect(page.locator("#f-preparation")).to_have_value(re.compile(r"as usual\.\nBring your creatinine"))
    _shot(page, "admin-catalog")
    codes = {p["code"]: p for p in system.api("GET", "/api/procedure-codes").json()["items"]}
    assert codes["CTCHEST"]["default_duration_minutes"] == 25 and codes["CTCHEST"]["preparation"].count("\n") == 2

    # A desk booking, then the EHR books the same time over HL7: accepted and flagged.
    r = system.api("POST", "/api/patients", json={"mrn": "SU-0001", "family_name": "Schmidt", "given_name": "Anna"})
    assert r.status_code == 201, r.text
    r = system.api(
        "POST",
        "/api/orders",
        json={"mrn": "SU-0001", "procedure_code": "CTHEAD", "station_aet": "CT1", "scheduled_start": f"{DAY}T09:00"},
    )
    assert r.status_code == 201, r.text
    taken = r.json()["accession_number"]
    system.patient_identifiers |= {"SU-0002", "Dubois", "Marie", "SU-0003", "Okafor", "Chidi"}
    for n, (mrn, family, given, acc, at) in enumerate(
        (("SU-0002", "Dubois", "Marie", "HL7CLASH1", "0910"), ("SU-0003", "Okafor", "Chidi", "HL7CLASH2", "1330"))
    ):
        message = H.build(
            H.ORM_O01_NW,
            ctl=f"SETUP-{n}",
            mrn=mrn,
            family=family,
            given=given,
            acc=acc,
            station="CT1",
            start=f"{DAY:%Y%m%d}{at}00",
        )
        assert msa(send(system.hl7_port, message)) == ("AA", f"SETUP-{n}")

    _create_user(system, "desk", "clerk")
    page.click("button:has-text('Log out')")
    page.goto(system.ris_url + "/clashes")
    _log_in(page, "desk")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Clashes")
    expect(page.locator("nav")).not_to_contain_text("Setup")
    expect(page.locator("#clashes tbody tr")).to_have_count(2)
    expect(page.locator("#clash-HL7CLASH1")).to_contain_text(taken)
    expect(page.locator("#clash-HL7CLASH2")).to_contain_text("a block")
    _shot(page, "booking-clashes")

    # The order page says so too, with a link back here.
    page.click("#clash-HL7CLASH1 >> text=HL7CLASH1")
    expect(page.locator("#booking-flag")).to_contain_text(f"clash with {taken}")
    page.click("#booking >> text=resolve")
    # Move one to a free time (a taken one first: refused with the reason), keep the other.
    row = page.locator("#clash-HL7CLASH1")
    row.locator("input[name=time]").fill("09:05")
    row.locator("button:has-text('Move')").click()
    expect(page.locator(".flash.error")).to_contain_text(f"Time CT1 is booked {DAY} 09:00-09:20 by order {taken}")
    row.locator("input[name=time]").fill("09:30")
    row.locator("button:has-text('Move')").click()
    expect(page.locator(".flash.ok")).to_have_text(f"Order HL7CLASH1 moved to {DAY} 09:30.")
    page.locator("#clash-HL7CLASH2 button:has-text('Keep as is')").click()
    expect(page.locator(".flash.ok")).to_have_text("Order HL7CLASH2: the booking is kept as it is.")
    expect(page.locator("#clashes")).to_contain_text("No clashes to resolve.")
    moved = system.api("GET", "/api/orders/HL7CLASH1").json()["scheduled_procedure_step"]
    assert moved["scheduled_start"].startswith(f"{DAY}T09:30") and moved["booking_flag"] == ""
    kept = system.api("GET", "/api/orders/HL7CLASH2").json()["scheduled_procedure_step"]
    assert kept["booking_flag"] == "" and kept["changed_by"] == "page:desk"
