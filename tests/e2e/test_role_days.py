"""A day of each role in Debian's chromium against the whole system (`orthanc-ris up`), at a
1280 px desk screen and a 390 px phone: the clerk finds a patient, orders, checks in and
cancels with a reason; the technologist watches the images arrive and checks them read-only;
the radiologist reads, confirms and signs, then goes on to the next study; the admin
looks after users, HL7, the parts and the stations. Every page visited must fit the width
(no sideways scrolling of the page at 390 px) and show only the role's own pages in the
bar. Screenshots: test-output/day-<role>-<step>-<width>.png (the good ones are copied to
docs/screenshots/ after looking)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, update

from ris_app.clock import site_today, utcnow
from ris_app.config import Config
from ris_app.model import UserSession
from tests.conftest import TEST_OUTPUT
from tests.e2e.test_pages_browser import PASSWORD, _create_user, browser  # noqa: F401  (fixture)
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.hl7_peer import msa, send

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WIDTHS = (1280, 390)
HEIGHT = {1280: 800, 390: 844}
TODAY = site_today().isoformat()
# Pages a role must not see in its bar (the route table says so: docs/roles.md).
NOT_IN_BAR = {
    "clerk": ("HL7", "Inbox", "Sync", "Worklist queries", "Merge patients", "Users", "Billing"),
    "technologist": ("HL7", "Users", "Billing", "Merge patients", "New order"),
    "radiologist": ("HL7", "Users", "Billing", "Sync", "Inbox"),
}


@pytest.fixture(scope="module")
def day(system):
    """The department's morning: rooms, patients (one with an accent to find), orders."""
    for aet, name, modality, room in (("CT1", "CT 1", "CT", "Room 3"), ("MR1", "MR 1", "MR", "Room 5")):
        r = system.api("POST", "/api/stations", json={"aet": aet, "name": name, "modality": modality, "location": room})
        assert r.status_code in (201, 409), r.text
    for role, name in (
        ("clerk", "Clara Desk"),
        ("technologist", "Tomás Técnico"),
        ("radiologist", "Dr Ada Reader"),
        ("admin", "Ines Admin"),
    ):
        _create_user(system, f"day-{role}", role, full_name=name)
    for mrn, family, given, born, phone in (
        ("DAY-1", "Müller", "Hans", "1970-01-02", "+49 30 1234 5678"),
        ("DAY-2", "Nakamura", "Yui", "1980-02-02", ""),
        ("DAY-3", "Brennan", "Liam", "1975-03-03", ""),
        ("DAY-4", "Okafor", "Chidi", "1990-04-04", ""),
    ):
        body = {"mrn": mrn, "family_name": family, "given_name": given, "birth_date": born, "sex": "U", "phone": phone}
        assert system.api("POST", "/api/patients", json=body).status_code == 201
    orders = {}
    for width in WIDTHS:
        for key, mrn, code, aet, at in (
            ("scan", "DAY-2", "CTHEAD", "CT1", "09:00"),
            ("cancel", "DAY-4", "MRBRAIN", "MR1", "11:00"),
            ("read1", "DAY-3", "CTHEAD", "CT1", "07:30"),
            ("read2", "DAY-2", "CTHEAD", "CT1", "07:45"),
        ):
            body = {"mrn": mrn, "procedure_code": code, "station_aet": aet, "scheduled_start": f"{TODAY}T{at}"}
            r = system.api("POST", "/api/orders", json=body)
            assert r.status_code == 201, r.text
            orders[(key, width)] = r.json()["accession_number"]
    return orders


def _context(browser, width: int):  # noqa: F811
    ctx = browser.new_context(
        viewport={"width": width, "height": HEIGHT[width]}, locale="en-GB", timezone_id="Europe/Berlin"
    )
    ctx.set_default_timeout(15_000)
    return ctx


def _log_in(page, system, role: str) -> None:
    page.goto(f"{system.ris_url}/login")
    page.fill("#f-username", f"day-{role}")
    page.fill("#f-password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def _look(page, role: str, step: str, width: int) -> None:
    """The page fits the screen, and a screenshot to look at."""
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{role} {step} at {width} px is {overflow} px wider than the screen"
    TEST_OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(TEST_OUTPUT / f"day-{role}-{step}-{width}.png"), full_page=True)


