"""A radiologist's day, in a real browser (Playwright driving Debian's chromium) against
the real system: the reading worklist, OHIF showing the study's images, a report written
from its template, signed, amended; then the PDF, and the Encapsulated PDF and Basic Text SR
in Orthanc."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from pypdf import PdfReader

from ris_app.clock import site_today
from tests.conftest import TEST_OUTPUT, _require_debian_tools, start_system, stop_system, wait_for
from tests.e2e.test_pages_browser import browser  # noqa: F401  (one Debian-chromium fixture for all)
from tests.fixtures import hl7_peer
from tests.fixtures.dicom_factory import write_series
from tests.viewer.test_viewer_proxy import TRAVERSALS
from tests.viewer.test_viewer_proxy import _send as raw_request

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
PASSWORD = "reader-pass-123"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


@pytest.fixture(scope="module")
def ehr():
    """A test EHR receiving the HL7 result messages."""
    receiver = hl7_peer.Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, ehr):
    """The whole system, as conftest's `system`, with the test EHR as HL7 destination."""
    _require_debian_tools()
    home = tmp_path_factory.mktemp("readingsystem")
    s = start_system(home, {"ORTHANC_RIS_HL7_DESTINATIONS": f"EHR=127.0.0.1:{ehr.port}"})
    yield s
    stop_system(s)
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / f"up-{home.name}.log").write_text((home / "up.log").read_text(errors="replace"))


