"""Finding the patient in a real browser (Debian's chromium, Playwright): the clerk types
"mull" in the new-order form's MRN field, picks Müller with the keyboard from the
type-ahead, and opens the patient page; screenshots at 1280 and 390 px to test-output/."""

from __future__ import annotations

import pytest

from ris_app.clock import site_today
from tests.conftest import TEST_OUTPUT
from tests.e2e.test_pages_browser import _create_user, _log_in, browser, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _shot(page, name: str) -> None:  # noqa: F811
    TEST_OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(TEST_OUTPUT / f"patients-{name}.png"), full_page=True)


def test_clerk_finds_mueller_with_the_keyboard_and_opens_the_patient_page(system, page):  # noqa: F811
    for mrn, family, given, born in (
        ("PT-1", "Müller", "Hans", "1970-01-02"),
        ("PT-2", "MÜLLER", "Anna", "1981-03-04"),
        ("PT-3", "Schmidt", "Eva", "1990-05-06"),
    ):
        body = {"mrn": mrn, "family_name": family, "given_name": given, "birth_date": born, "sex": "U"}
        assert system.api("POST", "/api/patients", json=body).status_code in (201, 409)
    today = site_today().isoformat()
    order = {"mrn": "pt-1", "procedure_code": "CTCHEST", "scheduled_start": f"{today}T15:00"}  # any case: one patient
    r = system.api("POST", "/api/orders", json=order)
    assert r.status_code == 201, r.text
    _create_user(system, "desk-pt", "clerk")
    page.goto(f"{system.ris_url}/orders/new")
    _log_in(page, "desk-pt")
    page.wait_for_url("**/orders/new")
    mrn = page.locator("#f-mrn")
    assert mrn.get_attribute("role") == "combobox"
    mrn.press_sequentially("mull", delay=60)
    listbox = page.get_by_role("listbox", name="Patients found")
    listbox.wait_for()
    assert listbox.get_by_role("option").count() == 2
    _shot(page, "typeahead-1280")
    mrn.press("ArrowDown")
    mrn.press("ArrowDown")  # MÜLLER, Anna then Müller, Hans: by folded name
    active = mrn.get_attribute("aria-activedescendant")
    assert "Hans" in page.locator(f"#{active}").inner_text()
    mrn.press("Enter")
    assert mrn.input_value() == "PT-1" and not listbox.is_visible()
    assert "Müller, Hans" in page.locator(".patient-status").inner_text()
    page.get_by_role("link", name="patient page").click()
    page.wait_for_url("**/patients/PT-1")
    assert "Müller, Hans" in page.locator("#patient-heading").inner_text()
    assert r.json()["accession_number"] in page.locator("#patient-orders").inner_text()
    _shot(page, "page-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(page, "page-390")
    page.goto(f"{system.ris_url}/orders/new")
    page.locator("#f-mrn").press_sequentially("müll", delay=60)
    page.get_by_role("listbox", name="Patients found").wait_for()
    _shot(page, "typeahead-390")
