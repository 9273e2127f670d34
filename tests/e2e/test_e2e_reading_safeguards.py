"""Reading safeguards in a real browser (Playwright driving Debian's chromium) against the
real system with real Orthanc studies: the signing dialog and its no-JavaScript confirm
page, "Sign and next" along the worklist, the flags on an unmatched study and on exams not
completed, and a technologist's read-only viewer link from the order page, with the
viewer proxy refusing every write to Orthanc from that session."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import wait_for
from tests.e2e.test_e2e_reading import (  # noqa: F401  (module fixtures: one system for this file)
    PASSWORD,
    _canvas_drawn,
    _csrf,
    _imaged_order,
    _patient,
    _shot,
    ehr,
    radiologist,
    system,
)
from tests.e2e.test_pages_browser import PASSWORD as TECH_PASSWORD
from tests.e2e.test_pages_browser import _create_user, browser  # noqa: F401
from tests.fixtures.dicom_factory import write_series

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def technologist(system):  # noqa: F811
    _create_user(system, "tom", "technologist", "Tom Tech")  # with test_pages_browser's password
    return "tom"


@pytest.fixture(scope="module")
def work(system, radiologist, tmp_path_factory):  # noqa: F811
    """A STAT head CT (completed by the technologist), an urgent chest CT (still in
    progress), a routine head CT (completed) and, last, an unmatched MR."""
    tmp = tmp_path_factory.mktemp("safeguards")
    _patient(system, "SAFE-001", "Nakamura", "Yui", "1980-02-02", "F")
    _patient(system, "SAFE-002", "Brennan", "Liam", "1966-07-19", "M")
    _patient(system, "SAFE-003", "Duarte", "Inês", "1990-12-01", "F")
    stat = _imaged_order(system, tmp / "stat", "SAFE-001", "Nakamura^Yui", "CTHEAD", "STAT", "Fall")
    high = _imaged_order(system, tmp / "high", "SAFE-002", "Brennan^Liam", "CTCHEST", "HIGH", "Suspected PE", count=5)
    routine = _imaged_order(system, tmp / "rout", "SAFE-003", "Duarte^Inês", "CTHEAD", "ROUTINE", "Headache", count=4)
    for order in (stat, routine):
        r = system.api("POST", f"/api/orders/{order['accession_number']}/status", json={"action": "complete"})
        assert r.ok, r.text
    files = write_series(
        tmp / "mr", 3, patient_id="EXT-77", patient_name="Unknown^Trauma", accession="EXT77", modality="MR"
    )
    assert system.storescu(files).returncode == 0
    # Every study stable (Orthanc's StableAge is 1 s here), the MR known to the RIS.
    wait_for(lambda: _reading_rows(system) == 4, timeout=30, step=0.5)
    return {"stat": stat, "high": high, "routine": routine}


def _reading_rows(ris) -> int:
    r = ris.api("GET", "/api/studies")
    return sum(1 for st in r.json()["items"] if st["stable_at"]) if r.ok else 0


def _login(page, ris, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{ris.ris_url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], form button")


def _row(page, study_uid: str):
    return page.locator(f"tr[data-study-uid='{study_uid}']")


def test_confirm_page_without_javascript(system, browser, radiologist, work):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 860}, java_script_enabled=False)
    page = context.new_page()
    _login(page, system, radiologist)
    page.goto(f"{system.ris_url}/reading")
    _row(page, work["routine"]["study"]["study_instance_uid"]).locator("a", has_text="Report").click()
    page.fill("textarea[name=impression]", "No acute abnormality.")
    page.click("#sign")
    page.wait_for_selector("#sign-confirm")
    summary = page.inner_text("dl.sign-summary")
    for expected in ("Duarte, Inês", "SAFE-003", work["routine"]["accession_number"], "CT head"):
        assert expected in summary, expected
    assert "The signed report is final." in page.inner_text("#sign-confirm")
    _shot(page, "reading-confirm-nojs.png")
    page.click("#confirm-sign")
    page.wait_for_selector("#add-addendum")
    assert page.inner_text("#report-status") == "FINAL" and "Report signed." in page.inner_text("main")
    context.close()


def test_flags_dialog_and_sign_and_next(system, browser, radiologist, work):  # noqa: F811
    stat, high = work["stat"], work["high"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _login(page, system, radiologist)
    page.goto(f"{system.ris_url}/reading?modality=CT")
    assert page.locator("#reading-worklist tbody tr").count() == 2  # the MR filtered out, the routine CT signed
    assert _row(page, stat["study"]["study_instance_uid"]).locator(".reading-flag").count() == 0
    assert _row(page, high["study"]["study_instance_uid"]).locator(".reading-flag").all_inner_texts() == [
        "exam not completed"
    ]
    page.goto(f"{system.ris_url}/reading")
    mr_row = page.locator("#reading-worklist tbody tr").last
    assert mr_row.locator(".reading-flag").all_inner_texts() == ["unmatched"]
    _shot(page, "reading-worklist-flags.png")

    # The STAT study: "Sign and next" asks first, in a dialog that names patient and exam.
    page.goto(f"{system.ris_url}/reading?modality=CT")
    _row(page, stat["study"]["study_instance_uid"]).locator("a", has_text="Report").click()
    page.fill("textarea[name=impression]", "Small subdural haematoma, no mass effect.")
    page.click("#sign-next")
    dialog = page.locator("#sign-dialog")
    assert dialog.is_visible()
    for expected in ("Nakamura, Yui", "SAFE-001", stat["accession_number"], "CT head", "final"):
        assert expected in dialog.inner_text(), expected
    _shot(page, "reading-sign-dialog.png")
    page.click("#cancel-sign")  # cancelled: nothing signed
    assert not dialog.is_visible()
    assert system.api("GET", f"/api/orders/{stat['accession_number']}/report").status_code == 404
    page.click("#sign-next")
    page.click("#confirm-sign")

    # Signed, and on to the next unread CT of the list: the urgent chest CT, with a note.
    page.wait_for_selector("#signed-note")
    assert "modality=CT" in page.url and "signed=" in page.url
    note = page.inner_text("#signed-note")
    assert "Signed (final)" in note and "Nakamura, Yui" in note and stat["accession_number"] in note
    assert high["accession_number"] in page.inner_text("main")
    assert "The exam is not completed yet" in page.inner_text("#reading-flags")
    _shot(page, "reading-sign-and-next.png")
    assert system.api("GET", f"/api/orders/{stat['accession_number']}/report").json()["status"] == "FINAL"

    # Without the CT filter, after the chest CT comes the unmatched MR: its sign needs a tick.
    page.goto(f"{system.ris_url}/reading/by-uid/{high['study']['study_instance_uid']}")
    page.fill("textarea[name=impression]", "Segmental pulmonary embolism, right lower lobe.")
    page.click("#sign-next")
    page.click("#confirm-sign")
    page.wait_for_selector("#signed-note")
    assert "No order claims these images" in page.inner_text("#reading-flags")
    page.fill("textarea[name=impression]", "Normal MR.")
    page.click("#sign")
    tick = page.locator("#sign-dialog input[name=ack_unmatched]")
    assert tick.is_visible() and "No order claims these images" in page.inner_text("#sign-dialog")
    page.click("#confirm-sign")  # the required tick stops the form in the browser
    assert page.locator("#sign-dialog").is_visible()
    assert page.inner_text("#report-status") == "not started"
    _shot(page, "reading-unmatched-dialog.png")
    tick.check()
    page.click("#confirm-sign")
    page.wait_for_selector("#add-addendum")
    assert page.inner_text("#report-status") == "FINAL"
    context.close()


def test_technologist_views_images_read_only(system, browser, technologist, work):  # noqa: F811
    order = work["high"]
    study_uid = order["study"]["study_instance_uid"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script("localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))")
    page = context.new_page()
    _login(page, system, technologist, TECH_PASSWORD)
    page.goto(f"{system.ris_url}/orders/{order['accession_number']}")
    links = page.locator(".viewer-links a")
    assert links.all_inner_texts() == ["View images (OHIF, read only)"]  # no Explorer for technologists
    assert "8042" not in page.content() and str(system.env["ORTHANC_RIS_ORTHANC_HTTP_PORT"]) not in page.content()
    _shot(page, "order-technologist-viewer-link.png")
    with context.expect_page() as popup:
        links.first.click()
    ohif = popup.value
    ohif.wait_for_load_state()
    assert study_uid in ohif.url and f":{system.env['ORTHANC_RIS_VIEWER_PORT']}/" in ohif.url
    try:
        wait_for(lambda: _canvas_drawn(ohif), timeout=90, step=1)
    finally:
        _shot(ohif, "ohif-technologist.png")
    context.close()

    # The same hand-over outside the browser: what the technologist's viewer session may do.
    s = requests.Session()
    login = s.get(f"{system.ris_url}/login")
    assert s.post(
        login.url, data={"username": technologist, "password": TECH_PASSWORD, "csrf_token": _csrf(login.text)}
    ).ok
    report_page = s.get(f"{system.ris_url}/reading/by-uid/{study_uid}")
    assert s.get(report_page.url.rstrip("/") + "/open/ohif", timeout=30).ok
    viewer = f"http://127.0.0.1:{system.env['ORTHANC_RIS_VIEWER_PORT']}"
    token = re.search(r"window.orthancRisCsrf = '([^']+)'", s.get(f"{viewer}/viewer-csrf.js").text).group(1)
    writes = {"X-CSRF-Token": token}  # the session's own CSRF header: only the role refuses
    # What OHIF reads: QIDO searches, metadata, frames.
    found = s.get(f"{viewer}/dicom-web/studies", params={"StudyInstanceUID": study_uid})
    assert found.status_code == 200 and study_uid in found.text
    series = s.get(f"{viewer}/dicom-web/studies/{study_uid}/series")
    assert series.status_code == 200
    series_uid = series.json()[0]["0020000E"]["Value"][0]
    assert s.get(f"{viewer}/dicom-web/studies/{study_uid}/series/{series_uid}/metadata").status_code == 200
    # Every write that would change Orthanc is refused before reaching it.
    orthanc_id = system.orthanc("POST", "/tools/lookup", data=study_uid).json()[0]["ID"]
    patient_id = system.orthanc("GET", f"/studies/{orthanc_id}").json()["ParentPatient"]
    before = system.orthanc("GET", f"/studies/{orthanc_id}/statistics").json()["CountInstances"]
    body = b'{"Level": "Study", "Query": {}}'
    for method, path, status in (
        ("DELETE", f"/orthanc/studies/{orthanc_id}", 403),
        ("DELETE", f"/orthanc/patients/{patient_id}", 403),
        ("PUT", f"/orthanc/patients/{patient_id}/protected", 403),
        ("POST", "/orthanc/instances", 403),
        ("POST", "/orthanc/tools/find", 403),
        ("POST", f"/orthanc/studies/{orthanc_id}/modify", 404),
        ("POST", "/dicom-web/studies", 405),
        ("DELETE", f"/dicom-web/studies/{study_uid}", 405),
    ):
        r = s.request(method, f"{viewer}{path}", headers=writes, data=body, timeout=10)
        assert r.status_code == status, (method, path, r.status_code)
    # Orthanc still holds the study whole (its images and the signed report's PDF and SR),
    # and nothing was protected.
    assert system.orthanc("GET", f"/studies/{orthanc_id}/statistics").json()["CountInstances"] == before >= 5
    assert system.orthanc("GET", f"/patients/{patient_id}/protected").text.strip() == "0"
