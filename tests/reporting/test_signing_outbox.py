"""What a signature causes, queued with it and carried out by the sync worker: the task
logic against a recording stand-in for Orthanc's REST API (database-level; the real
Orthanc and EHR are in test_signing_e2e.py and tests/e2e/test_e2e_signing_crash.py)."""

from __future__ import annotations

from datetime import timedelta

import pydicom
import pytest
from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.db import transaction
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.settings import Hl7Settings
from ris_app.model import Hl7Outbox, OrthancTask, ReportVersion, Study
from ris_app.orthanc.client import OrthancError
from ris_app.reporting import lifecycle as r
from ris_app.reporting.outbox import RENDER_PDF, SEND_ORU, STORE_PDF, STORE_SR, retry_now
from ris_app.reporting.publish import run_report_task
from ris_app.tracking.worker import run_pending_tasks
from tests.reporting.test_reporting import _patient, _study, _user

pytestmark = pytest.mark.db
LATER = timedelta(hours=1)  # past every back-off


class RecordingOrthanc:
    """Orthanc's REST API as the report tasks use it: study tags, and stored instances
    counted by SOP Instance UID (storing one again is harmless, as in Orthanc)."""

    def __init__(self, cfg, fail: OrthancError | None = None):
        self.cfg = cfg
        self.fail = fail
        self.stored: dict[str, int] = {}
        self.calls = 0

    def get(self, path):
        self.calls += 1
        if self.fail:
            raise self.fail
        raise OrthancError(f"{path}: not found", retry=False)  # the RIS's values head the documents

    def store_instance(self, data: bytes) -> str:
        self.calls += 1
        if self.fail:
            raise self.fail
        uid = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)).SOPInstanceUID
        self.stored[uid] = self.stored.get(uid, 0) + 1
        return f"orthanc-{uid[-8:]}"


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


@pytest.fixture
def ehr():
    set_settings(Hl7Settings.from_env({"ORTHANC_RIS_HL7_DESTINATIONS": "EHR=127.0.0.1:1;LIS=127.0.0.1:2"}))
    yield
    set_settings(None)


def _sign(sessions, *, order=True, impression="Normal CT of the head.") -> int:
    """A study with a signed report, committed; returns the version's id."""
    with transaction(sessions) as s:
        user = _user(s)
        study = _study(s, _patient(s) if order else None, mrn="ANON")
        report = r.start_report(s, study, user)
        v = r.save_report(s, report, user, {"impression": impression}, "sign")
        return v.id


def _tasks(sessions, version_id):
    with sessions() as s:
        rows = s.scalars(
            select(OrthancTask).where(OrthancTask.report_version_id == version_id).order_by(OrthancTask.id)
        )
        return [(t.kind, t.destination, t.state) for t in rows]


def _outbox(sessions):
    with sessions() as s:
        return s.scalars(select(Hl7Outbox.destination).order_by(Hl7Outbox.id)).all()


def test_the_signature_queues_its_outputs_in_its_own_transaction(sessions, ehr):
    s = sessions()
    user, study = _user(s), _study(s, _patient(s))
    report = r.start_report(s, study, user)
    r.save_report(s, report, user, {"impression": "x"}, "sign")
    assert len(s.scalars(select(OrthancTask)).all()) == 5
    s.rollback()  # the signature did not commit: nothing was queued
    s.close()
    with sessions() as s:
        assert s.scalars(select(OrthancTask)).all() == []

    vid = _sign(sessions)
    assert _tasks(sessions, vid) == [
        (RENDER_PDF, "", "pending"),
        (STORE_PDF, "", "pending"),
        (STORE_SR, "", "pending"),
        (SEND_ORU, "EHR", "pending"),
        (SEND_ORU, "LIS", "pending"),
    ]
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        assert v.sop_instance_uid and v.sr_instance_uid and v.sop_instance_uid != v.sr_instance_uid  # fixed now
        assert (v.pacs_status, v.result_status, v.pdf) == ("queued", "queued for 2 destination(s)", None)


def test_the_worker_carries_out_each_task_once(sessions, config, ehr):
    vid = _sign(sessions)
    orthanc = RecordingOrthanc(config)
    assert run_pending_tasks(sessions, orthanc) == 5
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        assert v.pdf.startswith(b"%PDF")
        assert orthanc.stored == {v.sop_instance_uid: 1, v.sr_instance_uid: 1}
        assert (v.pacs_status, v.result_status) == ("stored", "sent: ORU^R01 queued for 2 destination(s)")
        assert v.orthanc_instance_id == f"orthanc-{v.sop_instance_uid[-8:]}"
        task_ids = s.scalars(select(OrthancTask.id).order_by(OrthancTask.id)).all()
    assert _outbox(sessions) == ["EHR", "LIS"]
    assert run_pending_tasks(sessions, orthanc) == 0
    # A task run again (two workers, the retry button at the wrong moment) finds it done.
    assert not any(run_report_task(sessions, orthanc, t) for t in task_ids)
    assert _outbox(sessions) == ["EHR", "LIS"] and set(orthanc.stored.values()) == {1}