def _bar(page, role: str, width: int) -> str:
    """The navigation's text (opened behind its Menu button on a narrow screen)."""
    if width < 1100:
        toggle = page.locator("details.menu-toggle")
        assert not toggle.evaluate("d => d.open")  # folded at first: the page is what one sees
        toggle.locator(":scope > summary").click()
    for menu in page.locator("details.nav-menu").all():  # the other groups' menus, opened to read
        menu.evaluate("d => { d.open = true; }")
    text = page.locator("header nav").inner_text()
    for label in NOT_IN_BAR.get(role, ()):
        assert not re.search(rf"(^|\n){re.escape(label)}(\n|$)", text), f"{role} sees {label} in the bar"
    return text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_clerks_day(system, browser, day, width):  # noqa: F811
    from playwright.sync_api import expect

    ctx = _context(browser, width)
    page = ctx.new_page()
    _log_in(page, system, "clerk")
    expect(page.locator("#schedule")).to_be_visible()
    _look(page, "clerk", "1-schedule", width)
    assert "Patients" in _bar(page, "clerk", width)
    _look(page, "clerk", "2-menu", width)

    # Find the patient by a name typed without its accent, open the patient page.
    page.goto(f"{system.ris_url}/patients?q=muller")
    page.get_by_role("link", name=re.compile("Müller")).first.click()
    expect(page).to_have_url(re.compile(r"/patients/DAY-1"))
    _look(page, "clerk", "3-patient", width)

    # Order for her from the type-ahead, picked with the keyboard.
    page.goto(f"{system.ris_url}/orders/new")
    mrn = page.locator("#f-mrn")
    mrn.press_sequentially("mull", delay=60)
    page.get_by_role("listbox", name="Patients found").wait_for()
    mrn.press("ArrowDown")
    mrn.press("Enter")
    expect(mrn).to_have_value("DAY-1")
    page.select_option("#f-procedure_code", "CTHEAD")
    page.select_option("#f-station_aet", "CT1")
    page.fill("#f-scheduled_date", TODAY)
    page.fill("#f-scheduled_time", "13:00" if width == 1280 else "13:30")
    _look(page, "clerk", "4-new-order", width)
    page.click("button[type=submit]:has-text('Place order')")
    expect(page).to_have_url(re.compile(r"/orders/[A-Z0-9]+$"))
    expect(page.locator("h1")).to_contain_text("scheduled")
    page.click("button:has-text('Check in')")
    expect(page.locator("#step-status")).to_have_text("arrived")
    _look(page, "clerk", "5-order-arrived", width)

    # Cancel another exam: asked why, and the history names the clerk.
    acc = day[("cancel", width)]
    page.goto(f"{system.ris_url}/")
    page.locator(f"#schedule tr[data-accession='{acc}'] a:has-text('Cancel')").click()
    page.check("input[name=reason][value=patient_request]")
    _look(page, "clerk", "6-cancel-reason", width)
    page.click("button:has-text('Cancel the exam')")
    expect(page.locator(f"#schedule tr[data-accession='{acc}'] .status")).to_have_text("canceled")
    page.goto(f"{system.ris_url}/orders/{acc}")
    expect(page.locator("#history td.actor").last).to_have_text("day-clerk")
    _look(page, "clerk", "7-history", width)
    # A clerk cannot reach the admin and technologist pages, even by address.
    for path in ("/hl7", "/inbox", "/sync", "/patients/merge"):
        assert page.goto(f"{system.ris_url}{path}").status == 403, path
    # The session ends (revoked here, as an idle timeout or a disabled user does): the open
    # order page's next refresh leaves for the login form instead of showing the patient on.
    page.goto(f"{system.ris_url}/orders/{acc}")
    engine = create_engine(Config.from_env(system.env).database_url)
    with engine.begin() as c:
        c.execute(update(UserSession).values(revoked_at=utcnow()))
    engine.dispose()
    expect(page).to_have_url(re.compile(r"/login"), timeout=20_000)
    ctx.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_technologists_day(system, browser, day, width, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    acc = day[("scan", width)]
    ctx = _context(browser, width)
    page = ctx.new_page()
    _log_in(page, system, "technologist")
    expect(page.locator("#schedule")).to_be_visible()
    _bar(page, "technologist", width)
    _look(page, "technologist", "1-schedule", width)
    page.goto(f"{system.ris_url}/orders/{acc}")
    page.click("button:has-text('Check in')")
    expect(page.locator("#step-status")).to_have_text("arrived")

    # The scanner sends while the page is open: it follows without a reload.
    page.evaluate("window.__notReloaded = true")
    files = write_series(tmp_path / "s", 4, patient_id="DAY-2", patient_name="Nakamura^Yui", accession=acc)
    assert system.storescu(files).returncode == 0
    expect(page.locator("#instance-count")).to_have_text("1 series · 4 instances", timeout=40_000)
    expect(page.locator("#step-status")).to_have_text("started", timeout=15_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    # The image check: OHIF through the viewer part, read only; no Explorer, no Orthanc port.
    links = page.locator(".viewer-links a")
    expect(links).to_have_count(1)
    expect(links.first).to_have_text("View images (OHIF, read only)")
    assert f":{system.env['ORTHANC_RIS_ORTHANC_HTTP_PORT']}" not in page.content()
    page.click("button:has-text('Complete')")
    expect(page.locator("#step-status")).to_have_text("completed")
    _look(page, "technologist", "2-order-images", width)
    page.goto(f"{system.ris_url}/inbox")
    _look(page, "technologist", "3-inbox", width)
    ctx.close()


def _study_of(system, accession: str, instances: int, tmp_path, name: str) -> None:
    mrn = system.api("GET", f"/api/orders/{accession}").json()["patient"]["mrn"]
    files = write_series(tmp_path / accession, instances, patient_id=mrn, patient_name=name, accession=accession)
    assert system.storescu(files).returncode == 0
    for action in ("complete",):
        system.api("POST", f"/api/orders/{accession}/status", json={"action": action})


@pytest.mark.parametrize("width", WIDTHS)
def test_a_radiologists_day(system, browser, day, width, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    first, second = day[("read1", width)], day[("read2", width)]
    _study_of(system, first, 3, tmp_path, "Brennan^Liam")
    _study_of(system, second, 2, tmp_path, "Nakamura^Yui")
    ctx = _context(browser, width)
    page = ctx.new_page()
    _log_in(page, system, "radiologist")
    page.goto(f"{system.ris_url}/reading?modality=CT")
    rows = page.locator("#reading-worklist tbody tr")
    expect(rows.filter(has_text=first)).to_have_count(1, timeout=40_000)
    expect(rows.filter(has_text=second)).to_have_count(1, timeout=40_000)
    _bar(page, "radiologist", width)
    _look(page, "radiologist", "1-worklist", width)

    rows.filter(has_text=first).locator("a:has-text('Report')").click()
    page.fill("textarea[name=impression]", "No acute intracranial abnormality.")
    page.click("#sign-next")
    dialog = page.locator("#sign-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(first)
    _look(page, "radiologist", "2-confirm-sign", width)
    page.click("#confirm-sign")
    expect(page.locator("#signed-note")).to_contain_text(first)
    expect(page.locator("main")).to_contain_text(re.compile(r"RIS\d+"))
    _look(page, "radiologist", "3-next-study", width)
    ctx.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admins_day(system, browser, day, width):  # noqa: F811
    from playwright.sync_api import expect

    # An EHR message the RIS refuses: the admin finds it in red with its raw text.
    ctl = f"DAY-BAD-{width}"
    bad = f"MSH|^~\\&|EHR|HOSP|RIS|RAD|{TODAY.replace('-', '')}0900||ORM^O01|{ctl}|P|2.3.1\rORC|NW|P{width}\r"
    reply = send(system.hl7_port, bad.encode())
    assert msa(reply) == ("AR", ctl), reply  # no PID: refused
    ctx = _context(browser, width)
    page = ctx.new_page()
    _log_in(page, system, "admin")
    _bar(page, "admin", width)
    page.goto(f"{system.ris_url}/admin/users")
    expect(page.locator("table")).to_contain_text("day-clerk")
    _look(page, "admin", "1-users", width)
    page.goto(f"{system.ris_url}/hl7")
    failed = page.locator("#hl7-messages tbody tr").filter(has_text=ctl)
    expect(failed.locator(".badge.error")).to_have_text("rejected")
    _look(page, "admin", "2-hl7", width)
    failed.locator("td a").first.click()
    expect(page.locator("pre.raw-hl7")).to_contain_text("MSH|")
    _look(page, "admin", "3-hl7-raw", width)
    page.goto(f"{system.ris_url}/sync")
    expect(page.locator("#parts tbody tr").first.locator(".badge")).to_have_text("ok")
    _look(page, "admin", "4-sync", width)
    page.goto(f"{system.ris_url}/setup/stations")
    expect(page.locator("#station-form")).to_be_visible()
    _look(page, "admin", "5-stations", width)
    ctx.close()
