"""The reading pages and the viewer's gate, through the Flask test client."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from ris_app.db import transaction
from ris_app.model import Study
from ris_app.tracking.worker import run_pending_tasks
from ris_app.viewer.app import create_viewer_app
from ris_app.web.auth import create_user
from tests.reporting.test_reporting import _patient, _study
from tests.reporting.test_signing_outbox import RecordingOrthanc

pytestmark = pytest.mark.db


@pytest.fixture
def study_id(app):
    with transaction(app.extensions["ris_sessions"]) as s:
        for name, role in (("rad", "radiologist"), ("clerk", "clerk"), ("tech", "technologist")):
            create_user(s, name, "password-123", role, full_name=name.upper())
        study = _study(s, _patient(s), priority="STAT")
        return study.id


def _token(client, path: str = "/login") -> str:
    """The session's CSRF token, read from a page's form as a browser has it."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def _login(client, name):
    r = client.post("/login", data={"username": name, "password": "password-123", "csrf_token": _token(client)})
    assert r.status_code == 302
    return _token(client, "/reading/studies/1")


def _post(client, path, token, data=None, **kw):
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kw)


@pytest.mark.parametrize("path", ["/reading", "/reading/studies/1"])
def test_reading_pages_need_a_login(client, path):
    r = client.get(path)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_a_clerk_cannot_write_reports(client, study_id):
    token = _login(client, "clerk")
    assert client.get("/reading").status_code == 403
    assert _post(client, f"/reading/studies/{study_id}/report", token, {"action": "draft"}).status_code == 403