def test_a_task_done_then_not_marked_done_doubles_nothing(sessions, config, ehr):
    """A crash after storing, before marking done: the next run stores the same instances
    (same SOP Instance UIDs) again; the ORU is marked done with its queuing, so it has no
    such window."""
    vid = _sign(sessions)
    orthanc = RecordingOrthanc(config)
    run_pending_tasks(sessions, orthanc)
    with transaction(sessions) as s:
        for t in s.scalars(select(OrthancTask).where(OrthancTask.kind != SEND_ORU)):
            t.state, t.done_at = "pending", None
    assert run_pending_tasks(sessions, orthanc) == 3
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        assert orthanc.stored == {v.sop_instance_uid: 2, v.sr_instance_uid: 2}  # one instance each, twice
    assert _outbox(sessions) == ["EHR", "LIS"]


def test_orthanc_down_backs_off_then_the_tasks_are_done(sessions, config, ehr):
    vid = _sign(sessions)
    down = RecordingOrthanc(config, OrthancError("Orthanc unreachable: ConnectionError"))
    assert run_pending_tasks(sessions, down) == 2  # the ORUs need no Orthanc
    assert _outbox(sessions) == ["EHR", "LIS"]
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        waiting = [t for t in s.scalars(select(OrthancTask).where(OrthancTask.state == "pending"))]
        assert v.pacs_status.startswith("error: Orthanc unreachable")
    # The PDF failed; storing it waits behind it, the SR failed on its own.
    assert sorted((t.kind, t.attempts) for t in waiting) == [(RENDER_PDF, 1), (STORE_PDF, 0), (STORE_SR, 1)]
    assert all(t.next_attempt_at > utcnow() for t in waiting if t.attempts)
    calls = down.calls
    assert run_pending_tasks(sessions, down) == 0 and down.calls == calls  # backing off: not tried again yet
    up = RecordingOrthanc(config)
    assert run_pending_tasks(sessions, up, now=utcnow() + LATER) == 3
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        assert v.pacs_status == "stored" and set(up.stored) == {v.sop_instance_uid, v.sr_instance_uid}
    assert _outbox(sessions) == ["EHR", "LIS"]


def test_a_study_without_an_order_sends_its_result_once_linked(sessions, config, ehr):
    vid = _sign(sessions, order=False)
    orthanc = RecordingOrthanc(config)
    assert run_pending_tasks(sessions, orthanc) == 3
    with sessions() as s:
        v = s.get(ReportVersion, vid)
        assert v.result_status == "pending: the study has no order to report to yet"
    assert _outbox(sessions) == []
    with transaction(sessions) as s:
        order_study = _study(s, _patient(s, mrn="LATE"))
        s.get(ReportVersion, vid).report.study.order_id = order_study.order_id
    assert run_pending_tasks(sessions, orthanc, now=utcnow() + LATER) == 2
    assert _outbox(sessions) == ["EHR", "LIS"]


def test_an_addendums_result_never_overtakes_the_originals(sessions, config, ehr):
    v1 = _sign(sessions, order=False)
    with transaction(sessions) as s:
        report = s.get(ReportVersion, v1).report
        user = report.versions[0].signed_by
        r.start_addendum(s, report, user)
        v2 = r.save_report(s, report, user, {"addendum": "Sinusitis."}, "sign").id
    orthanc = RecordingOrthanc(config)
    run_pending_tasks(sessions, orthanc)
    assert [t[2] for t in _tasks(sessions, v2) if t[0] == SEND_ORU] == ["pending", "pending"]
    with sessions() as s:
        assert s.get(ReportVersion, v2).result_status.startswith("queued")  # not tried: waits behind v1's
    with transaction(sessions) as s:
        s.get(ReportVersion, v1).report.study.order_id = _study(s, _patient(s, mrn="LATE")).order_id
    run_pending_tasks(sessions, orthanc, now=utcnow() + LATER)
    with sessions() as s:
        payloads = s.scalars(select(Hl7Outbox.payload).order_by(Hl7Outbox.id)).all()
    assert [("|C|" in p) for p in payloads] == [False, False, True, True]  # F to both, then C to both


