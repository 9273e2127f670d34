"""Booking without clashes: one rule for the API, HL7, the worklist import and moves.
Real database (SQLite here, PostgreSQL in the second pass), real threads for the race."""

from __future__ import annotations

import io
import threading

import pydicom
import pytest
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.store import InboundProcessor
from ris_app.model import Order, RequestedProcedure
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.web.tokens import create_token
from ris_app.worklist.importer import import_bytes
from tests.fixtures import hl7_messages as H
from tests.frontdesk.conftest import ADMIN, EVERY_DAY_8_TO_10, place, slots
from tests.worklist.test_worklist_import import item, part10

pytestmark = pytest.mark.db
MONDAY = "2027-01-04"


def _step_in(s, accession: str) -> SPS:
    stmt = select(SPS).join(RequestedProcedure).join(Order).where(Order.accession_number == accession)
    return s.scalars(stmt).one()


def _step(app, accession: str) -> SPS:
    with app.extensions["ris_sessions"]() as s:
        return _step_in(s, accession)


def test_placing_on_taken_time_is_a_409_naming_the_clash(client):
    first = place(client, f"{MONDAY}T08:30")
    assert first.status_code == 201, first.json
    step = first.json["scheduled_procedure_step"]
    assert step["scheduled_end"] == "2027-01-04T08:45:00+01:00" and step["booking_flag"] == ""
    r = place(client, f"{MONDAY}T08:40", code="CTCHEST")
    assert r.status_code == 409, r.json
    err = r.json["error"]
    assert err["code"] == "slot_taken" and err["field"] == "scheduled_start"
    accession = first.json["accession_number"]
    assert err["message"] == f"CT1 is booked 2027-01-04 08:30-08:45 by order {accession}"
    # Back to back is no clash; neither is another station, nor one without opening hours.
    assert place(client, f"{MONDAY}T08:45").status_code == 201
    assert place(client, f"{MONDAY}T08:15").status_code == 201
    assert place(client, f"{MONDAY}T08:30", aet="CT2").status_code == 201
    assert place(client, f"{MONDAY}T08:30", aet="CT2").status_code == 201


def test_blocked_time_is_a_clash_and_out_of_hours_is_not(client):
    client.post(
        "/api/stations/CT1/blocks",
        json={"start": f"{MONDAY}T09:00", "end": f"{MONDAY}T10:00", "kind": "maintenance", "reason": "new tube"},
        headers=ADMIN,
    )
    r = place(client, f"{MONDAY}T09:10")
    assert r.status_code == 409
    assert r.json["error"]["message"] == "CT1 is closed 2027-01-04 09:00-10:00 (maintenance: new tube)"
    stat = place(client, f"{MONDAY}T03:00", priority="STAT")  # the STAT CT at 3 am
    assert stat.status_code == 201, stat.json


def test_an_overbook_is_for_allowed_roles_and_recorded(client, integrator):
    taken = place(client, f"{MONDAY}T08:30").json["accession_number"]
    r = place(client, f"{MONDAY}T08:30", headers=integrator, overbook=True)
    assert r.status_code == 403 and r.json["error"]["field"] == "overbook"
    assert place(client, f"{MONDAY}T08:30", headers=integrator).status_code == 409
    r = place(client, f"{MONDAY}T08:30", overbook=True)
    assert r.status_code == 201, r.json
    step = r.json["scheduled_procedure_step"]
    assert (step["booking_flag"], step["booking_clash_with"]) == ("overbook", taken)
    assert step["changed_by"].startswith("api:")


def test_reschedule_moves_the_step_and_its_worklist_item(app, client):
    a = place(client, f"{MONDAY}T08:00").json
    b = place(client, f"{MONDAY}T09:00").json["accession_number"]
    url = f"/api/orders/{a['accession_number']}/reschedule"
    r = client.post(url, json={"scheduled_start": f"{MONDAY}T09:05"}, headers=ADMIN)
    assert r.status_code == 409 and b in r.json["error"]["message"]
    r = client.post(url, json={"scheduled_start": f"{MONDAY}T09:30", "version": 99}, headers=ADMIN)
    assert r.status_code == 409 and r.json["error"]["code"] == "stale_version"
    r = client.post(url, json={"scheduled_start": f"{MONDAY}T09:30"}, headers=ADMIN)
    assert r.status_code == 200, r.json
    assert r.json["scheduled_procedure_step"]["scheduled_start"] == "2027-01-04T09:30:00+01:00"
    assert "08:00" in [s[0][11:16] for s in slots(client, MONDAY, station_aet="CT1")]
    with app.extensions["ris_sessions"]() as s:
        step = _step_in(s, a["accession_number"])
        sps = pydicom.dcmread(io.BytesIO(step.worklist_item)).ScheduledProcedureStepSequence[0]
    # The worklist item was rebuilt (step_changed): the scanner sees the new site time.
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime[:4]) == ("20270104", "0930")
    # Onto another station (no hours there: anything goes) and back is refused once started.
    r = client.post(url, json={"scheduled_start": f"{MONDAY}T09:00", "station_aet": "CT2"}, headers=ADMIN)
    assert r.status_code == 200 and r.json["scheduled_procedure_step"]["station_aet"] == ["CT2"]
    client.post(f"/api/orders/{a['accession_number']}/status", json={"action": "start"}, headers=ADMIN)
    r = client.post(url, json={"scheduled_start": f"{MONDAY}T08:00"}, headers=ADMIN)
    assert r.status_code == 409 and r.json["error"]["code"] == "illegal_transition"