@pytest.fixture(scope="module")
def radiologist(system):
    env = {**system.env, "RIS_TEST_PASSWORD": PASSWORD}
    subprocess.run(
        [
            str(Path(sys.executable).parent / "orthanc-ris"),
            "create-user",
            "ada",
            "--role",
            "radiologist",
            "--full-name",
            "Dr Ada Reader",
            "--password-env",
            "RIS_TEST_PASSWORD",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return "ada"


def _patient(system, mrn, family, given, birth, sex):
    r = system.api(
        "POST",
        "/api/patients",
        json={"mrn": mrn, "family_name": family, "given_name": given, "birth_date": birth, "sex": sex},
    )
    assert r.status_code == 201, r.text


def _imaged_order(system, folder, mrn, name, code, priority, reason, modality="CT", count=8):
    """An order whose images are in Orthanc, linked to it."""
    r = system.api(
        "POST",
        "/api/orders",
        json={
            "mrn": mrn,
            "procedure_code": code,
            "modality": modality,
            "station_aet": f"{modality}1",
            "priority": priority,
            "reason_for_exam": reason,
            "scheduled_start": f"{site_today().isoformat()}T10:00",
        },
    )
    assert r.status_code == 201, r.text
    order = r.json()
    files = write_series(
        folder,
        count,
        patient_id=mrn,
        patient_name=name,
        modality=modality,
        accession=order["accession_number"],
        size=128,
    )
    assert system.storescu(files).returncode == 0
    return wait_for(
        lambda: (
            (b := system.api("GET", f"/api/orders/{order['accession_number']}").json())["study"]
            and b["study"]["instances"] == count
            and b
        ),
        timeout=30,
    )


def _sign_over_http(system, user, study_uid, **sections):
    """Sign a report the way the page's form does (for a prior with a signed report)."""
    s = requests.Session()
    login = s.get(f"{system.ris_url}/login")
    assert s.post(login.url, data={"username": user, "password": PASSWORD, "csrf_token": _csrf(login.text)}).ok
    page = s.get(f"{system.ris_url}/reading/by-uid/{study_uid}")
    assert page.ok
    r = s.post(
        page.url.rstrip("/") + "/report",
        data={**sections, "action": "sign", "confirmed": "1", "csrf_token": _csrf(page.text)},
    )
    assert r.ok and "Report signed." in r.text


def _csrf(html: str) -> str:
    """The form token of the session, as the page's forms carry it."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture(scope="module")
def ct_order(system, radiologist, tmp_path_factory):
    """A STAT head CT with its images, among a department's other work: the same patient's
    prior head CT (signed), an urgent chest CT of another patient, and an unmatched MR."""
    tmp = tmp_path_factory.mktemp("department")
    _patient(system, "READ-001", "Lindqvist", "Åsa", "1958-03-14", "F")
    _patient(system, "READ-002", "Okafor", "Chidi", "1971-09-30", "M")
    prior = _imaged_order(system, tmp / "prior", "READ-001", "Lindqvist^Åsa", "CTHEAD", "ROUTINE", "Dizziness", count=4)
    _sign_over_http(
        system,
        radiologist,
        prior["study"]["study_instance_uid"],
        indication="Dizziness",
        technique="Axial CT of the head.",
        findings="Normal.",
        impression="No intracranial abnormality. Mild small-vessel change.",
    )
    unmatched = write_series(
        tmp / "mr", 3, patient_id="READ-001", patient_name="Lindqvist^Åsa", accession="EXT4411", modality="MR"
    )
    assert system.storescu(unmatched).returncode == 0
    _imaged_order(system, tmp / "chest", "READ-002", "Okafor^Chidi", "CTCHEST", "HIGH", "Suspected PE", count=5)
    return _imaged_order(
        system, tmp / "ct", "READ-001", "Lindqvist^Åsa", "CTHEAD", "STAT", "Fall, headache, on anticoagulants"
    )


def _shot(page, name: str) -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    path = TEST_OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _reloaded(page, selector: str, text: str) -> bool:
    """Reload the page; True when `selector` then shows `text`."""
    page.reload()
    return text in page.inner_text(selector)


def _canvas_drawn(page) -> bool:
    """True when a cornerstone canvas holds more than a blank frame."""
    return page.evaluate("""() => {
      for (const c of document.querySelectorAll('canvas')) {
        if (c.width < 32 || c.height < 32) continue;
        let ctx; try { ctx = c.getContext('2d'); } catch (e) { continue; }
        if (!ctx) continue;
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 16) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
        if (lit > 200) return true;
      }
      return false;
    }""")


def test_viewer_is_closed_without_a_ris_login(system):
    viewer = f"http://127.0.0.1:{system.env['ORTHANC_RIS_VIEWER_PORT']}"
    if not requests.get(f"{viewer}/healthz", timeout=10).json()["ohif"]:
        pytest.fail("the OHIF viewer is not installed: run `make setup` (scripts/install-ohif.sh)")
    assert requests.get(f"{viewer}/dicom-web/studies", timeout=10).status_code == 401
    assert requests.get(f"{viewer}/orthanc/studies", timeout=10).status_code == 401
    assert requests.get(f"{viewer}/viewer", timeout=10, allow_redirects=False).status_code == 302


def test_read_sign_and_amend_in_the_browser(system, browser, radiologist, ct_order, ehr, tmp_path):  # noqa: F811
    accession = ct_order["accession_number"]
    study_uid = ct_order["study"]["study_instance_uid"]
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    # OHIF's first-visit tour would cover the image in the screenshot: mark it seen.
    context.add_init_script("localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))")
    page = context.new_page()
    page.goto(f"{system.ris_url}/login")
    page.fill("input[name=username]", radiologist)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], form button")

    # The reading worklist: the STAT study is there, first.
    page.goto(f"{system.ris_url}/reading")
    row = page.locator(f"tr[data-study-uid='{study_uid}']")
    assert row.count() == 1
    assert "STAT" in row.inner_text() and accession in row.inner_text()
    rows = page.locator("#reading-worklist tbody tr")
    assert rows.first.get_attribute("data-study-uid") == study_uid
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())][:2] == ["STAT", "HIGH"]
    assert "final" in row.locator("ul.priors").inner_text()  # the signed prior, with its status
    _shot(page, "reading-worklist.png")

    # The report page, then OHIF on this study.
    row.locator("a", has_text="Report").click()
    page.wait_for_selector("#report-form")
    assert "Mild small-vessel change." in page.inner_text("#priors")
    _shot(page, "report-draft.png")
    assert "Fall, headache, on anticoagulants" in page.input_value("textarea[name=indication]")
    assert "Haemorrhage" in page.input_value("textarea[name=findings]")
    with context.expect_page() as popup:
        page.click("#open-ohif")
    ohif = popup.value
    ohif.wait_for_load_state()
    assert ohif.url.split("?")[0].endswith("/viewer") and study_uid in ohif.url
    try:
        wait_for(lambda: _canvas_drawn(ohif), timeout=90, step=1)
    finally:
        _shot(ohif, "ohif-study.png")
    ohif.close()

    # Orthanc Explorer, through the same login.
    with context.expect_page() as popup:
        page.click("#open-explorer")
    explorer = popup.value
    explorer.wait_for_load_state()
    wait_for(lambda: "Lindqvist" in explorer.inner_text("body"), timeout=30, step=0.5)
    explorer.close()

    # Write from the template, sign.
    page.fill("textarea[name=findings]", "Brain parenchyma: normal.\nHaemorrhage: none.")
    page.fill("textarea[name=impression]", "No acute intracranial abnormality.")
    page.click("#sign")  # the signing dialog asks first (test_e2e_reading_safeguards.py)
    page.click("#confirm-sign")
    page.wait_for_selector("#add-addendum")
    assert page.inner_text("#report-status") == "FINAL"
    assert "Signed by Dr Ada Reader" in page.inner_text("#version-1")
    # The sync worker carries out what the signature queued; the page shows each task.
    wait_for(lambda: _reloaded(page, "#version-1", "PACS: stored"), timeout=30, step=1)
    assert "EHR: sent" in page.inner_text("#version-1")
    assert page.locator("#tasks-1 .task-state").all_inner_texts() == ["done"] * 4

    # An addendum: a new version; the original stays as it was.
    page.click("#add-addendum")
    page.fill("textarea[name=addendum]", "On review: small left parietal scalp haematoma.")
    page.click("#sign")
    page.click("#confirm-sign")
    page.wait_for_selector("#version-2")
    assert "No acute intracranial abnormality." in page.inner_text("#version-1")
    assert "scalp haematoma" in page.inner_text("#version-2")
    page.fill("input[name=communicated_to]", "Dr Ward, emergency department")
    page.click("#critical button")
    page.wait_for_selector("#critical p")
    wait_for(lambda: _reloaded(page, "#version-2", "PACS: stored"), timeout=30, step=1)
    _shot(page, "report-page.png")

    # The PDFs hold the report text (the amended one the addendum too).
    links = page.locator("a.pdf-link")
    assert links.count() == 2
    pdf = context.request.get(system.ris_url + links.nth(1).get_attribute("href"))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body())).pages)
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / "report-v2.pdf").write_bytes(pdf.body())
    for expected in (
        "Lindqvist, Åsa",
        "READ-001",
        accession,
        "No acute intracranial abnormality.",
        "scalp haematoma",
        "Dr Ada Reader",
    ):
        assert expected in text, expected

    # The EHR got the report and the amended report (ORU^R01, F then C).
    orus = [
        m
        for m in wait_for(lambda: len(ehr.messages("ORU")) >= 3 and ehr.messages("ORU"), timeout=20)
        if accession.encode() in m
    ]
    assert [hl7_peer.fields(m, "OBX")[11] for m in orus] == ["F", "C"]
    assert "No acute intracranial abnormality." in orus[0].decode() and "scalp haematoma" not in orus[0].decode()
    assert "No acute intracranial abnormality." in orus[1].decode() and "scalp haematoma" in orus[1].decode()
    (TEST_OUTPUT / "oru-amended-report.hl7").write_bytes(orus[1].replace(b"\r", b"\n"))

    # The order page shows the report.
    page.goto(f"{system.ris_url}/orders/{accession}")
    assert page.inner_text("#report-status") == "FINAL"
    context.close()

    # Orthanc's study holds both PDFs and both SRs (original, amended), valid for dciodvfy.
    assert shutil.which("dciodvfy"), "dciodvfy is missing: run `make setup-test`"
    for modality, sop_class, iod in (
        ("DOC", ENCAPSULATED_PDF, "EncapsulatedPDF"),
        ("SR", BASIC_TEXT_SR, "BasicTextSR"),
    ):
        instances = system.orthanc(
            "POST",
            "/tools/find",
            json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid, "Modality": modality}, "Expand": True},
        ).json()
        assert len(instances) == 2, instances
        for inst in instances:
            path = tmp_path / f"{inst['ID']}.dcm"
            path.write_bytes(system.orthanc("GET", f"/instances/{inst['ID']}/file").content)
            tags = system.orthanc("GET", f"/instances/{inst['ID']}/simplified-tags").json()
            assert tags["SOPClassUID"] == sop_class and tags["AccessionNumber"] == accession
            proc = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
            assert "Error" not in proc.stderr and iod in proc.stderr, proc.stderr


def test_proxy_refuses_traversal_under_gunicorn(system, radiologist, ct_order):
    """The viewer as `up` runs it (gunicorn, its RAW_URI) in front of the real Orthanc: every
    traversal form of the proxy tests is refused, a normal DICOMweb call still answers."""
    study_uid = ct_order["study"]["study_instance_uid"]
    s = requests.Session()
    login = s.get(f"{system.ris_url}/login")
    assert s.post(login.url, data={"username": radiologist, "password": PASSWORD, "csrf_token": _csrf(login.text)}).ok
    page = s.get(f"{system.ris_url}/reading/by-uid/{study_uid}")
    assert s.get(page.url.rstrip("/") + "/open/ohif", timeout=30).ok  # the hand-over to the viewer
    cookie = f"orthanc_ris_viewer={s.cookies.get('orthanc_ris_viewer')}"
    port = int(system.env["ORTHANC_RIS_VIEWER_PORT"])
    for path in TRAVERSALS:
        assert raw_request(port, "GET", path, cookie)[0] == 400, path
    status, _, body = raw_request(port, "GET", f"/dicom-web/studies/{study_uid}/series", cookie)
    assert status == 200 and b"0020000E" in body


def test_logs_hold_no_patient_data(system):
    """Runs last in this module: everything above has been logged by now."""
    log = (system.home / "up.log").read_text(errors="replace")
    assert "saved as FINAL" in log and "stored in Orthanc" in log
    for secret in (
        "Lindqvist",
        "Åsa",
        "Okafor",
        "READ-001",
        "READ-002",
        "1958",
        "anticoagulants",
        "haematoma",
        "Dr Ward",
        PASSWORD,
    ):
        assert secret not in log, secret
