"""Second-opinion share links against the real system (`orthanc-ris up`: Orthanc with its
DICOMweb plugin, the RIS, the viewer part under gunicorn): a radiologist creates a link
on the report page; the colleague's session reads that study's metadata, frames and
signed report, and gets 403 for another study however the DICOMweb URL is changed, for
searches beyond the study, for Orthanc's REST and WADO-URI; a revoked or expired link
answers 410. Then the same in Debian's chromium: the code typed, the study in OHIF."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model import AuditEvent, ShareLink
from ris_app.reporting.sharing import token_hash
from tests.conftest import wait_for
from tests.e2e.test_e2e_reading import PASSWORD, _canvas_drawn, _csrf, _imaged_order, _patient, _shot, _sign_over_http
from tests.e2e.test_pages_browser import browser  # noqa: F401  (one Debian-chromium fixture for all)
from tests.viewer.test_viewer_proxy import _send as raw_request

pytestmark = pytest.mark.e2e
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@pytest.fixture(scope="module")
def radiologist(system):
    subprocess.run(
        [
            *(str(Path(sys.executable).parent / "orthanc-ris"), "create-user", "lee", "--role", "radiologist"),
            *("--full-name", "Dr Ada Reader", "--password-env", "RIS_TEST_PASSWORD"),
        ],
        env={**system.env, "RIS_TEST_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )
    return "lee"


@pytest.fixture(scope="module")
def studies(system, radiologist, tmp_path_factory):
    """Two patients' CTs in Orthanc, linked to their orders; the first one's report signed."""
    tmp = tmp_path_factory.mktemp("share")
    _patient(system, "SHARE-001", "Lindqvist", "Åsa", "1958-03-14", "F")
    _patient(system, "SHARE-002", "Okafor", "Chidi", "1971-09-30", "M")
    shared = _imaged_order(system, tmp / "a", "SHARE-001", "Lindqvist^Åsa", "CTHEAD", "ROUTINE", "Headache", count=4)
    other = _imaged_order(system, tmp / "b", "SHARE-002", "Okafor^Chidi", "CTCHEST", "ROUTINE", "Cough", count=3)
    _sign_over_http(
        system,
        radiologist,
        shared["study"]["study_instance_uid"],
        indication="Headache",
        technique="Axial CT.",
        findings="Normal.",
        impression="No intracranial abnormality.",
    )
    return shared["study"]["study_instance_uid"], other["study"]["study_instance_uid"]


@pytest.fixture(scope="module")
def ris(system, radiologist):
    """The radiologist's logged-in RIS session."""
    s = requests.Session()
    login = s.get(f"{system.ris_url}/login")
    assert s.post(login.url, data={"username": radiologist, "password": PASSWORD, "csrf_token": _csrf(login.text)}).ok
    return s


def _share(system, ris, study_uid: str, **form) -> tuple[str, str, str]:
    """Share `study_uid` from its report page: (link URL, code, report page URL)."""
    page = ris.get(f"{system.ris_url}/reading/by-uid/{study_uid}")
    data = {"recipient": "Dr Lee, St Elsewhere", "days": "7", "csrf_token": _csrf(page.text), **form}
    r = ris.post(page.url.rstrip("/") + "/shares", data=data)
    assert r.status_code == 200, r.text
    url = re.search(r'id="share-url" readonly size="70" value="([^"]+)"', r.text).group(1)
    return url, re.search(r'id="share-code"[^>]*>([A-Z0-9]{8})<', r.text).group(1), page.url


def _open(url: str, code: str) -> tuple[requests.Session, requests.Response]:
    """The colleague's browser: the link's page, then the code."""
    v = requests.Session()
    form = v.get(url, timeout=30)
    assert form.status_code == 200 and "share-code-form" in form.text
    return v, v.post(url, data={"code": code, "csrf_token": _csrf(form.text)}, allow_redirects=False, timeout=30)


def _sessions(system):
    return make_sessionmaker(make_engine(Config.from_env(system.env, create_secrets=False).database_url))


