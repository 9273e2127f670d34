"""The viewer part's audit events over real sockets (the viewer app served by Werkzeug, a
stand-in Orthanc): opening a study is one study.view per study and session however many
frames follow; a refused request for a study is a refused study.view (ris_app/viewer/audit.py)."""

from __future__ import annotations

import pytest

from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model import Study
from tests.fixtures.audit import events, seen
from tests.viewer.test_viewer_proxy import ORTHANC_ID, SERIES, SOP, STUDY, _login, _send, orthanc, viewer

__all__ = ["orthanc", "viewer"]
pytestmark = pytest.mark.db


def test_a_study_opened_in_the_viewer_is_one_event_per_session(viewer, orthanc):
    cfg, port, _ = viewer
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    with transaction(sessions) as s:
        s.add(Study(study_instance_uid=STUDY, orthanc_id=ORTHANC_ID, patient_mrn="V-1", accession_number="VACC1"))
    cookie, _ = _login(viewer, "radiologist")
    frames = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1"
    for path in (f"/dicom-web/studies/{STUDY}/metadata", frames, frames, f"/wado?requestType=WADO&studyUID={STUDY}"):
        assert _send(port, "GET", path, cookie)[0] == 200
    assert _send(port, "GET", "/dicom-web/studies", cookie)[0] == 200  # a search names no study
    (viewed,) = events(sessions, action="study.view")
    assert seen(viewed) == ("study.view", "radiologist", "user", "V-1", "VACC1", "success")
    assert viewed.address == "127.0.0.1" and viewed.resource == f"dicom-web study {STUDY}"

    clerk, _ = _login(viewer, "clerk")  # no image access for the front desk
    assert _send(port, "GET", f"/dicom-web/studies/{STUDY}/metadata", clerk)[0] == 403
    assert _send(port, "GET", f"/dicom-web/studies/{STUDY}/metadata")[0] == 401
    refused = events(sessions, action="study.view", outcome="refused")
    assert [(e.actor, e.patient_mrn, e.detail) for e in refused] == [
        ("clerk", "V-1", "HTTP 403"),
        ("(anonymous)", "V-1", "HTTP 401"),
    ]
    admin, _ = _login(viewer, "admin")
    assert _send(port, "GET", f"/orthanc/studies/{ORTHANC_ID}", admin)[0] == 200
    assert [e.actor for e in events(sessions, action="study.view", outcome="success")] == ["radiologist", "admin"]