def test_an_hl7_order_that_clashes_is_accepted_and_flagged_never_doubled_silently(app, client):
    taken = place(client, f"{MONDAY}T08:30").json["accession_number"]
    processor = InboundProcessor(app.extensions["ris_sessions"], Hl7Settings(), app.config["RIS"])
    outcome = processor.receive(
        H.build(H.ORM_O01_NW, mrn="FD-HL7", acc="HL7CLASH1", station="CT1", start="20270104083500")
    )
    assert outcome.ack_code == "AA", outcome.text
    step = _step(app, "HL7CLASH1")
    assert (step.booking_flag, step.booking_clash_with) == ("clash", taken)
    # The AA says so: in MSA-3 and as a warning ERR (2.3.1: ERR-1 names the start field, code 0).
    assert f"time clashes with order {taken}: flagged for the desk" in outcome.text
    [err] = [seg for seg in outcome.ack.decode().split("\r") if seg.startswith("ERR")]
    assert err.startswith("ERR|") and "0&Message accepted&HL70357" in err, err
    outcome = processor.receive(
        H.build(H.ORM_O01_NW, mrn="FD-HL7", acc="HL7FREE1", station="CT1", start="20270104091500")
    )
    assert outcome.ack_code == "AA", outcome.text
    assert _step(app, "HL7FREE1").booking_flag == ""
    assert b"ERR" not in outcome.ack  # nothing to look at: no warning


def test_import_keeps_overlapping_items_at_their_time_and_flags_them(app, client):
    client.put("/api/stations/MR1/hours", json={"hours": EVERY_DAY_8_TO_10}, headers=ADMIN)
    one = item(AccessionNumber="IMPA", sps_id="IMPSA", StudyInstanceUID="1.2.9.1", aet="MR1")
    two = item(AccessionNumber="IMPB", sps_id="IMPSB", StudyInstanceUID="1.2.9.2", aet="MR1", PatientID="IMP-P2")
    with app.extensions["ris_sessions"]() as s:
        for n, ds in enumerate((one, two)):
            outcome = import_bytes(s, part10(ds), f"item{n}.wl")
            assert outcome.ok, outcome.error
            s.commit()
    a, b = _step(app, "IMPA"), _step(app, "IMPB")
    assert a.start_datetime == b.start_datetime
    assert (a.booking_flag, b.booking_flag, b.booking_clash_with) == ("", "clash", "IMPA")


@pytest.mark.parametrize("attempt", range(3))
def test_two_clerks_booking_one_slot_at_once_one_wins_one_gets_409(app, client, attempt):
    start = f"{MONDAY}T0{8 + attempt % 2}:{15 * attempt:02d}"
    clerks = 4
    barrier = threading.Barrier(clerks)
    answers: list[int] = []
    # Each clerk's own token, used for the first time: its touch (last_used_at) commits
    # before the booking, which must still run as a writer (a 500 "database is locked" on
    # SQLite before the fix).
    with transaction(app.extensions["ris_sessions"]) as s:
        tokens = [create_token(s, f"clerk-{attempt}-{n}", "integrator") for n in range(clerks)]

    def clerk(secret: str) -> None:
        c = app.test_client()
        barrier.wait()
        answers.append(place(c, start, headers={"Authorization": f"Bearer {secret}"}).status_code)

    threads = [threading.Thread(target=clerk, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == [201] + [409] * (clerks - 1)


def test_the_order_page_names_the_clash_on_the_time_field(app, client):
    from tests.fixtures.web import login
    from tests.scheduling.test_pages import ORDER, _error_of, _post

    taken = place(client, f"{MONDAY}T08:30").json["accession_number"]
    pages = app.test_client()
    token = login(app, pages, "clerk")
    form = {**ORDER, "mrn": "FD1", "station_aet": "CT1", "scheduled_date": MONDAY, "scheduled_time": "08:40"}
    r = _post(pages, "/orders/new", token, form)
    assert r.status_code == 400
    assert (
        _error_of(r.get_data(as_text=True), "scheduled_time")
        == f"Time CT1 is booked 2027-01-04 08:30-08:45 by order {taken}"  # the form names the field first
    )
    assert _post(pages, "/orders/new", token, {**form, "scheduled_time": "08:45"}).status_code == 302