def _viewer(system) -> str:
    return f"http://127.0.0.1:{system.env['ORTHANC_RIS_VIEWER_PORT']}"


def _first_instance(metadata: requests.Response) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of a study's first instance, from its metadata."""
    assert metadata.status_code == 200, metadata.status_code
    first = metadata.json()[0]
    return first["0020000E"]["Value"][0], first["00080018"]["Value"][0]


def test_a_share_session_reads_its_study_and_nothing_else(system, ris, studies):
    shared, other = studies
    url, code, _ = _share(system, ris, shared, include_report="1")
    base = _viewer(system)

    v, r = _open(url, "WRONG234")
    assert r.status_code == 400 and "4 tries left" in r.text
    r = v.post(url, data={"code": code.lower(), "csrf_token": _csrf(v.get(url).text)}, timeout=30)
    assert r.status_code == 200 and "share-open-viewer" in r.text  # with a report: the landing page
    assert f"/viewer?StudyInstanceUIDs={shared}" in r.text

    # Its study: metadata, a frame, the study's series, the signed report's PDF.
    series, sop = _first_instance(v.get(f"{base}/dicom-web/studies/{shared}/metadata", timeout=30))
    frame = v.get(
        f"{base}/dicom-web/studies/{shared}/series/{series}/instances/{sop}/frames/1",
        headers={"Accept": FRAME_ACCEPT},
        timeout=30,
    )
    assert frame.status_code == 200 and len(frame.content) > 128 * 128
    assert v.get(f"{base}/dicom-web/studies/{shared}/series", timeout=30).status_code == 200
    pdf = wait_for(lambda: (p := v.get(f"{base}/share-report.pdf", timeout=30)).status_code == 200 and p, timeout=60)
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    # Another study, whatever the URL: refused before Orthanc, or not found by Orthanc.
    # (its UIDs read from Orthanc as the service account)
    other_series, other_sop = _first_instance(system.orthanc("GET", f"/dicom-web/studies/{other}/metadata"))
    for path in (
        f"/dicom-web/studies/{other}/metadata",
        f"/dicom-web/studies/{other}/series",
        f"/dicom-web/studies/{other}/series/{other_series}/metadata",
        f"/dicom-web/studies/{other}/series/{other_series}/instances/{other_sop}/frames/1",
        f"/dicom-web/studies/{other}/series/{other_series}/instances/{other_sop}/rendered",
        "/dicom-web/series",
        f"/dicom-web/series?SeriesInstanceUID={other_series}",
        f"/dicom-web/instances?SOPInstanceUID={other_sop}",
        f"/dicom-web/studies?StudyInstanceUID={other}",
        f"/dicom-web/studies?0020000D={other}",
        f"/dicom-web/studies?0020,000D={other}",
        f"/dicom-web/studies?Study%49nstanceUID={other}",
        f"/dicom-web/studies?StudyInstanceUID={shared}%5C{other}",
        f"/wado?requestType=WADO&studyUID={other}&seriesUID={other_series}&objectUID={other_sop}",
        f"/wado?requestType=WADO&studyUID={shared}&seriesUID={series}&objectUID={sop}",
        "/orthanc/studies",
        "/orthanc/system",
        "/orthanc/app/explorer.html",
    ):
        r = v.get(base + path, headers={"Accept": FRAME_ACCEPT} if "frames" in path else {}, timeout=30)
        assert r.status_code == 403, (path, r.status_code)
    assert v.post(f"{base}/dicom-web/studies", data=b"x", timeout=30).status_code == 403  # STOW
    # The shared study's path with another study's series or instance: Orthanc finds nothing.
    for path in (
        f"/dicom-web/studies/{shared}/series/{other_series}/metadata",
        f"/dicom-web/studies/{shared}/series/{other_series}/instances/{other_sop}/frames/1",
        f"/dicom-web/studies/{shared}/series/{other_series}/instances/{other_sop}/metadata",
    ):
        r = v.get(base + path, headers={"Accept": FRAME_ACCEPT} if "frames" in path else {}, timeout=30)
        assert r.status_code == 404 and b"Okafor" not in r.content and b"SHARE-002" not in r.content, path
    # The root study search is forced to the shared study, whatever it asks.
    for query in ("", "?PatientID=SHARE-002", "?PatientID=SHARE-001&limit=101&offset=0", f"?StudyInstanceUID={shared}"):
        found = v.get(f"{base}/dicom-web/studies{query}", timeout=30)
        assert found.status_code == 200, query
        assert [s["0020000D"]["Value"][0] for s in found.json()] == ([] if "SHARE-002" in query else [shared]), query

    # Every opening, and the wrong code, are in the audit trail under the colleague's label.
    with _sessions(system)() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.actor_kind == "share").order_by(AuditEvent.id)).all()
    assert [(e.action, e.outcome, e.actor, e.resource) for e in events[-3:]] == [
        ("share.open", "refused", "Dr Lee, St Elsewhere", shared),
        ("share.open", "success", "Dr Lee, St Elsewhere", shared),
        ("report.read", "success", "Dr Lee, St Elsewhere", shared),
    ]


