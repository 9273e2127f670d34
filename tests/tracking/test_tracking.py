"""Image tracking against a real database, without Orthanc: MPPS DIMSE logic, corrections
(link, undo, rename, merge) and their audit, the Orthanc task queue with a stub Orthanc,
inbox scoring, the journey, and the pages."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.model import OrthancTask, Study, StudyCorrection
from ris_app.orthanc.client import OrthancError
from ris_app.tracking import mpps
from ris_app.tracking.events import StudyEvent, apply_study_event
from ris_app.tracking.worker import run_pending_tasks

pytestmark = pytest.mark.db


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


def _patient(client, auth, mrn="T1", family="Doe", given="Jane", birth="1980-05-06"):
    r = client.post(
        "/api/patients",
        json={"mrn": mrn, "family_name": family, "given_name": given, "birth_date": birth, "sex": "F"},
        headers=auth,
    )
    assert r.status_code == 201, r.json


def _order(client, auth, mrn="T1", start="2026-11-28T10:15:00"):
    r = client.post(
        "/api/orders",
        json={"mrn": mrn, "procedure_code": "CTHEAD", "modality": "CT", "station_aet": "CT1", "scheduled_start": start},
        headers=auth,
    )
    assert r.status_code == 201, r.json
    return r.json


def _study(client, auth, uid="1.2.3.4", oid="o1", acc="", pid="TMP", name="Doe^Jane", n=3):
    event = {
        "seq": 1,
        "change": "NewStudy",
        "orthanc_id": oid,
        "study": {
            "StudyInstanceUID": uid,
            "AccessionNumber": acc,
            "PatientID": pid,
            "PatientName": name,
            "PatientBirthDate": "19800506",
            "StudyDate": "20261128",
            "Modalities": ["CT"],
            "RemoteAET": "CT1",
            "CountSeries": 1,
            "CountInstances": n,
        },
    }
    assert client.post("/api/internal/study-events", json=event, headers=auth).status_code == 200


# ------------------------------------------------------------------ MPPS without a network
def _n_create(order, status="IN PROGRESS"):
    ds = Dataset()
    item = Dataset()
    item.ScheduledProcedureStepID = order["scheduled_procedure_step"]["sps_id"]
    item.AccessionNumber = order["accession_number"]
    ds.ScheduledStepAttributesSequence = [item]
    ds.PerformedProcedureStepStatus = status
    return ds


def test_mpps_statuses(client, auth, sessions):
    _patient(client, auth)
    order = _order(client, auth)
    m = mpps.MppsManager()
    with transaction(sessions) as s:
        assert m.create(s, "9.1", Dataset()).status == mpps.MISSING_ATTRIBUTE
        no_seq = Dataset()
        no_seq.PerformedProcedureStepStatus = "IN PROGRESS"
        assert m.create(s, "9.1", no_seq).status == mpps.MISSING_ATTRIBUTE
        assert m.create(s, "9.1", _n_create(order)).status == mpps.SUCCESS
        assert m.create(s, "9.1", _n_create(order)).status == mpps.DUPLICATE_SOP_INSTANCE
        bad = Dataset()
        bad.PerformedProcedureStepStatus = "PAUSED"
        assert m.set(s, "9.1", bad).status == mpps.INVALID_ATTRIBUTE_VALUE
        assert m.set(s, "9.9", bad).status == mpps.NO_SUCH_SOP_INSTANCE
    assert client.get(f"/api/orders/{order['accession_number']}", headers=auth).json["status"] == "STARTED"


def test_unscheduled_mpps_is_accepted_without_a_step(sessions):
    ds = Dataset()
    item = Dataset()
    item.AccessionNumber = "UNKNOWN"
    ds.ScheduledStepAttributesSequence = [item]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    with transaction(sessions) as s:
        assert mpps.MppsManager().create(s, "9.2", ds).status == mpps.SUCCESS


# ------------------------------------------------------------------ corrections
def test_link_undo_are_audited_and_queue_orthanc_changes(client, auth, sessions):
    _patient(client, auth, mrn="REAL", family="Schröder", given="Anna")
    order = _order(client, auth, mrn="REAL")
    _study(client, auth, pid="TMP1", name="Schroder^Anna", acc="WRONG")
    items = client.get("/api/studies?unmatched=1", headers=auth).json["items"]
    (cand,) = items[0]["candidates"]
    assert cand["accession_number"] == order["accession_number"]
    assert set(cand["reasons"]) == {"family_name", "given_name", "birth_date", "date", "modality", "station_aet"}

    # A name sent in the body is not taken: the correction is the token's.
    r = client.post(
        "/api/studies/1.2.3.4/link",
        json={"accession_number": order["accession_number"], "user": "somebody-else"},
        headers=auth,
    )
    assert r.status_code == 201, r.json
    assert r.json["correction"]["by"] == "api:ORTHANC_RIS_API_TOKEN"
    (task,) = r.json["tasks"]
    assert task["replace"] == {
        "PatientID": "REAL",
        "PatientName": "Schröder^Anna",
        "PatientBirthDate": "19800506",
        "PatientSex": "F",
        "AccessionNumber": order["accession_number"],
    }
    assert client.get(f"/api/orders/{order['accession_number']}", headers=auth).json["status"] == "STARTED"
    assert client.get("/api/studies?unmatched=1", headers=auth).json["items"] == []

    undo = client.post(f"/api/corrections/{r.json['correction']['id']}/undo", headers=auth)
    assert undo.status_code == 201
    assert undo.json["tasks"][0]["replace"] == {
        "PatientID": "TMP1",
        "PatientName": "Schroder^Anna",
        "PatientBirthDate": "19800506",
        "PatientSex": "",
        "AccessionNumber": "WRONG",
    }
    body = client.get(f"/api/orders/{order['accession_number']}", headers=auth).json
    assert body["study"] is None and body["status"] == "SCHEDULED"
    # A late event still carrying the linked accession does not relink the study.
    late = {
        "seq": 5,
        "change": "NewSeries",
        "orthanc_id": "o2",
        "study": {"StudyInstanceUID": "1.2.3.4", "AccessionNumber": order["accession_number"], "CountInstances": 3},
    }
    client.post("/api/internal/study-events", json=late, headers=auth)
    assert client.get(f"/api/orders/{order['accession_number']}", headers=auth).json["study"] is None
    actions = [c["action"] for c in client.get("/api/corrections", headers=auth).json["items"]]
    assert actions == ["unlink", "link"]


def test_link_refuses_a_study_linked_elsewhere(client, auth):
    _patient(client, auth)
    a, b = _order(client, auth), _order(client, auth)
    _study(client, auth, acc=a["accession_number"])
    r = client.post("/api/studies/1.2.3.4/link", json={"accession_number": b["accession_number"]}, headers=auth)
    assert r.status_code == 409


def test_rename_queues_orthanc_changes_for_linked_studies(client, auth, sessions):
    _patient(client, auth)
    order = _order(client, auth)
    _study(client, auth, acc=order["accession_number"], pid="T1")
    r = client.patch("/api/patients/T1", json={"family_name": "Smith"}, headers=auth)
    assert r.status_code == 200
    with sessions() as s:
        (task,) = s.scalars(select(OrthancTask)).all()
        assert task.replace["PatientName"] == "Smith^Jane"
        assert s.scalar(select(StudyCorrection.action)) == "patient_update"


def test_merge_moves_orders_and_refuses_twice(client, auth, sessions):
    _patient(client, auth, mrn="KEEP")
    _patient(client, auth, mrn="DUP")
    order = _order(client, auth, mrn="DUP")
    _study(client, auth, acc=order["accession_number"], pid="DUP")
    r = client.post("/api/patients/KEEP/merge", json={"merged_mrn": "DUP"}, headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["tasks"][0]["replace"]["PatientID"] == "KEEP"
    assert client.get(f"/api/orders/{order['accession_number']}", headers=auth).json["patient"]["mrn"] == "KEEP"
    assert client.post("/api/patients/KEEP/merge", json={"merged_mrn": "DUP"}, headers=auth).status_code == 409
    assert client.post("/api/patients/KEEP/merge", json={"merged_mrn": "KEEP"}, headers=auth).status_code == 400


# ------------------------------------------------------------------ the Orthanc task queue
class StubOrthanc:
    def __init__(self, fail: OrthancError | None = None):
        self.fail = fail
        self.calls = []

    def get(self, path):
        return {}

    def modify_study(self, oid, replace):
        self.calls.append((oid, replace))
        if self.fail:
            raise self.fail
        return "new-" + oid

    def study_answers(self, oid):
        return {
            "study": {
                "ID": oid,
                "MainDicomTags": {"StudyInstanceUID": "1.2.3.4", "AccessionNumber": "X"},
                "PatientMainDicomTags": {"PatientID": "REAL"},
            },
            "statistics": {"CountSeries": 1, "CountInstances": 3},
            "series": [],
            "instance_tags": {},
            "remote_aet": "",
        }

    def find_study(self, suid):
        return None


def test_tasks_retry_in_order_then_apply(client, auth, sessions):
    _patient(client, auth, mrn="REAL")
    order = _order(client, auth, mrn="REAL")
    _study(client, auth)
    r = client.post("/api/studies/1.2.3.4/link", json={"accession_number": order["accession_number"]}, headers=auth)
    client.post(f"/api/corrections/{r.json['correction']['id']}/undo", headers=auth)
    down = StubOrthanc(OrthancError("Orthanc unreachable"))
    assert run_pending_tasks(sessions, down) == 0
    assert len(down.calls) == 1  # the undo waits behind the failed link
    with sessions() as s:
        assert [(t.state, t.attempts) for t in s.scalars(select(OrthancTask).order_by(OrthancTask.id))] == [
            ("pending", 1),
            ("pending", 0),
        ]
    up = StubOrthanc()
    assert run_pending_tasks(sessions, up) == 2
    assert [c[0] for c in up.calls] == ["o1", "new-o1"]  # the undo follows the study's new ID
    with sessions() as s:
        assert s.scalar(select(Study.orthanc_id)) == "new-new-o1"
    refused = StubOrthanc(OrthancError("study gone", retry=False))
    client.post("/api/studies/1.2.3.4/link", json={"accession_number": order["accession_number"]}, headers=auth)
    assert run_pending_tasks(sessions, refused) == 0
    sync = client.get("/api/sync", headers=auth).json
    assert (sync["orthanc_tasks_pending"], sync["orthanc_tasks_failed"]) == (0, 1)  # not retried forever


# ------------------------------------------------------------------ journey, sync, pages
def test_journey_and_sync_summary(client, auth):
    _patient(client, auth)
    order = _order(client, auth)
    acc = order["accession_number"]
    client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth)
    _study(client, auth, acc=acc)
    j = client.get(f"/api/orders/{acc}/journey", headers=auth).json
    at = {m["name"]: m["at"] for m in j["milestones"]}
    assert [m["name"] for m in j["milestones"]] == [
        "ordered",
        "scheduled",
        "arrived",
        "started",
        "images_complete",
        "completed",
        "reported",
        "signed",
    ]
    assert at["ordered"] and at["scheduled"] and at["arrived"] and at["started"]
    assert at["images_complete"] is None and j["instances"] == 3 and j["missing_images"] is False
    assert (
        client.post(
            "/api/internal/feed-status", json={"cursor": 7, "last": 9, "delivered": 3}, headers=auth
        ).status_code
        == 200
    )
    summary = client.get("/api/health").json["sync"]
    assert (summary["feed_cursor"], summary["backlog"]) == (7, 2)  # Orthanc unreachable: last reported
    assert client.post("/api/internal/feed-status", json={"cursor": "x"}, headers=auth).status_code == 400


def test_pages_need_a_login_and_render(app, client, auth):
    from tests.scheduling.test_pages import _login, _post

    for url in ("/inbox", "/sync", "/patients/merge"):
        assert client.get(url).status_code in (302, 401)
    token = _login(app, client, "clerk")
    _patient(client, auth)
    order = _order(client, auth)
    _study(client, auth, pid="TMP", acc="WRONG")
    page = client.get("/inbox")
    assert page.status_code == 200 and order["accession_number"] in page.text
    link = {"study_instance_uid": "1.2.3.4", "accession_number": order["accession_number"]}
    assert client.post("/inbox/link", data=link).status_code == 400  # no CSRF token
    assert _post(client, "/inbox/link", token, link).status_code == 302
    inbox = client.get("/inbox").text
    assert "Undo" in inbox
    # corrections read as labelled fields, old -> new, not a raw Python dict
    corrections = inbox.split('id="corrections"')[1]
    assert "study linked to an order" in corrections and "{'" not in corrections
    acc = order["accession_number"]
    assert f'<span class="label">Accession number</span>: <del>WRONG</del> → <ins>{acc}</ins>' in corrections
    assert client.get("/sync").status_code == 200
    assert "Exam journey" in client.get(f"/orders/{order['accession_number']}/journey").text
    _patient(client, auth, mrn="T2")
    assert _post(client, "/patients/merge", token, {"survivor_mrn": "T1", "merged_mrn": "T2"}).status_code == 302
    assert _post(client, "/patients/merge", token, {"survivor_mrn": "T1", "merged_mrn": "NOPE"}).status_code == 400


def test_coercion_queues_one_correction_for_a_stable_study_that_differs(client, auth, sessions):
    from ris_app.tracking.corrections import coerce_if_needed

    _patient(client, auth)
    order = _order(client, auth)
    _study(client, auth, acc=order["accession_number"], pid="T1", name="Doe^Jnae")
    with transaction(sessions) as s:
        study = s.scalar(select(Study))
        assert coerce_if_needed(s, study) is None  # not stable yet
        apply_study_event(
            s,
            StudyEvent.from_json(
                {
                    "seq": 2,
                    "change": "StableStudy",
                    "orthanc_id": "o1",
                    "study": {
                        "StudyInstanceUID": "1.2.3.4",
                        "AccessionNumber": order["accession_number"],
                        "PatientID": "T1",
                        "PatientName": "Doe^Jnae",
                        "PatientBirthDate": "19800506",
                        "PatientSex": "F",
                        "CountInstances": 3,
                    },
                }
            ),
        )
        task = coerce_if_needed(s, study)
        assert task.replace["PatientName"] == "Doe^Jane"
        assert coerce_if_needed(s, study) is None  # one pending correction is enough


def test_compose_runs_the_tracking_parts_on_the_ris_data():
    from tests.ops.test_docker_compose import compose, environment

    services = compose()["services"]
    for name in ("mpps-scp", "sync-worker"):
        assert services[name]["command"] == ["orthanc-ris", name]
        assert services[name]["image"] == services["ris"]["image"]
        assert environment(services[name])["ORTHANC_RIS_HOME"] == environment(services["ris"])["ORTHANC_RIS_HOME"]
    assert environment(services["sync-worker"])["ORTHANC_RIS_ORTHANC_URL"] == "http://orthanc:8042"


def test_migration_0004_keeps_the_expression_index_of_0002(database_url):
    """0004 adds columns to patient; a batch rebuild on SQLite used to drop this index."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    query = (
        "SELECT name FROM sqlite_master WHERE name = 'ix_patient_family_name_lower'"
        if engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_patient_family_name_lower'"
    )
    with engine.connect() as conn:
        assert conn.execute(text(query)).scalar() == "ix_patient_family_name_lower"
    engine.dispose()


