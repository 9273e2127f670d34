"""The setup pages (admins) and the front desk's view of a booking: every form through
Flask's client with its CSRF token, good input saved through the same domain functions
as the API (read back through the API), bad input shown as field errors and nothing
saved, each change in the audit trail. Real database (SQLite; PostgreSQL second pass)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from ris_app.clock import from_site, site_today
from ris_app.db import transaction
from ris_app.frontdesk.booking import ClashPolicy
from ris_app.model import AuditEvent, Patient, ProcedureCode
from ris_app.scheduling.orders import OrderData, create_order
from tests.fixtures.web import login
from tests.frontdesk.conftest import ADMIN, place

pytestmark = pytest.mark.db
DAY = (site_today() + timedelta(days=7)).isoformat()  # CT1 is open 08:00-10:00 every day


def _html(r) -> str:
    return r.get_data(as_text=True)


def _field_error(r, name: str) -> str:
    m = re.search(rf'<p class="field-error" id="e-{re.escape(name)}">([^<]*)</p>', _html(r))
    assert m, f"no error shown for {name}"
    return m.group(1)


def _events(app, action: str, **where) -> list[AuditEvent]:
    """The trail's `action` events written by the pages (the fixtures' API calls left out)."""
    with app.extensions["ris_sessions"]() as s:
        stmt = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor_kind == "user")
        stmt = stmt.filter_by(**where)
        return list(s.scalars(stmt.order_by(AuditEvent.id)))


@pytest.fixture
def admin(app, client):
    return login(app, client, "admin", "ada")


def test_station_details_are_saved_and_bad_ones_shown_on_their_fields(app, client, admin):
    r = client.get("/setup/stations")
    assert r.status_code == 200 and "/setup/stations/CT1" in _html(r) and "none: no booking rules" in _html(r)
    r = client.post(
        "/setup/stations/CT2", data={"csrf_token": admin, "name": "CT 2", "location": "Room 4", "modality": "ct"}
    )
    assert r.status_code == 302
    (st,) = [s for s in client.get("/api/stations", headers=ADMIN).json["items"] if s["aet"] == "CT2"]
    assert (st["name"], st["location"], st["modality"]) == ("CT 2", "Room 4", "CT")
    r = client.post(
        "/setup/stations/CT2",
        data={"csrf_token": admin, "name": "A name far too long", "location": "Room\\5", "modality": "XX"},
    )
    assert r.status_code == 400
    assert "longer than 16" in _field_error(r, "name")
    assert "separator" in _field_error(r, "location")
    assert "DICOM modality" in _field_error(r, "modality")
    assert 'value="A name far too long"' in _html(r)  # what was typed comes back
    (st,) = [s for s in client.get("/api/stations", headers=ADMIN).json["items"] if s["aet"] == "CT2"]
    assert st["name"] == "CT 2"  # nothing saved
    assert client.post("/setup/stations/NOPE", data={"csrf_token": admin}).status_code == 404
    assert [(e.actor, e.detail, e.outcome) for e in _events(app, "station.update")] == [
        ("ada", "station CT2", "success"),
        ("ada", "station CT2", "failed"),
        ("ada", "station NOPE", "failed"),
    ]


def test_a_station_is_added_on_the_page_with_its_errors_on_their_fields(app, client, admin):
    r = client.post(
        "/setup/stations",
        data={"csrf_token": admin, "aet": "CT1", "modality": "XX", "host": "scanner.local", "port": "7x"},
    )
    assert r.status_code == 400
    assert "whole number" in _field_error(r, "port")
    r = client.post("/setup/stations", data={"csrf_token": admin, "aet": "CT1", "modality": "CT", "host": "scanner"})
    assert r.status_code == 400 and "exists already" in _field_error(r, "aet")
    r = client.post("/setup/stations", data={"csrf_token": admin, "aet": "MR9", "modality": "mr", "host": "scanner"})
    assert r.status_code == 400 and "not a host name" in _field_error(r, "host")
    assert 'value="MR9"' in _html(r)  # what was typed comes back
    r = client.post(
        "/setup/stations",
        data={"csrf_token": admin, "aet": "MR9", "modality": "mr", "name": "MR 9", "location": "Room 9",
              "host": "10.0.0.9", "port": "104"},
    )  # fmt: skip
    assert r.status_code == 302 and r.headers["Location"].endswith("/setup/stations/MR9")
    (st,) = [s for s in client.get("/api/stations", headers=ADMIN).json["items"] if s["aet"] == "MR9"]
    assert (st["name"], st["modality"], st["location"], st["host"], st["port"]) == (
        "MR 9",
        "MR",
        "Room 9",
        "10.0.0.9",
        104,
    )
    assert [(e.actor, e.detail, e.outcome) for e in _events(app, "station.create")] == [
        ("ada", "station CT1", "failed"),
        ("ada", "station CT1", "failed"),
        ("ada", "station MR9", "failed"),
        ("ada", "station MR9", "success"),
    ]


def test_opening_hours_several_periods_a_day(client, admin):
    form = {"csrf_token": admin, "hours_mon": "08:00-12:00, 13:00-17:30", "hours_sat": "9:00-11:00"}
    assert client.post("/setup/stations/CT2/hours", data=form).status_code == 302
    hours = client.get("/api/stations/CT2/hours", headers=ADMIN).json["hours"]
    assert hours == [
        {"weekday": "mon", "opens": "08:00", "closes": "12:00"},
        {"weekday": "mon", "opens": "13:00", "closes": "17:30"},
        {"weekday": "sat", "opens": "09:00", "closes": "11:00"},
    ]
    page = _html(client.get("/setup/stations/CT2"))
    assert 'value="08:00-12:00, 13:00-17:30"' in page
    bad = {
        "csrf_token": admin,
        "hours_mon": "08:00-12:00, 11:00-13:00",
        "hours_tue": "9 to 5",
        "hours_wed": "17:00-08:00",
        "hours_thu": "25:00-26:00",
    }
    r = client.post("/setup/stations/CT2/hours", data=bad)
    assert r.status_code == 400
    assert _field_error(r, "hours_mon") == "Monday periods overlap on mon"
    assert "HH:MM-HH:MM" in _field_error(r, "hours_tue") and "HH:MM-HH:MM" in _field_error(r, "hours_thu")
    assert "closes after it opens" in _field_error(r, "hours_wed")
    assert "4 entries need correcting" in _html(r)
    assert len(client.get("/api/stations/CT2/hours", headers=ADMIN).json["hours"]) == 3  # unchanged
    # All empty: the station leaves the booking rules.
    assert client.post("/setup/stations/CT2/hours", data={"csrf_token": admin}).status_code == 302
    assert client.get("/api/stations/CT2/hours", headers=ADMIN).json["hours"] == []


def test_blocks_whole_days_or_a_time_range_and_removal(app, client, admin):
    url = "/setup/stations/CT1/blocks"
    r = client.post(
        url, data={"csrf_token": admin, "block_kind": "holiday", "block_reason": "Closed", "block_date": DAY}
    )
    assert r.status_code == 302
    form = {"csrf_token": admin, "block_kind": "maintenance", "block_reason": "new tube", "block_date": DAY}
    r = client.post(url, data=form | {"block_date": DAY, "block_from": "08:30", "block_to": "09:15"})
    assert r.status_code == 302
    blocks = client.get(f"/api/stations/CT1/blocks?from={DAY}&to={DAY}", headers=ADMIN).json["items"]
    assert [(b["kind"], b["start"][11:16], b["end"][11:16]) for b in blocks] == [
        ("holiday", "00:00", "00:00"),
        ("maintenance", "08:30", "09:15"),
    ]
    assert blocks[1]["reason"] == "new tube" and blocks[1]["created_by"] == "page:ada"
    page = _html(client.get("/setup/stations/CT1"))
    assert "new tube" in page and f"{DAY} 08:30" in page and f"{DAY} (whole days)" in page

    r = client.post(url, data=form | {"block_from": "10:00", "block_to": "09:00"})
    assert r.status_code == 400 and _field_error(r, "block_to") == "To time ends after it starts"
    r = client.post(url, data=form | {"block_from": "10:00"})
    assert r.status_code == 400 and "with the other time" in _field_error(r, "block_to")
    r = client.post(url, data=form | {"block_kind": "party", "block_date": ""})
    assert r.status_code == 400 and _field_error(r, "block_date") == "From day is required"
    r = client.post(url, data=form | {"block_kind": "party"})
    assert r.status_code == 400 and "holiday, maintenance, blocked" in _field_error(r, "block_kind")
    r = client.post(url, data=form | {"block_last_date": "2000-01-01"})
    assert r.status_code == 400 and "ends after it starts" in _field_error(r, "block_last_date")

    r = client.post(f"/setup/stations/CT1/blocks/{blocks[1]['id']}/delete", data={"csrf_token": admin})
    assert r.status_code == 302
    assert len(client.get(f"/api/stations/CT1/blocks?from={DAY}&to={DAY}", headers=ADMIN).json["items"]) == 1
    r = client.post(f"/setup/stations/CT2/blocks/{blocks[0]['id']}/delete", data={"csrf_token": admin})
    assert r.status_code == 302  # another station's block: refused with a message
    assert len(client.get(f"/api/stations/CT1/blocks?from={DAY}&to={DAY}", headers=ADMIN).json["items"]) == 1
    assert len(_events(app, "station.update", outcome="success")) == 3  # two blocks added, one removed
    assert len(_events(app, "station.update", outcome="failed")) == 6  # the refused forms too


def test_procedures_of_a_station_with_their_minutes(app, client, admin):
    with app.extensions["ris_sessions"]() as s:
        ids = {p.code: p.id for p in s.scalars(select(ProcedureCode))}
    form = {"csrf_token": admin, f"do_{ids['CTHEAD']}": "on", f"min_{ids['CTHEAD']}": "25", f"do_{ids['CTABD']}": "on"}
    assert client.post("/setup/stations/CT1/procedures", data=form).status_code == 302
    got = client.get("/api/stations/CT1/procedures", headers=ADMIN).json["procedures"]
    assert [(p["code"], p["duration_minutes"], p["effective_minutes"]) for p in got] == [
        ("CTABD", None, 20),
        ("CTHEAD", 25, 25),
    ]
    page = _html(client.get("/setup/stations/CT1"))
    assert f'id="do-{ids["CTHEAD"]}" checked' in page and f'id="do-{ids["CTCHEST"]}" checked' not in page
    assert "MRBRAIN" not in page  # another modality's procedures are not offered
    for typed in ("abc", "0", "2000"):
        r = client.post("/setup/stations/CT1/procedures", data=form | {f"min_{ids['CTHEAD']}": typed})
        assert r.status_code == 400
        assert _field_error(r, f"min_{ids['CTHEAD']}") == "must be whole minutes from 1 to 1440"
    assert client.get("/api/stations/CT1/procedures", headers=ADMIN).json["procedures"] == got


def test_the_catalog_adds_and_edits_procedures_with_preparation(app, client, admin):
    assert "CTHEAD" in _html(client.get("/setup/catalog"))
    prep = "Nothing to eat for 4 hours.\r\nBring your previous images."
    form = {"csrf_token": admin, "code": "CTSINUS", "description": "CT sinuses", "modality": "ct"}
    r = client.post("/setup/catalog", data=form | {"default_duration_minutes": "12", "preparation": prep})
    assert r.status_code == 302
    codes = {p["code"]: p for p in client.get("/api/procedure-codes", headers=ADMIN).json["items"]}
    assert codes["CTSINUS"] | {"coding_scheme": None} == {
        "code": "CTSINUS",
        "coding_scheme": None,
        "description": "CT sinuses",
        "modality": "CT",
        "default_duration_minutes": 12,
        "preparation": "Nothing to eat for 4 hours.\nBring your previous images.",
    }
    r = client.post("/setup/catalog", data=form)
    assert r.status_code == 400 and _field_error(r, "code") == "Code is already in the catalog"
    r = client.post("/setup/catalog", data=form | {"code": "NEW1", "modality": "XX"})
    assert r.status_code == 400 and "DICOM modality" in _field_error(r, "modality")
    r = client.post("/setup/catalog", data=form | {"code": "", "description": ""})
    assert r.status_code == 400 and _field_error(r, "code") == "Code is required"

    r = client.get("/setup/catalog/CTSINUS")
    assert r.status_code == 200 and "Bring your previous images.</textarea>" in _html(r)
    edit = {"csrf_token": admin, "description": "CT paranasal sinuses", "modality": "CT"}
    r = client.post("/setup/catalog/CTSINUS", data=edit | {"default_duration_minutes": "10", "preparation": ""})
    assert r.status_code == 302
    codes = {p["code"]: p for p in client.get("/api/procedure-codes", headers=ADMIN).json["items"]}
    assert (codes["CTSINUS"]["description"], codes["CTSINUS"]["default_duration_minutes"]) == (
        "CT paranasal sinuses",
        10,
    )
    assert codes["CTSINUS"]["preparation"] == ""
    bad = edit | {"description": "", "default_duration_minutes": "0", "preparation": "x" * 2001}
    r = client.post("/setup/catalog/CTSINUS", data=bad)
    assert r.status_code == 400
    assert _field_error(r, "description") == "Description is required"
    assert _field_error(r, "default_duration_minutes") == "Minutes must be whole minutes from 1 to 1440"
    assert "longer than 2000" in _field_error(r, "preparation")
    assert client.get("/setup/catalog/NOPE").status_code == 404
    assert [e.detail for e in _events(app, "catalog.create", outcome="success")] == ["procedure CTSINUS"]
    assert [(e.detail, e.outcome) for e in _events(app, "catalog.update")] == [
        ("procedure CTSINUS", "success"),
        ("procedure CTSINUS", "failed"),
    ]


def test_setup_is_for_admins_only(app, client):
    login(app, client, "clerk", "clara")
    for path in ("/setup/stations", "/setup/stations/CT1", "/setup/catalog", "/setup/catalog/CTHEAD"):
        assert client.get(path).status_code == 403, path
    assert "/setup/stations" not in _html(client.get("/"))  # no Setup link in the nav
    assert "/clashes" in _html(client.get("/"))


def _flagged_order(app, start: str) -> str:
    """An order accepted over taken time, as HL7 and imports place it (policy FLAG)."""
    with transaction(app.extensions["ris_sessions"]) as s:
        patient = s.scalar(select(Patient).where(Patient.mrn == "FD1"))
        procedure = s.scalar(select(ProcedureCode).where(ProcedureCode.code == "CTHEAD"))
        data = OrderData(
            patient=patient,
            procedure=procedure,
            modality="CT",
            scheduled_start=from_site(datetime.fromisoformat(start)),
            station_aet="CT1",
        )
        return create_order(s, data, source="hl7", clash_policy=ClashPolicy.FLAG).accession_number


def test_a_clash_is_shown_on_the_order_and_resolved_by_moving_or_keeping_it(app, client):
    first = place(client, f"{DAY}T08:30").json["accession_number"]
    moved = _flagged_order(app, f"{DAY}T08:35")
    kept = _flagged_order(app, f"{DAY}T08:40")
    step = client.get(f"/api/orders/{moved}", headers=ADMIN).json["scheduled_procedure_step"]
    assert (step["booking_flag"], step["booking_clash_with"], step["out_of_hours"]) == ("clash", first, False)
    csrf = login(app, client, "clerk", "clara")
    page = _html(client.get(f"/orders/{moved}"))
    assert 'id="booking-flag">clash with' in page and f"/orders/{first}" in page and "resolve" in page

    page = _html(client.get("/clashes"))
    assert f'id="clash-{moved}"' in page and f'id="clash-{kept}"' in page and f'id="clash-{first}"' not in page
    assert "Desk, Fran" in page
    assert [e.actor for e in _events(app, "worklist.read", resource="/clashes")] == ["clara"]

    # Moving onto time still taken is refused with the booking rule's message.
    r = client.post(f"/clashes/{moved}/reschedule", data={"csrf_token": csrf, "date": DAY, "time": "08:30"})
    assert r.status_code == 302
    assert f"Time CT1 is booked {DAY} 08:30-08:45 by order {first}" in _html(client.get("/clashes"))
    r = client.post(f"/clashes/{moved}/reschedule", data={"csrf_token": csrf, "date": DAY, "time": "9.15"})
    assert "Time must be a time as HH:MM" in _html(client.get(r.headers["Location"]))
    # To a free time: moved, no longer flagged.
    r = client.post(f"/clashes/{moved}/reschedule", data={"csrf_token": csrf, "date": DAY, "time": "09:15"})
    assert "moved to" in _html(client.get(r.headers["Location"]))
    step = client.get(f"/api/orders/{moved}", headers=ADMIN).json["scheduled_procedure_step"]
    assert step["scheduled_start"].startswith(f"{DAY}T09:15") and step["booking_flag"] == ""
    assert step["changed_by"] == "page:clara"

    # Kept: the flag is cleared, the version checked, the decision audited.
    version = client.get(f"/api/orders/{kept}", headers=ADMIN).json["version"]
    r = client.post(f"/clashes/{kept}/keep", data={"csrf_token": csrf, "version": str(version - 1)})
    assert "changed" in _html(client.get(r.headers["Location"]))  # a stale page: refused
    client.post(f"/clashes/{kept}/keep", data={"csrf_token": csrf, "version": str(version)})
    step = client.get(f"/api/orders/{kept}", headers=ADMIN).json["scheduled_procedure_step"]
    assert (step["booking_flag"], step["scheduled_start"][11:16]) == ("", "08:40")
    r = client.post(f"/clashes/{kept}/keep", data={"csrf_token": csrf})
    assert "no clash to keep" in _html(client.get(r.headers["Location"]))
    assert "No clashes to resolve." in _html(client.get("/clashes"))
    assert [(e.actor, e.accession, e.outcome) for e in _events(app, "booking.keep")] == [
        ("clara", kept, "failed"),
        ("clara", kept, "success"),
        ("clara", kept, "failed"),
    ]
    assert [e.outcome for e in _events(app, "step.reschedule")] == ["failed", "failed", "success"]


def test_out_of_hours_and_overbook_are_shown(app, client):
    late = place(client, f"{DAY}T03:00", priority="STAT").json
    assert late["scheduled_procedure_step"]["out_of_hours"] is True
    in_hours = place(client, f"{DAY}T08:00").json
    assert in_hours["scheduled_procedure_step"]["out_of_hours"] is False
    first = in_hours["accession_number"]
    over = place(client, f"{DAY}T08:05", overbook=True)
    assert over.status_code == 201, over.json
    login(app, client, "clerk", "clara")
    page = _html(client.get(f"/orders/{late['accession_number']}"))
    assert 'id="out-of-hours"' in page and 'id="booking-flag"' not in page
    page = _html(client.get(f"/orders/{over.json['accession_number']}"))
    assert re.search(rf'id="booking-flag">overbook with <a href="/orders/{first}">{first}</a> by api:\S+</span>', page)
    assert 'id="out-of-hours"' not in page


def test_the_patient_form_takes_the_message_language_and_opt_outs(app, client):
    csrf = login(app, client, "clerk", "clara")
    page = _html(client.get("/patients/new"))
    assert 'id="f-notify_email" name="notify_email" checked' in page  # opted in unless unticked
    assert '<option value="fr">' in page
    form = {"csrf_token": csrf, "mrn": "LANG1", "family_name": "Martin", "email": "m@example.org", "phone": "+33 1"}
    r = client.post("/patients/new", data=form | {"language": "fr", "notify_email": "on"})
    assert r.status_code == 302
    p = client.get("/api/patients/LANG1", headers=ADMIN).json
    assert (p["language"], p["notify_email"], p["notify_sms"]) == ("fr", True, False)
    r = client.post("/patients/new", data=form | {"mrn": "LANG2", "language": "french!"})
    assert r.status_code == 400 and "a language code such as en" in _field_error(r, "language")
    assert 'id="f-notify_sms" name="notify_sms">' in _html(r)  # unticked, as sent