def test_the_report_page_lists_openings(system, ris, studies):
    page = ris.get(f"{system.ris_url}/reading/by-uid/{studies[0]}").text
    assert "Shared with <strong>Dr Lee, St Elsewhere</strong>" in page and "opened 1 time, last" in page


def _modalities(answer: requests.Response) -> set[str]:
    assert answer.status_code == 200, answer.status_code
    return {m for item in answer.json() for m in item.get("00080060", {}).get("Value", [])}


def test_a_share_without_the_report_hides_its_dicom_copies(system, ris, studies):
    """The signing tasks store the report as an Encapsulated PDF (DOC) and a Basic Text SR
    in the study: a link without the report lists neither and refuses their URLs."""
    shared, base = studies[0], _viewer(system)

    def copies() -> dict[str, str]:  # as the service account: Modality -> SeriesInstanceUID
        found = system.orthanc("GET", f"/dicom-web/studies/{shared}/series").json()
        return {
            s["00080060"]["Value"][0]: s["0020000E"]["Value"][0] for s in found if s["00080060"]["Value"][0] in "DOC SR"
        }

    series = wait_for(lambda: len(c := copies()) == 2 and c, timeout=90)
    pdf_series = series["DOC"]
    pdf_sop = system.orthanc("GET", f"/dicom-web/studies/{shared}/series/{pdf_series}/instances").json()[0]
    pdf_sop = pdf_sop["00080018"]["Value"][0]

    v, r = _open(*_share(system, ris, shared)[:2])
    assert r.status_code == 302
    assert _modalities(v.get(f"{base}/dicom-web/studies/{shared}/series", timeout=30)) == {"CT"}
    assert _modalities(v.get(f"{base}/dicom-web/studies/{shared}/instances", timeout=30)) == {"CT"}
    metadata = v.get(f"{base}/dicom-web/studies/{shared}/metadata", timeout=30)
    assert _modalities(metadata) == {"CT"} and len(metadata.json()) == 4
    assert pdf_sop.encode() not in metadata.content and b"%PDF" not in metadata.content
    study = v.get(f"{base}/dicom-web/studies", timeout=30).json()[0]
    assert set(study["00080061"]["Value"]) == {"CT"}  # ModalitiesInStudy
    for path in (
        f"studies/{shared}/series/{pdf_series}/instances/{pdf_sop}/metadata",
        f"studies/{shared}/series/{pdf_series}/instances/{pdf_sop}",
        f"studies/{shared}/series/{pdf_series}/instances/{pdf_sop}/bulk/00420011",
        f"studies/{shared}/series/{pdf_series}/metadata",
        f"studies/{shared}/series/{series['SR']}/instances",
        f"studies/{shared}",  # the whole study's DICOM files
    ):
        assert v.get(f"{base}/dicom-web/{path}", timeout=30).status_code == 403, path
    assert v.get(f"{base}/share-report.pdf", timeout=30).status_code == 404

    # With the report, the same session kind sees both copies.
    v, r = _open(*_share(system, ris, shared, include_report="1")[:2])
    assert r.status_code == 200
    assert _modalities(v.get(f"{base}/dicom-web/studies/{shared}/series", timeout=30)) == {"CT", "DOC", "SR"}
    answer = v.get(f"{base}/dicom-web/studies/{shared}/series/{pdf_series}/instances/{pdf_sop}/metadata", timeout=30)
    assert answer.status_code == 200 and answer.json()[0]["00080018"]["Value"] == [pdf_sop]