def test_journey_reads_reported_and_signed_from_the_report(client, auth, sessions):
    from datetime import UTC, datetime

    from ris_app.model import Report, ReportVersion

    _patient(client, auth)
    acc = _order(client, auth)["accession_number"]
    _study(client, auth, acc=acc)
    at = {m["name"]: m["at"] for m in client.get(f"/api/orders/{acc}/journey", headers=auth).json["milestones"]}
    assert at["reported"] is None and at["signed"] is None
    with transaction(sessions) as s:
        study = s.scalar(select(Study))
        s.add(
            Report(
                study=study,
                status="FINAL",
                versions=[
                    ReportVersion(
                        version=1,
                        status="FINAL",
                        preliminary_at=datetime(2026, 11, 28, 11, 0, tzinfo=UTC),
                        signed_at=datetime(2026, 11, 28, 11, 30, tzinfo=UTC),
                    )
                ],
            )
        )
    at = {m["name"]: m["at"] for m in client.get(f"/api/orders/{acc}/journey", headers=auth).json["milestones"]}
    assert (at["reported"], at["signed"]) == ("2026-11-28T11:00:00+00:00", "2026-11-28T11:30:00+00:00")


def test_every_view_of_the_unmatched_studies_agrees(app, client, auth):
    """The inbox page, the API, the studies page and the sync count read one query: a
    linked study and a deleted unmatched one are in none of them."""
    import re

    from tests.scheduling.test_pages import _login

    _login(app, client, "clerk")
    _patient(client, auth)
    order = _order(client, auth)
    _study(client, auth, uid="1.2.3.1", oid="o1", acc=order["accession_number"], pid="T1")
    _study(client, auth, uid="1.2.3.2", oid="o2", acc="WRONG")
    _study(client, auth, uid="1.2.3.3", oid="o3", acc="GONE")
    client.post("/api/internal/study-events", json={"seq": 9, "change": "Deleted", "orthanc_id": "o3"}, headers=auth)

    items = client.get("/api/studies?unmatched=1", headers=auth).json["items"]
    assert [s["study_instance_uid"] for s in items] == ["1.2.3.2"]
    assert client.get("/api/sync", headers=auth).json["unmatched_studies"] == 1
    inbox = client.get("/inbox").text
    assert "WRONG" in inbox and "GONE" not in inbox and order["accession_number"] not in inbox
    page = client.get("/studies?unmatched=1").text
    assert re.findall(r'data-accession="([^"]*)"', page) == ["WRONG"]
    assert 'class="hint legend"' in client.get("/studies").text  # shown when some study is unmatched
