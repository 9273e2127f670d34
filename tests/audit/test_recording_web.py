"""The audit trail of the pages and the API, against a real database through Flask's test
client: reads, writes (in the transaction of the change), refusals, logins, and what the
Orthanc plugin relays for a DICOM AE (ris_app/web/audit.py)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.model import AuditEvent, Patient
from ris_app.web import commit, db
from ris_app.web.access import INTEGRATOR, api_roles
from ris_app.web.audit import EVENTS, Audited
from ris_app.web.tokens import create_token
from tests.fixtures.audit import events as trail_rows
from tests.fixtures.audit import holds_no_name, seen
from tests.fixtures.web import PASSWORD, csrf_token, login
from tests.worklist.test_worklist_rules import query

pytestmark = pytest.mark.db

FAMILY, GIVEN = "Zyxwvutson", "Quentinella"  # names no event may hold


def events(app, **where) -> list[AuditEvent]:
    return trail_rows(app.extensions["ris_sessions"], **where)


def _token(app, name: str, role: str) -> dict:
    with transaction(app.extensions["ris_sessions"]) as s:
        return {"Authorization": f"Bearer {create_token(s, name, role)}"}


def _patient_and_order(client, headers, mrn="A100") -> str:
    r = client.post(
        "/api/patients",
        json={"mrn": mrn, "family_name": FAMILY, "given_name": GIVEN, "birth_date": "1980-05-06", "sex": "F"},
        headers=headers,
    )
    assert r.status_code == 201, r.json
    r = client.post(
        "/api/orders",
        json={"mrn": mrn, "procedure_code": "CTHEAD", "station_aet": "CT1", "scheduled_start": "2026-11-28T10:00"},
        headers=headers,
    )
    assert r.status_code == 201, r.json
    return r.json["accession_number"]


def _no_patient_data(app) -> None:
    holds_no_name(events(app), FAMILY, GIVEN, "1980")


def test_a_clerk_on_the_pages_and_an_integrator_on_the_api_both_leave_their_reads(app):
    ehr = _token(app, "ehr-feed", "integrator")
    api = app.test_client()
    accession = _patient_and_order(api, ehr)
    created = events(app, action="patient.create")
    assert [(e.actor, e.actor_kind, e.patient_mrn, e.outcome) for e in created] == [
        ("ehr-feed", "token", "A100", "success")
    ]
    (order_created,) = events(app, action="order.create")
    assert (order_created.patient_mrn, order_created.accession) == ("A100", accession)

    pages = app.test_client()
    login(app, pages, "clerk", "clara")
    assert pages.get(f"/orders/{accession}").status_code == 200
    assert api.get("/api/patients/A100", headers=ehr).status_code == 200

    (page_read,) = events(app, action="order.read")
    assert seen(page_read) == ("order.read", "clara", "user", "A100", accession, "success")
    assert page_read.address == "127.0.0.1" and page_read.resource == "/orders/<accession>"
    (api_read,) = events(app, action="patient.read")
    assert (api_read.actor, api_read.actor_kind, api_read.patient_mrn) == ("ehr-feed", "token", "A100")
    assert {e.actor for e in events(app, patient_mrn="A100")} >= {"clara", "ehr-feed"}
    _no_patient_data(app)


def test_every_audited_route_exists_and_names_a_dotted_action(app):
    endpoints = {(r.endpoint, m) for r in app.url_map.iter_rules() for m in r.methods}
    for (endpoint, method), audited in EVENTS.items():
        assert (endpoint, method) in endpoints, endpoint
        if isinstance(audited.action, str):
            assert audited.action.count(".") == 1 and audited.action == audited.action.lower()


def test_writes_through_the_pages_name_the_user_and_the_order(app):
    ehr = _token(app, "ehr-feed", "integrator")
    client = app.test_client()
    accession = _patient_and_order(client, ehr)
    csrf = login(app, client, "technologist", "tom")
    r = client.post(f"/orders/{accession}/status", data={"action": "arrive", "csrf_token": csrf})
    assert r.status_code == 302
    (moved,) = events(app, action="step.move")
    assert seen(moved) == ("step.move", "tom", "user", "A100", accession, "success")
    # A move the workflow refuses changes nothing: a failed event, and no second success.
    r = client.post(f"/orders/{accession}/status", data={"action": "arrive", "csrf_token": csrf})
    assert r.status_code == 302
    assert [e.outcome for e in events(app, action="step.move")] == ["success", "failed"]


def test_refusals_are_events(app):
    ehr = _token(app, "ehr-feed", "integrator")
    client = app.test_client()
    _patient_and_order(client, ehr)
    assert client.get("/api/patients/A100").status_code == 401
    assert client.get("/api/patients/A100", headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
    assert client.get("/api/analytics/turnaround", headers=ehr).status_code == 403  # admin only, not in EVENTS
    refused = [e for e in events(app) if e.outcome == "refused"]
    assert [(e.action, e.actor, e.actor_kind, e.patient_mrn) for e in refused] == [
        ("patient.read", "(anonymous)", "user", "A100"),
        ("patient.read", "(unknown token)", "token", "A100"),
        ("access.refused", "ehr-feed", "token", ""),
    ]
    pages = app.test_client()
    login(app, pages, "clerk", "clara")
    assert pages.get("/reading").status_code == 403  # the radiologists' worklist
    last = events(app)[-1]
    assert (last.action, last.actor, last.outcome, last.resource) == ("worklist.read", "clara", "refused", "/reading")


def test_logins_failed_logins_and_logouts(app):
    client = app.test_client()
    csrf = login(app, client, "clerk", "clara")
    client.post("/logout", data={"csrf_token": csrf})
    other = app.test_client()
    r = other.post("/login", data={"username": "clara", "password": "wrong one", "csrf_token": csrf_token(other)})
    assert r.status_code == 401
    rows = [(e.action, e.actor, e.outcome) for e in events(app) if e.action.startswith(("login", "logout"))]
    assert rows == [("login", "clara", "success"), ("logout", "clara", "success"), ("login.failed", "clara", "refused")]
    assert PASSWORD not in " ".join(e.detail for e in events(app))


def test_a_write_rolled_back_leaves_no_success_event(app):
    """The event rides in the transaction of the change: a commit the database refuses
    takes the event with it; the refusal is then recorded as failed."""

    @api_roles(*INTEGRATOR)
    def twice():
        db().add_all([Patient(mrn="DUP", family_name="X"), Patient(mrn="DUP", family_name="Y")])
        commit()
        return "unreachable"

    app_: Flask = app
    app_.add_url_rule("/api/test-twice", "test_twice", twice, methods=["POST"])
    EVENTS[("test_twice", "POST")] = Audited("patient.create")
    try:
        ehr = _token(app, "ehr-feed", "integrator")
        assert app.test_client().post("/api/test-twice", headers=ehr).status_code == 409
    finally:
        del EVENTS[("test_twice", "POST")]
    assert [(e.action, e.outcome) for e in events(app)] == [("patient.create", "failed")]
    with app.extensions["ris_sessions"]() as s:
        assert s.scalars(select(Patient).where(Patient.mrn == "DUP")).first() is None


def test_the_plugin_relays_the_dicom_ae(app):
    plugin = _token(app, "orthanc", "plugin")
    ehr = _token(app, "ehr-feed", "integrator")
    client = app.test_client()
    accession = _patient_and_order(client, ehr)
    r = client.post(
        "/api/internal/worklist/find",
        data=query(),
        headers={**plugin, "X-Calling-AET": "CT1", "X-Called-AET": "RIS"},
    )
    assert r.status_code == 200
    (q,) = events(app, action="worklist.query")
    assert (q.actor, q.actor_kind, q.detail) == ("CT1", "ae", "relayed by token orthanc")
    study = {
        "StudyInstanceUID": "1.2.826.0.1.3680043.99.1",
        "AccessionNumber": accession,
        "PatientID": "A100",
        "PatientName": f"{FAMILY}^{GIVEN}",
        "RemoteAET": "CT1",
        "CountSeries": 1,
        "CountInstances": 2,
    }
    ev = {"seq": 1, "change": "NewStudy", "orthanc_id": "o-1", "study": study}
    assert client.post("/api/internal/study-events", json=ev, headers=plugin).status_code == 200
    (received,) = events(app, action="images.receive")
    assert seen(received) == ("images.receive", "CT1", "ae", "A100", accession, "success")
    # The same event again changes nothing: no second event.
    assert client.post("/api/internal/study-events", json=ev, headers=plugin).status_code == 200
    assert len(events(app, action="images.receive")) == 1
    _no_patient_data(app)


def test_corrections_name_the_patient_and_order(app):
    ehr = _token(app, "ehr-feed", "integrator")
    client = app.test_client()
    accession = _patient_and_order(client, ehr)
    _patient_and_order(client, ehr, mrn="A200")
    uid = "1.2.826.0.1.3680043.99.2"
    ev = {"seq": 1, "change": "NewStudy", "orthanc_id": "o-2", "study": {"StudyInstanceUID": uid, "PatientID": "TMP"}}
    assert client.post("/api/internal/study-events", json=ev, headers=ehr).status_code == 403  # plugin only
    plugin = _token(app, "orthanc", "plugin")
    assert client.post("/api/internal/study-events", json=ev, headers=plugin).status_code == 200
    r = client.post(f"/api/studies/{uid}/link", json={"accession_number": accession, "user": "someone"}, headers=ehr)
    assert r.status_code == 201
    (linked,) = events(app, action="study.link")
    assert seen(linked)[1:5] == ("ehr-feed", "token", "A100", accession)  # the token, not the name it sent
    assert client.post("/api/patients/A100/merge", json={"merged_mrn": "A200"}, headers=ehr).status_code == 201
    (merged,) = events(app, action="patient.merge")
    assert (merged.patient_mrn, merged.detail) == ("A100", "merged MRN A200 into this one")
    pages = app.test_client()
    csrf = login(app, pages, "admin", "clara")
    r = pages.post("/patients/merge", data={"survivor_mrn": "A100", "merged_mrn": "NOBODY", "csrf_token": csrf})
    assert r.status_code == 400
    failed = events(app, action="patient.merge")[-1]
    assert (failed.actor, failed.patient_mrn, failed.outcome) == ("clara", "A100", "failed")


def test_only_the_plugin_may_name_the_ae(app):
    ehr = _token(app, "ehr-feed", "integrator")
    r = app.test_client().post(
        "/api/internal/worklist/find", data=query(), headers={**ehr, "X-Calling-AET": "CT1", "X-Called-AET": "RIS"}
    )
    assert r.status_code == 403
    (refused,) = events(app, action="worklist.query")
    assert (refused.actor, refused.actor_kind, refused.outcome) == ("ehr-feed", "token", "refused")


def test_every_new_app_in_one_process_is_watched():
    """A sessionmaker born where a collected one lived is still watched: SQLAlchemy's
    event.contains() keys by id(), which once made some apps of a test run (and CI) record
    no event for a write whose rows an earlier query had flushed."""
    import gc

    from sqlalchemy.orm import sessionmaker

    from ris_app.audit import subject

    for n in range(300):
        sessions = sessionmaker()
        subject.watch(sessions)
        subject.watch(sessions)  # twice: still one listener
        with sessions() as s:
            assert list(s.dispatch.before_flush).count(subject._note_flushed) == 1, f"app {n}"
        del sessions, s
        if n % 5 == 0:
            gc.collect()