def test_revoked_and_expired_links_answer_410(system, ris, studies):
    shared = studies[0]
    base = _viewer(system)
    url, code, page_url = _share(system, ris, shared)
    v, r = _open(url, code)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/viewer?StudyInstanceUIDs={shared}")
    assert v.get(f"{base}/dicom-web/studies/{shared}/metadata", timeout=30).status_code == 200

    page = ris.get(page_url).text
    link_id = max(int(n) for n in re.findall(r'id="revoke-(\d+)"', page))
    assert ris.post(f"{system.ris_url}/reading/shares/{link_id}/revoke", data={"csrf_token": _csrf(page)}).ok
    gone = requests.get(url, timeout=30)
    assert gone.status_code == 410 and "withdrawn" in gone.text
    assert v.get(f"{base}/dicom-web/studies/{shared}/metadata", timeout=30).status_code == 410  # the open session too
    assert v.get(f"{base}/viewer?StudyInstanceUIDs={shared}", timeout=30).status_code == 410

    url, code, _ = _share(system, ris, shared)
    v, r = _open(url, code)
    assert r.status_code == 302
    with transaction(_sessions(system)) as s:
        link = s.scalar(select(ShareLink).where(ShareLink.token_hash == token_hash(url.rsplit("/", 1)[1])))
        link.expires_at = utcnow() - timedelta(minutes=1)
    gone = requests.get(url, timeout=30)
    assert gone.status_code == 410 and "expired" in gone.text
    assert v.get(f"{base}/dicom-web/studies/{shared}/metadata", timeout=30).status_code == 410
    assert requests.get(f"{base}/share/not-a-link-at-all", timeout=30).status_code == 404


def test_share_paths_refuse_traversal_under_gunicorn(system, ris, studies):
    """The raw request line, byte for byte: a share session's cookie does not widen it."""
    url, code, _ = _share(system, ris, studies[0])
    v, _ = _open(url, code)
    cookie = f"orthanc_ris_viewer={v.cookies.get('orthanc_ris_viewer')}"
    port = int(system.env["ORTHANC_RIS_VIEWER_PORT"])
    for path in (f"/dicom-web/studies/{studies[0]}/../{studies[1]}/metadata", "/dicom-web/studies/%2e%2e/system"):
        assert raw_request(port, "GET", path, cookie)[0] == 400, path


@pytest.mark.browser
def test_the_colleague_opens_the_study_in_ohif(system, ris, studies, browser):  # noqa: F811
    shared = studies[0]
    url, code, _ = _share(system, ris, shared)
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    context.add_init_script("localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))")
    page = context.new_page()
    page.goto(url)
    _shot(page, "share-code-form.png")
    page.fill("input[name=code]", code)
    page.click("#share-code-form button")
    page.wait_for_url(re.compile(r"/viewer\?StudyInstanceUIDs="))
    assert shared in page.url
    try:
        wait_for(lambda: _canvas_drawn(page), timeout=90, step=1)
    finally:
        _shot(page, "share-ohif-study.png")
    context.close()

    # The radiologist's report page lists the link and its opening.
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    page.goto(f"{system.ris_url}/login")
    page.fill("input[name=username]", "lee")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], form button")
    page.goto(f"{system.ris_url}/reading/by-uid/{shared}")
    assert "opened 1 time" in page.inner_text("#shares li[data-state=active] >> nth=0")
    page.locator("#shares").screenshot(path=str(_shot(page, "share-report-page.png").with_name("share-box.png")))
    context.close()