def test_write_sign_and_amend_through_the_pages(client, study_id, app, config):
    token = _login(client, "rad")
    r = client.post(f"/reading/studies/{study_id}/report", data={"impression": "x", "action": "sign"})
    assert r.status_code == 400  # no CSRF token: refused, nothing signed
    page = client.get("/reading").get_data(as_text=True)
    assert "STAT" in page and "Müller" in page and f"/reading/studies/{study_id}" in page
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "CT head without contrast" in page and "Haemorrhage" in page and "headache" in page
    text = {"indication": "headache", "technique": "t", "findings": "No bleed.", "impression": "Normal."}
    # "Sign" first asks: who and what is signed, the text carried along; nothing signed yet.
    r = _post(client, f"/reading/studies/{study_id}/report", token, {**text, "action": "sign"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Sign this report?" in page and "The signed report is final." in page
    assert 'data-field="patient">Müller, Anna<' in page and 'data-field="mrn">P1<' in page
    assert 'data-field="procedure">CT head without contrast<' in page and 'value="No bleed."' in page
    assert "Signed by" not in client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    r = _post(
        client,
        f"/reading/studies/{study_id}/report",
        token,
        {**text, "action": "sign", "confirmed": "1"},
        follow_redirects=True,
    )
    page = r.get_data(as_text=True)
    assert "Report signed." in page and "Signed by RAD" in page and "PACS: queued" in page
    assert "pdf-link" not in page  # the PDF is the sync worker's to make
    assert "Add an addendum" in page
    assert f"/reading/studies/{study_id}" not in client.get("/reading").get_data(as_text=True)  # read: off the list
    _post(client, f"/reading/studies/{study_id}/addendum", token)
    r = _post(
        client,
        f"/reading/studies/{study_id}/report",
        token,
        {"addendum": "Also a sinusitis.", "action": "sign", "confirmed": "1"},
        follow_redirects=True,
    )
    page = r.get_data(as_text=True)
    assert "Addendum 1 signed." in page and "Also a sinusitis." in page and "Normal." in page
    r = _post(
        client,
        f"/reading/studies/{study_id}/critical",
        token,
        {"communicated_to": "Dr Ward", "method": "phone", "communicated_at": "2026-11-28T10:05"},
        follow_redirects=True,
    )
    assert re.search(r"Told <strong>Dr Ward</strong> by phone at <time [^>]*>2026-11-28 10:05 \w+</time>", r.text)
    run_pending_tasks(app.extensions["ris_sessions"], RecordingOrthanc(config))  # the sync worker's round
    assert "PACS: stored" in client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    pdf = client.get("/reading/versions/2/report.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    # The order page shows the report.
    with transaction(app.extensions["ris_sessions"]) as s:
        accession = s.get(Study, study_id).order.accession_number
    page = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert 'id="report-status">FINAL' in page and "Normal." in page and "Also a sinusitis." in page


def test_viewer_hand_over_and_gate(app, client, study_id, config, tmp_path):
    ohif = tmp_path / "ohif"
    ohif.mkdir()
    (ohif / "index.html").write_text("<html>OHIF</html>")
    (ohif / "app-config.js").write_text("window.config = {};")
    viewer = create_viewer_app(config.__class__(**{**config.__dict__, "ohif_dir": ohif})).test_client()
    assert viewer.get("/healthz").status_code == 200
    assert viewer.get("/dicom-web/studies").status_code == 401  # no session: Orthanc stays closed
    assert viewer.get("/viewer").status_code == 302  # to the RIS login
    assert viewer.get("/ris-login?token=forged").status_code == 302
    assert viewer.get("/dicom-web/studies").status_code == 401

    clerk = app.test_client()
    _login(clerk, "clerk")
    assert clerk.get(f"/reading/studies/{study_id}/open/ohif").status_code == 403
    _login(client, "rad")
    r = client.get(f"/reading/studies/{study_id}/open/ohif")
    target = urlsplit(r.headers["Location"])
    assert target.port == config.viewer_port and target.path == "/ris-login"
    assert parse_qs(target.query)["next"] == ["/viewer?StudyInstanceUIDs=1.2.3.1"]
    r = viewer.get(f"/ris-login?{target.query}")
    assert r.status_code == 302 and r.headers["Location"] == "/viewer?StudyInstanceUIDs=1.2.3.1"
    assert "OHIF" in viewer.get("/viewer?StudyInstanceUIDs=1.2.3.1").get_data(as_text=True)
    config_js = viewer.get("/app-config.js").get_data(as_text=True)
    assert "window.location.origin + '/dicom-web'" in config_js
    # Logged in, the proxy is open; Orthanc is not running here: a gateway error, not a crash.
    assert viewer.get("/dicom-web/studies").status_code == 502


def test_technologist_may_view_but_not_explore(client, study_id, config):
    _login(client, "tech")
    assert client.get(f"/reading/studies/{study_id}/open/ohif").status_code == 302
    assert client.get(f"/reading/studies/{study_id}/open/explorer").status_code == 403


def test_report_api_reads_signed_reports(client, study_id, app, auth, config):
    with transaction(app.extensions["ris_sessions"]) as s:
        study = s.get(Study, study_id)
        uid, accession = study.study_instance_uid, study.order.accession_number
    assert client.get(f"/api/studies/{uid}/report").status_code == 401
    r = client.get(f"/api/studies/{uid}/report", headers=auth)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    token = _login(client, "rad")
    _post(
        client,
        f"/reading/studies/{study_id}/report",
        token,
        {"impression": "Normal.", "action": "sign", "confirmed": "1"},
    )
    _post(client, "/logout", token)
    pending = client.get(f"/api/orders/{accession}/report", headers=auth).json["versions"][0]
    assert pending["pdf"] is None and {t["state"] for t in pending["tasks"]} == {"pending"}
    run_pending_tasks(app.extensions["ris_sessions"], RecordingOrthanc(config))
    body = client.get(f"/api/orders/{accession}/report", headers=auth).json
    assert body["status"] == "FINAL" and body["study_instance_uid"] == uid
    (v1,) = body["versions"]
    assert v1["impression"] == "Normal." and v1["signed_by"]["full_name"] == "RAD" and v1["pdf"]
    assert [(t["kind"], t["state"]) for t in v1["tasks"]] == [
        ("report_pdf", "done"),
        ("store_pdf", "done"),
        ("store_sr", "done"),
    ]  # no HL7 destination here: no ORU task
    assert client.get(f"/api/studies/{uid}/report", headers=auth).json == body
    pdf = client.get(v1["pdf"], headers=auth)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.get(f"/api/reports/{body['id']}/versions/9/pdf", headers=auth).status_code == 404


@pytest.mark.parametrize(
    "target, landing",
    [
        ("/viewer?StudyInstanceUIDs=1.2", "/viewer?StudyInstanceUIDs=1.2"),
        ("//evil.example/x", "/"),
        ("/\\evil.example/x", "/"),
        ("https://evil.example/", "/"),
    ],
)
def test_viewer_login_lands_only_on_its_own_pages(config, target, landing):
    from ris_app.viewer.app import viewer_login_url

    viewer = create_viewer_app(config).test_client()
    url = urlsplit(viewer_login_url(config, "http://127.0.0.1:5000/", 1, target))
    r = viewer.get(f"/ris-login?{url.query}")
    assert r.status_code == 302 and r.headers["Location"] == landing


def test_viewer_session_expires(client, study_id, config, monkeypatch):
    import ris_app.viewer.app as viewer_module

    viewer = create_viewer_app(config).test_client()
    _login(client, "rad")
    target = urlsplit(client.get(f"/reading/studies/{study_id}/open/ohif").headers["Location"])
    viewer.get(f"/ris-login?{target.query}")
    assert viewer.get("/app-config.js").status_code == 200
    later = viewer_module.time.time() + viewer_module.SESSION_MAX_AGE + 1
    monkeypatch.setattr(viewer_module.time, "time", lambda: later)
    assert viewer.get("/app-config.js").status_code == 401


def test_with_an_external_ohif_links_go_straight_to_it(app, client, study_id):
    """Docker: Orthanc's own OHIF plugin and Explorer, behind Orthanc's own login."""
    cfg = app.config["RIS"]
    app.config["RIS"] = cfg.__class__(
        **{**cfg.__dict__, "ohif_url": "http://pacs:8042/ohif", "orthanc_public_url": "http://pacs:8042"}
    )
    _login(client, "rad")
    r = client.get(f"/reading/studies/{study_id}/open/ohif")
    assert r.headers["Location"] == "http://pacs:8042/ohif/viewer?StudyInstanceUIDs=1.2.3.1"
    r = client.get(f"/reading/studies/{study_id}/open/explorer")
    assert r.headers["Location"] == "http://pacs:8042/app/explorer.html#study?uuid=orthanc-1"
