"""A clerk's morning in a real browser against the whole system (`orthanc-ris up`): log in,
register a patient, order a CT, check the patient in, and see the scanner's images arrive
on the order page. Debian's chromium driven by Playwright; screenshots go to test-output/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ris_app.clock import site_today
from tests.conftest import TEST_OUTPUT, wait_for
from tests.fixtures.dicom_factory import write_series

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
# Headless in a container without a user namespace sandbox, GPU or network beyond localhost;
# no first-run screens and no background downloads that could slow or flake the test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORTHANC_RIS = str(Path(sys.executable).parent / "orthanc-ris")
PASSWORD = "front desk 2026"
# Cyrillic: a non-Latin script the test machine's only font (DejaVu) can draw, so the
# screenshots show the names rather than empty boxes.
FAMILY, GIVEN = "Ковальчук", "Олена"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is missing: scripts/install-debian-packages.sh chromium chromium-driver fonts-dejavu-core"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright's own browser download does not work here; Debian's chromium does.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 640}, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def _shot(page, name: str) -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    path = TEST_OUTPUT / f"pages-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _create_user(system, username: str, role: str, full_name: str = "Front Desk") -> None:
    proc = subprocess.run(
        [
            ORTHANC_RIS,
            "create-user",
            username,
            "--role",
            role,
            "--full-name",
            full_name,
            "--password-env",
            "RIS_TEST_PASSWORD",
        ],
        env={**system.env, "RIS_TEST_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def _log_in(page, username: str) -> None:
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    page.click("button:has-text('Log in')")


def _busy_morning(system) -> None:
    """Other exams of the day, in several states, placed through the API (as an EHR would)."""
    for aet, name, modality, room in (("CT1", "CT 1", "CT", "Room 3"), ("MR1", "MR 1", "MR", "Room 5")):
        r = system.api("POST", "/api/stations", json={"aet": aet, "name": name, "modality": modality, "location": room})
        assert r.status_code == 201, r.text
    today = site_today().isoformat()
    for n, (family, given, code, aet, at, priority, actions) in enumerate(
        (
            ("Schmidt", "Anna", "CTCHEST", "CT1", "08:00", "ROUTINE", ["start", "complete"]),
            ("Παπαδόπουλος", "Νίκος", "MRBRAIN", "MR1", "08:40", "ROUTINE", ["arrive", "start"]),
            ("Dubois", "Marie", "CTABD", "CT1", "10:15", "STAT", []),
            ("Okafor", "Chidi", "MRKNEE", "MR1", "11:00", "ROUTINE", ["cancel"]),
        )
    ):
        mrn = f"BR-10{n}"
        assert (
            system.api(
                "POST", "/api/patients", json={"mrn": mrn, "family_name": family, "given_name": given, "sex": "U"}
            ).status_code
            == 201
        )
        r = system.api(
            "POST",
            "/api/orders",
            json={
                "mrn": mrn,
                "procedure_code": code,
                "station_aet": aet,
                "scheduled_start": f"{today}T{at}",
                "priority": priority,
            },
        )
        assert r.status_code == 201, r.text
        for action in actions:
            moved = system.api("POST", f"/api/orders/{r.json()['accession_number']}/status", json={"action": action})
            assert moved.status_code == 200, moved.text


def test_clerk_registers_orders_checks_in_and_sees_images(system, page, tmp_path):
    from playwright.sync_api import expect

    _create_user(system, "desk", "clerk")
    _busy_morning(system)

    # Every page needs a login: the schedule sends us to it and back.
    page.goto(system.ris_url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    _shot(page, "login")
    _log_in(page, "desk")
    expect(page).to_have_url(system.ris_url + "/")
    expect(page.locator("header .who")).to_contain_text("Front Desk · clerk")

    # Register a patient; the first try has a DICOM separator in the name and is refused,
    # with the reason at the field and every value still entered.
    page.click("nav >> text=Register patient")
    page.fill("#f-mrn", "BR-0001")
    page.fill("#f-family_name", f"{FAMILY}^{GIVEN}")
    page.fill("#f-birth_date", "1985-04-12")
    page.select_option("#f-sex", "F")
    page.fill("#f-phone", "+380 44 000 0000")
    page.fill("#f-address", "вул. Хрещатик 1, Київ")
    page.click("button:has-text('Register patient')")
    expect(page.locator("#e-family_name")).to_have_text(
        "Family name may not contain ^ or = (they separate the parts of a DICOM name)"
    )
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#f-mrn")).to_have_value("BR-0001")
    expect(page.locator("#f-address")).to_have_value("вул. Хрещатик 1, Київ")
    _shot(page, "patient-form-error")
    page.fill("#f-family_name", FAMILY)
    page.fill("#f-given_name", GIVEN)
    page.click("button:has-text('Register patient')")

    # ... which leads straight to the order form for that patient.
    expect(page).to_have_url(re.compile(r"/orders/new\?mrn=BR-0001$"))
    expect(page.locator("#patient-name")).to_have_text(f"{FAMILY}, {GIVEN}")
    page.select_option("#f-procedure_code", "CTHEAD")
    page.select_option("#f-station_aet", "CT1")
    page.select_option("#f-priority", "HIGH")
    expect(page.locator("#f-scheduled_date")).to_have_value(site_today().isoformat())
    page.fill("#f-scheduled_time", "09:30")
    page.fill("#f-referring_physician", "House^Gregory")
    page.fill("#f-reason_for_exam", "headache after a fall")
    _shot(page, "order-form")
    page.click("button:has-text('Place order')")
    expect(page).to_have_url(re.compile(r"/orders/RIS\d+$"))
    accession = page.url.rsplit("/", 1)[1]
    expect(page.locator("#step-status")).to_have_text("scheduled")

    # Today's schedule lists the exam; the clerk checks the patient in from there.
    page.click("nav >> text=Schedule")
    row = page.locator(f"#schedule tr[data-accession='{accession}']")
    expect(row).to_contain_text(f"{FAMILY}, {GIVEN}")
    expect(row).to_contain_text("09:30")
    expect(row).to_contain_text("CT1")
    expect(row.locator(".status")).to_have_text("scheduled")
    row.locator("button:has-text('Check in')").click()
    expect(page.locator(".flash.ok")).to_have_text(f"Order {accession} is now arrived.")
    expect(row.locator(".status")).to_have_text("arrived")
    expect(row.locator("button:has-text('Check in')")).to_have_count(0)
    _shot(page, "schedule")

    # The scanner sends five images with the order's accession number.
    files = write_series(
        tmp_path / "series", 5, patient_id="BR-0001", patient_name=f"{FAMILY}^{GIVEN}", accession=accession
    )
    proc = system.storescu(files)
    assert proc.returncode == 0, proc.stderr

    page.click(f"#schedule a:has-text('{accession}')")
    expect(page).to_have_url(system.ris_url + f"/orders/{accession}")

    def images_complete():
        page.reload()
        return "images complete" in page.locator("#study").inner_text()

    wait_for(images_complete, timeout=30, step=0.5)
    expect(page.locator("#instance-count")).to_have_text("1 series · 5 instances")
    expect(page.locator("#step-status")).to_have_text("started")  # the images started the exam
    expect(page.locator("#history")).to_contain_text("images")
    _shot(page, "order-with-study")

    # An unknown accession number shows up flagged on the studies list.
    stray = write_series(tmp_path / "stray", 2, patient_id="WHO-1", patient_name="Unknown^Walk-in", accession="TYPO123")
    assert system.storescu(stray).returncode == 0
    page.click("nav >> text=Studies")

    def stray_listed():
        page.reload()
        row = page.locator("#studies tr[data-accession='TYPO123']")
        return row.count() == 1 and "1 / 2" in row.inner_text()

    wait_for(stray_listed, timeout=20, step=0.5)
    expect(page.locator("#studies tr[data-accession='TYPO123'] .status")).to_have_text("unmatched")
    expect(page.locator(f"#studies tr[data-accession='{accession}']")).to_contain_text(f"{FAMILY}, {GIVEN}")
    _shot(page, "studies")


def test_radiologist_sees_no_front_desk_forms(system, page):
    from playwright.sync_api import expect

    _create_user(system, "reader", "radiologist")
    page.goto(system.ris_url + "/login")
    _log_in(page, "reader")
    expect(page.locator("nav")).not_to_contain_text("Register patient")
    page.goto(system.ris_url + "/patients/new")
    expect(page.locator("h1")).to_have_text("Not allowed")
    page.click("button:has-text('Log out')")
    expect(page).to_have_url(system.ris_url + "/login")


def test_a_check_in_from_a_stale_page_names_who_moved_the_exam_first(system, page):
    """The clerk's schedule was built before the modality started the exam (through the
    API): pressing Check in from that page changes nothing and says who moved it first."""
    from playwright.sync_api import expect

    _create_user(system, "desk2", "clerk")
    assert (
        system.api("POST", "/api/patients", json={"mrn": "BR-STALE", "family_name": "Stale", "given_name": "Page"})
    ).status_code == 201
    r = system.api(
        "POST",
        "/api/orders",
        json={"mrn": "BR-STALE", "procedure_code": "CTHEAD", "scheduled_start": f"{site_today().isoformat()}T16:45"},
    )
    assert r.status_code == 201, r.text
    accession = r.json()["accession_number"]
    page.goto(system.ris_url + f"/orders/{accession}")
    _log_in(page, "desk2")
    expect(page.locator("#step-status")).to_have_text("scheduled")

    moved = system.api("POST", f"/api/orders/{accession}/status", json={"action": "start"})
    assert moved.status_code == 200, moved.text

    page.click("button:has-text('Check in')")
    expect(page.locator(".flash.error")).to_have_text(
        f"Order {accession}: this step was changed by api:ORTHANC_RIS_API_TOKEN since you read it; "
        "reload it and try again."
    )
    expect(page.locator("#step-status")).to_have_text("started")  # nothing changed back
    _shot(page, "stale-check-in")
