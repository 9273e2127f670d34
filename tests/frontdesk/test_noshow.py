"""No-show: the desk's button and the sync worker's sweep of missed appointments, on a
real database, with the worklist, the HL7 outbox and the reminders following."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from ris_app.clock import site_today, to_site
from ris_app.db import transaction
from ris_app.frontdesk.noshow import ACTOR, mark_no_shows
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.settings import Hl7Settings
from ris_app.model import Hl7Outbox, Order, Reminder, RequestedProcedure, StepStatusChange
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.worklist.query import find
from tests.fixtures.audit import events as trail_rows
from tests.fixtures.web import login
from tests.frontdesk.conftest import ADMIN, place, slots
from tests.worklist.test_worklist_rules import query

pytestmark = pytest.mark.db


@pytest.fixture
def ehr():
    set_settings(Hl7Settings.from_env({"ORTHANC_RIS_HL7_DESTINATIONS": "EHR=127.0.0.1:1"}))
    yield
    set_settings(None)


def _tomorrow(at: str) -> str:
    return f"{site_today() + timedelta(days=1)}T{at}"


def _step(app, accession: str) -> SPS:
    with app.extensions["ris_sessions"]() as s:
        return s.scalars(
            select(SPS)
            .join(SPS.requested_procedure)
            .join(RequestedProcedure.order)
            .where(Order.accession_number == accession)
        ).one()


def _end(app, accession: str) -> datetime:
    return _step(app, accession).end_datetime


def test_the_sweep_marks_a_missed_appointment_the_way_the_desk_would(app, client, ehr):
    sessions = app.extensions["ris_sessions"]
    assert client.patch("/api/patients/FD1", json={"email": "fran@example.org"}, headers=ADMIN).status_code == 200
    missed = place(client, _tomorrow("08:00")).json["accession_number"]
    came = place(client, _tomorrow("08:15")).json["accession_number"]
    unbooked_room = place(client, _tomorrow("08:00"), aet="CT2").json["accession_number"]  # CT2 has no hours
    assert client.post(f"/api/orders/{came}/status", json={"action": "ARRIVE"}, headers=ADMIN).status_code == 200
    end = _end(app, missed)
    assert to_site(end).strftime("%H:%M") == "08:15"  # CTHEAD takes 15 minutes

    # Within the grace period nothing happens; after it, only the missed one.
    assert mark_no_shows(sessions, 30, now=end + timedelta(minutes=29)) == 0
    assert mark_no_shows(sessions, 30, now=end + timedelta(minutes=60)) == 1
    assert mark_no_shows(sessions, 30, now=end + timedelta(minutes=60)) == 0  # idempotent
    step = _step(app, missed)
    assert (step.status, step.changed_by) == ("NO_SHOW", ACTOR)
    assert _step(app, came).status == "ARRIVED"
    assert _step(app, unbooked_room).status == "SCHEDULED"
    with sessions() as s:
        history = s.scalars(select(StepStatusChange).where(StepStatusChange.step_id == step.id)).all()
        assert [(h.to_status, h.source) for h in history][-1] == ("NO_SHOW", "no-show")
        answered = find(
            s, query(AccessionNumber=missed), default_statuses=app.config["RIS"].worklist_statuses, limit=10
        )
        assert answered.items == []
        # The EHR hears it: an order status message with ORC-5 CA.
        out = s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == missed)).all()
        assert out and "|CA|" in out[-1].payload.split("\rORC|")[1]
        # The reminders still pending are dropped; nothing new is queued for the patient.
        states = {(r.kind, r.state) for r in s.scalars(select(Reminder).where(Reminder.step_id == step.id))}
        assert ("reminder", "pending") not in states and ("reminder", "dropped") in states
        assert not any(kind in ("canceled", "rescheduled") for kind, _ in states)
    (event,) = trail_rows(sessions, action="step.move", accession=missed)
    assert (event.actor, event.actor_kind, event.patient_mrn) == (ACTOR, "system", "FD1")
    # The slot is free again.
    tomorrow = str(site_today() + timedelta(days=1))
    assert _tomorrow("08:00") in {start[:16] for start, _, _ in slots(client, tomorrow)}


def test_zero_grace_marks_at_the_end_of_the_slot_and_a_moved_step_waits(app, client):
    sessions = app.extensions["ris_sessions"]
    accession = place(client, _tomorrow("09:00")).json["accession_number"]
    end = _end(app, accession)
    assert mark_no_shows(sessions, 0, now=end - timedelta(seconds=1)) == 0
    r = client.post(f"/api/orders/{accession}/reschedule", json={"scheduled_start": _tomorrow("09:30")}, headers=ADMIN)
    assert r.status_code == 200, r.json
    assert mark_no_shows(sessions, 0, now=end + timedelta(minutes=1)) == 0  # its new slot has not ended
    assert mark_no_shows(sessions, 0, now=end + timedelta(minutes=31)) == 1


def test_the_desk_marks_a_no_show_and_only_from_scheduled(app, client):
    accession = place(client, _tomorrow("08:30")).json["accession_number"]
    page = app.test_client()
    token = login(app, page, "clerk")
    back = f"/orders/{accession}"
    assert "No-show" in page.get(back).get_data(as_text=True)
    r = page.post(f"/orders/{accession}/status", data={"action": "no_show", "csrf_token": token, "next": back})
    assert r.status_code == 302
    assert _step(app, accession).status == "NO_SHOW"
    assert "is now no_show" in page.get(back).get_data(as_text=True)
    # A final state: nothing moves it any more, and the API says so.
    r = client.post(f"/api/orders/{accession}/status", json={"action": "ARRIVE"}, headers=ADMIN)
    assert r.status_code == 409 and r.json["error"]["code"] == "illegal_transition"
    # A radiologist has no such button.
    other = place(client, _tomorrow("09:00")).json["accession_number"]
    radiologist = app.test_client()
    token = login(app, radiologist, "radiologist")
    r = radiologist.post(f"/orders/{other}/status", data={"action": "no_show", "csrf_token": token})
    assert r.status_code == 403


def test_a_step_of_several_stations_books_its_first(app, client):
    sessions = app.extensions["ris_sessions"]
    accession = place(client, _tomorrow("08:00"), aet="CT1\\CT2").json["accession_number"]
    with transaction(sessions) as s:
        assert s.get(SPS, _step(app, accession).id).station_aet == "CT1\\CT2"
    assert mark_no_shows(sessions, 30, now=_end(app, accession) + timedelta(hours=1)) == 1