def test_the_result_message_holds_the_report_and_its_addenda(sessions, config, ehr):
    vid = _sign(sessions)
    with transaction(sessions) as s:
        report = s.get(ReportVersion, vid).report
        user = report.versions[0].signed_by
        r.start_addendum(s, report, user)
        r.save_report(s, report, user, {"addendum": "Sinusitis."}, "sign")
        report_id = report.id
    run_pending_tasks(sessions, RecordingOrthanc(config))
    with sessions() as s:
        first, _, second, _ = s.scalars(select(Hl7Outbox.payload).order_by(Hl7Outbox.id)).all()
    assert "ORU^R01" in first and "|F|" in first and "&Rad1&Dr" in first  # OBR-32: the signer as Rad1^Dr
    assert "IMPRESSION:" in first and "Normal CT of the head." in first
    assert "|C|" in second and "ADDENDUM 1" in second and "Sinusitis." in second
    assert f"{report_id}.2" in second


def test_refused_by_orthanc_stops_until_retried_from_the_page(sessions, config, client, ehr):
    vid = _sign(sessions)
    refused = RecordingOrthanc(config, OrthancError("POST /instances: HTTP 400 bad file", retry=False))
    run_pending_tasks(sessions, refused)
    with sessions() as s:
        uid = s.get(ReportVersion, vid).report.study.study_instance_uid
    assert ("store_sr", "", "failed") in _tasks(sessions, vid)
    body = client.get(f"/api/studies/{uid}/report", headers={"Authorization": "Bearer test-token-0123456789"}).json
    tasks = {(t["kind"], t["destination"]): t for t in body["versions"][0]["tasks"]}
    assert tasks[STORE_SR, None]["state"] == "failed" and "HTTP 400" in tasks[STORE_SR, None]["error"]
    assert tasks[SEND_ORU, "EHR"]["state"] == tasks[SEND_ORU, "LIS"]["state"] == "done"
    assert run_pending_tasks(sessions, refused, now=utcnow() + LATER) == 0  # failed: not retried alone
    with transaction(sessions) as s:
        assert retry_now(s, s.get(ReportVersion, vid)) == 2  # what is not done is due again, nothing sent here
    up = RecordingOrthanc(config)
    assert run_pending_tasks(sessions, up) == 2
    assert {t[2] for t in _tasks(sessions, vid)} == {"done"}


def test_the_report_page_shows_the_tasks_and_retries_them(sessions, config, client, ehr):
    from ris_app.web.auth import create_user
    from tests.reporting.test_reading_pages import _login, _post

    with transaction(sessions) as s:
        create_user(s, "rad", "password-123", "radiologist", full_name="RAD")
    vid = _sign(sessions)
    with sessions() as s:
        study_id = s.get(ReportVersion, vid).report.study_id
    run_pending_tasks(sessions, RecordingOrthanc(config, OrthancError("Orthanc unreachable: ConnectionError")))
    token = _login(client, "rad")
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "PDF into the PACS" in page and "Result to EHR" in page and "Orthanc unreachable" in page
    assert "next attempt" in page and 'id="retry-1"' in page and "pdf-link" not in page
    r = _post(client, "/reading/versions/1/publish", token, follow_redirects=True)
    assert "task(s) queued again" in r.get_data(as_text=True)
    run_pending_tasks(sessions, RecordingOrthanc(config))
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "PACS: stored" in page and "pdf-link" in page and 'id="retry-1"' not in page
    with sessions() as s:
        assert s.scalar(select(Study.id)) == study_id


def test_a_reports_pending_tasks_do_not_hold_back_coercion_of_its_study(sessions):
    from ris_app.tracking.corrections import coerce_if_needed

    vid = _sign(sessions)
    with transaction(sessions) as s:
        study = s.get(ReportVersion, vid).report.study
        study.stable_at, study.patient_name = utcnow(), "Mueller^Ana"  # a typo at the console
        task = coerce_if_needed(s, study)
        assert task is not None and task.replace["PatientName"] != "Mueller^Ana"


def test_retry_of_a_version_signed_before_the_outbox_sends_only_what_had_failed(sessions, config, ehr):
    vid = _sign(sessions)
    with transaction(sessions) as s:  # as migration 0009 finds it: published inline, the PACS failed
        s.execute(OrthancTask.__table__.delete())
        v = s.get(ReportVersion, vid)
        v.pacs_status, v.result_status = "error: ConnectionError", "sent: ORU^R01 queued for 1 destination(s)"
    with transaction(sessions) as s:
        assert retry_now(s, s.get(ReportVersion, vid)) == 3
    assert run_pending_tasks(sessions, RecordingOrthanc(config)) == 3
    assert _tasks(sessions, vid) == [(RENDER_PDF, "", "done"), (STORE_PDF, "", "done"), (STORE_SR, "", "done")]
    assert _outbox(sessions) == []  # the EHR had its result: not sent again
