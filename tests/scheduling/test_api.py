"""REST API against a real database (SQLite here, PostgreSQL in .ci/run's second pass)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ris_app.model import Order, Patient, ScheduledProcedureStep, StepStatusChange

pytestmark = pytest.mark.db

PATIENT = {"mrn": "M1", "family_name": "Doe", "given_name": "Jane", "birth_date": "1980-05-06", "sex": "F"}


def _count(app, model) -> int:
    with app.extensions["ris_sessions"]() as s:
        return s.scalar(select(func.count()).select_from(model))


def _patient(client, auth, **over):
    r = client.post("/api/patients", json={**PATIENT, **over}, headers=auth)
    assert r.status_code == 201, r.json
    return r.json


def _order(client, auth, **over):
    body = {
        "mrn": "M1",
        "procedure_code": "CTHEAD",
        "modality": "CT",
        "station_aet": "CT1",
        "scheduled_start": "2026-11-28T10:15:00",
    }
    body.update(over)
    return client.post("/api/orders", json=body, headers=auth)


def test_health_needs_no_token(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json["database"] == "ok"
    assert r.json["orthanc"] == "unreachable"


def test_register_and_read_patient_in_any_script(client, auth):
    _patient(client, auth, mrn="CJK1", family_name="山田", given_name="太郎")
    r = client.get("/api/patients/CJK1", headers=auth)
    assert r.status_code == 200
    assert (r.json["family_name"], r.json["given_name"]) == ("山田", "太郎")


def test_place_order_generates_accession_and_uid(client, auth):
    _patient(client, auth)
    r = _order(client, auth)
    assert r.status_code == 201, r.json
    body = r.json
    assert body["accession_number"].startswith("RIS") and len(body["accession_number"]) <= 16
    assert body["study_instance_uid"].startswith("2.25.")
    assert body["status"] == "SCHEDULED"
    again = client.get(f"/api/orders/{body['accession_number']}", headers=auth).json
    assert again["scheduled_procedure_step"]["station_aet"] == ["CT1"]
    assert again["study"] is None
    second = _order(client, auth).json
    assert second["accession_number"] != body["accession_number"]


def test_order_keeps_given_identifiers_and_several_aets(client, auth):
    _patient(client, auth)
    r = _order(client, auth, accession_number="ACC-7", study_instance_uid="1.2.3.4.5", station_aet=["CT1", "CT2"])
    assert r.status_code == 201, r.json
    assert r.json["accession_number"] == "ACC-7"
    assert r.json["study_instance_uid"] == "1.2.3.4.5"
    assert r.json["scheduled_procedure_step"]["station_aet"] == ["CT1", "CT2"]
    dup = _order(client, auth, accession_number="ACC-7")
    assert dup.status_code == 409 and dup.json["error"]["field"] == "accession_number"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"mrn": ""}, "mrn"),
        ({"family_name": None}, "family_name"),
        ({"birth_date": "06/05/1980"}, "birth_date"),
        ({"birth_date": "1980-02-30"}, "birth_date"),
        ({"sex": "X"}, "sex"),
        ({"family_name": "A^B"}, "family_name"),
        ({"family_name": "x" * 65}, "family_name"),
        ({"given_name": 12}, "given_name"),
    ],
)
def test_bad_patient_input_names_the_field(client, auth, app, body, field):
    r = client.post("/api/patients", json={**PATIENT, **body}, headers=auth)
    assert r.status_code == 400
    assert r.json["error"]["field"] == field
    assert r.json["error"]["message"]
    assert _count(app, Patient) == 0


@pytest.mark.parametrize(
    "over, field",
    [
        ({"mrn": "NOPE"}, "mrn"),
        ({"procedure_code": "NOPE"}, "procedure_code"),
        ({"scheduled_start": "tomorrow"}, "scheduled_start"),
        ({"scheduled_start": None}, "scheduled_start"),
        ({"station_aet": "THIS-AET-IS-FAR-TOO-LONG"}, "station_aet"),
        ({"priority": "WHENEVER"}, "priority"),
        ({"study_instance_uid": "not-a-uid"}, "study_instance_uid"),
        ({"modality": "C T"}, "modality"),
    ],
)
def test_bad_order_input_names_the_field_and_writes_nothing(client, auth, app, over, field):
    _patient(client, auth)
    r = _order(client, auth, **over)
    assert r.status_code == 400, r.json
    assert r.json["error"]["field"] == field
    assert _count(app, Order) == 0
    assert _count(app, ScheduledProcedureStep) == 0


@pytest.mark.parametrize("payload", [b"{not json", b"[1,2]", b"", b"null"])
def test_malformed_json_is_refused(client, auth, payload):
    r = client.post("/api/patients", data=payload, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json["error"]["field"] == "body"


@pytest.mark.parametrize(
    "method, url",
    [
        ("post", "/api/patients"),
        ("get", "/api/patients/M1"),
        ("post", "/api/orders"),
        ("get", "/api/orders/X"),
        ("post", "/api/orders/X/status"),
        ("get", "/api/worklist"),
        ("get", "/api/studies"),
        ("post", "/api/internal/study-events"),
        ("post", "/api/internal/worklist/find"),
    ],
)
def test_every_endpoint_but_health_needs_the_token(client, method, url):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        r = getattr(client, method)(url, json={}, headers=headers)
        assert r.status_code == 401, (url, headers)
        assert r.json["error"]["code"] == "unauthorized"


def test_status_moves_follow_the_table(client, auth, app):
    _patient(client, auth)
    acc = _order(client, auth).json["accession_number"]

    def move(action):
        return client.post(f"/api/orders/{acc}/status", json={"action": action}, headers=auth)

    assert move("complete").status_code == 409  # cannot complete what has not started
    assert move("arrive").json["status"] == "ARRIVED"
    assert move("start").json["status"] == "STARTED"
    r = move("cancel")
    assert r.status_code == 409 and r.json["error"]["code"] == "illegal_transition"
    done = move("complete").json
    assert done["status"] == "COMPLETED"
    assert [h["to"] for h in done["scheduled_procedure_step"]["history"]] == [
        "SCHEDULED",
        "ARRIVED",
        "STARTED",
        "COMPLETED",
    ]
    assert move("start").status_code == 409
    assert move("fly").status_code == 400
    assert client.post("/api/orders/NOPE/status", json={"action": "arrive"}, headers=auth).status_code == 404
    assert _count(app, StepStatusChange) == 4


def test_unknown_accession_is_404(client, auth):
    r = client.get("/api/orders/UNKNOWN", headers=auth)
    assert r.status_code == 404 and r.json["error"]["field"] == "accession_number"


def test_worklist_lists_a_days_steps(client, auth):
    _patient(client, auth)
    _order(client, auth, scheduled_start="2026-11-28T08:00", station_aet="CT1")
    _order(client, auth, scheduled_start="2026-11-28T09:00", station_aet="MR1", procedure_code="MRBRAIN", modality="MR")
    _order(client, auth, scheduled_start="2026-11-29T09:00")
    items = client.get("/api/worklist?date=2026-11-28", headers=auth).json["items"]
    assert [i["modality"] for i in items] == ["CT", "MR"]
    assert client.get("/api/worklist?date=2026-11-28&modality=MR", headers=auth).json["items"][0]["station_aet"] == [
        "MR1"
    ]
    assert client.get("/api/worklist?date=bad", headers=auth).status_code == 400
    assert client.get("/api/worklist?date=2026-11-28&status=NOPE", headers=auth).status_code == 400


def test_study_events_are_idempotent_and_link_once(client, auth, app):
    from ris_app.model import Study

    _patient(client, auth)
    acc = _order(client, auth).json["accession_number"]
    event = {
        "seq": 5,
        "change": "NewStudy",
        "orthanc_id": "o-1",
        "study": {
            "StudyInstanceUID": "1.2.9",
            "AccessionNumber": acc,
            "PatientID": "M1",
            "Modalities": ["CT"],
            "CountSeries": 1,
            "CountInstances": 3,
        },
    }
    for _ in range(3):
        assert client.post("/api/internal/study-events", json=event, headers=auth).json["linked"] is True
    # an older event arriving late does not roll the counts back
    stale = {**event, "seq": 2, "study": {**event["study"], "CountInstances": 1}}
    client.post("/api/internal/study-events", json=stale, headers=auth)
    order = client.get(f"/api/orders/{acc}", headers=auth).json
    assert order["study"]["instances"] == 3
    assert order["status"] == "STARTED"
    assert _count(app, Study) == 1
    # deletion in Orthanc hides it from the list
    client.post("/api/internal/study-events", json={"seq": 9, "change": "Deleted", "orthanc_id": "o-1"}, headers=auth)
    assert client.get("/api/studies", headers=auth).json["items"] == []


@pytest.mark.parametrize(
    "event, field",
    [
        ({"change": "NewStudy", "orthanc_id": "x"}, "study.StudyInstanceUID"),
        ({"change": "Bogus", "orthanc_id": "x"}, "change"),
        ({"change": "NewStudy"}, "orthanc_id"),
        ({"change": "NewStudy", "orthanc_id": "x", "seq": "a"}, "seq"),
        (
            {"change": "NewStudy", "orthanc_id": "x", "study": {"StudyInstanceUID": "1", "CountInstances": "many"}},
            "study.CountInstances",
        ),
    ],
)
def test_malformed_study_events_are_refused(client, auth, event, field):
    r = client.post("/api/internal/study-events", json=event, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == field


def test_worklist_find_refuses_garbage(client, auth):
    r = client.post("/api/internal/worklist/find", data=b"\x00garbage", headers=auth)
    assert r.status_code == 400


def test_patient_update_rebuilds_worklist_items(client, auth, app):
    import io

    import pydicom

    _patient(client, auth)
    _order(client, auth)
    r = client.patch("/api/patients/M1", json={"family_name": "Smith"}, headers=auth)
    assert r.status_code == 200 and r.json["family_name"] == "Smith"
    with app.extensions["ris_sessions"]() as s:
        item = s.scalars(select(ScheduledProcedureStep)).one().worklist_item
    assert str(pydicom.dcmread(io.BytesIO(item)).PatientName) == "Smith^Jane"
