"""The calendar's data (columns, placed exams, lanes, blocks, free slots, out of hours),
the waiting list's order, and the pages the front desk uses, on a real database in the
Europe/Paris site zone (tests/frontdesk/conftest.py: CT1 open 08:00-10:00 every day)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from ris_app.clock import from_site, site_today
from ris_app.db import transaction
from ris_app.frontdesk.booking import ClashPolicy
from ris_app.frontdesk.calendar import build, week_of
from ris_app.frontdesk.waiting import waiting_list
from ris_app.model import ProcedureCode, Station
from ris_app.scheduling.orders import OrderData, create_order, find_patient
from tests.fixtures.web import login
from tests.frontdesk.conftest import ADMIN, place

pytestmark = pytest.mark.db
TOMORROW = site_today() + timedelta(days=1)


def _at(hhmm: str, day=None) -> str:
    return f"{day or TOMORROW}T{hhmm}"


def _flagged(app, hhmm: str, aet: str = "CT1", priority: str = "ROUTINE") -> str:
    """An order placed the way HL7 places it: a clash is accepted and flagged."""
    with transaction(app.extensions["ris_sessions"]) as s:
        data = OrderData(
            patient=find_patient(s, "FD1"),
            procedure=s.scalar(select(ProcedureCode).where(ProcedureCode.code == "CTHEAD")),
            modality="CT",
            scheduled_start=from_site(datetime.fromisoformat(_at(hhmm))),
            station_aet=aet,
            priority=priority,
        )
        return create_order(s, data, source="hl7", clash_policy=ClashPolicy.FLAG).accession_number


def _grid(app, stations=("CT1", "CT2"), days=(TOMORROW,), **kw):
    with app.extensions["ris_sessions"]() as s:
        rows = [s.scalar(select(Station).where(Station.aet == a)) for a in stations]
        grid = build(s, rows, list(days), **kw)
        for col in grid.columns:  # loaded while the session is open
            for item in col.items:
                _ = item.step.requested_procedure.order.patient.family_name
        return grid


def test_a_day_of_rooms_places_exams_hours_blocks_and_free_slots(app, client):
    first = place(client, _at("08:00")).json["accession_number"]
    clash = _flagged(app, "08:05")
    night = place(client, _at("03:00")).json["accession_number"]  # the STAT CT at 3 am: accepted
    r = client.post(
        "/api/stations/CT1/blocks",
        json={"start": _at("09:30"), "end": _at("10:00"), "kind": "maintenance", "reason": "tube check"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.json
    place(client, _at("08:00"), aet="CT2")  # CT2 has no opening hours: no slots, no rules

    grid = _grid(app, procedure_code="CTHEAD")
    ct1, ct2 = grid.columns
    assert (ct1.station.aet, ct1.booked, ct2.booked) == ("CT1", True, False)
    assert [(h.start_min, h.end_min) for h in ct1.hours] == [(480, 600)]
    assert [(b.start_min, b.end_min, b.label) for b in ct1.blocks] == [(570, 600, "maintenance: tube check")]
    by_acc = {i.step.requested_procedure.order.accession_number: i for i in ct1.items}
    assert (by_acc[first].start_min, by_acc[first].end_min) == (480, 495)  # 15 minutes of CTHEAD
    # The clash shares the width with what it overlaps, and is flagged.
    assert {(by_acc[first].lane, by_acc[first].lanes), (by_acc[clash].lane, by_acc[clash].lanes)} == {(0, 2), (1, 2)}
    assert by_acc[clash].flag == "clash" and by_acc[first].flag == ""
    assert by_acc[night].out_of_hours and not by_acc[first].out_of_hours
    assert (grid.first_min, grid.last_min) == (180, 19 * 60)  # widened to show the night exam
    # Free slots: inside opening hours, not over the exams nor the block.
    assert [s.label for s in ct1.slots] == ["08:20", "08:35", "08:50", "09:05"]
    assert ct1.procedure_code == "CTHEAD" and ct2.slots == []
    assert [i.out_of_hours for i in ct2.items] == [False]  # a room without hours is never closed
    # Without a procedure named, each room offers its modality's first (CTABD, 20 minutes).
    (ct1,) = _grid(app, stations=("CT1",)).columns
    assert ct1.procedure_code == "CTABD" and [s.label for s in ct1.slots] == ["08:20", "08:40", "09:00"]


def test_a_no_show_and_a_cancel_free_their_time(app, client):
    gone = place(client, _at("08:00")).json["accession_number"]
    missed = place(client, _at("08:15")).json["accession_number"]
    assert client.post(f"/api/orders/{gone}/status", json={"action": "CANCEL"}, headers=ADMIN).status_code == 200
    assert client.post(f"/api/orders/{missed}/status", json={"action": "NO_SHOW"}, headers=ADMIN).status_code == 200
    (ct1,) = _grid(app, stations=("CT1",), procedure_code="CTHEAD").columns
    assert [i.step.status for i in ct1.items] == ["NO_SHOW"]  # shown; the canceled one is not
    assert [s.label for s in ct1.slots][:2] == ["08:00", "08:15"]


def test_a_week_of_one_room_has_its_days_as_columns(app, client):
    place(client, _at("09:00"))
    days = week_of(TOMORROW)
    assert days[0].weekday() == 0 and len(days) == 7 and TOMORROW in days
    grid = _grid(app, stations=("CT1",), days=days, by_day=True)
    assert [c.day for c in grid.columns] == days
    assert [len(c.items) for c in grid.columns] == [1 if d == TOMORROW else 0 for d in days]


def test_the_waiting_list_is_most_urgent_then_oldest_first_with_a_slot_to_book(app, client):
    routine = client.post(
        "/api/orders", json={"mrn": "FD1", "procedure_code": "CTHEAD", "scheduled_start": _at("12:00")}, headers=ADMIN
    ).json["accession_number"]
    booked = place(client, _at("08:00")).json["accession_number"]
    clash = _flagged(app, "08:00", priority="HIGH")
    stat = client.post(
        "/api/orders",
        json={"mrn": "FD1", "procedure_code": "CTHEAD", "scheduled_start": _at("13:00"), "priority": "STAT"},
        headers=ADMIN,
    ).json["accession_number"]
    with app.extensions["ris_sessions"]() as s:
        rows = waiting_list(s)
        got = [(w.step.requested_procedure.order.accession_number, w.reason) for w in rows]
        assert got == [(stat, "no_station"), (clash, "clash"), (routine, "no_station")]
        assert booked not in {a for a, _ in got}
        assert all(w.next_slot is not None and w.next_slot.station_aet == "CT1" for w in rows)


@pytest.fixture
def clerk(app):
    page = app.test_client()
    return page, login(app, page, "clerk")


def test_the_pages_for_the_desk(app, client, clerk):
    page, token = clerk
    accession = place(client, _at("08:00")).json["accession_number"]
    day = page.get(f"/calendar?date={TOMORROW}&procedure=CTHEAD")
    html = day.get_data(as_text=True)
    assert day.status_code == 200 and "Times are Europe/Paris time." in html
    assert f'data-accession="{accession}"' in html and "Desk, Fran" in html
    # A free slot opens the order form filled in, and the form takes it.
    link = re.search(r'class="cal-slot"[^>]*href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    assert "station_aet=CT1" in link and "procedure_code=CTHEAD" in link and "scheduled_time=08:15" in link
    form = page.get(link).get_data(as_text=True)
    assert 'value="08:15"' in form and '<option value="CT1" selected' in form
    # Selecting the exam opens its panel with check-in, no-show and reschedule.
    panel = page.get(f"/calendar?date={TOMORROW}&sel={accession}").get_data(as_text=True)
    assert 'id="exam-panel"' in panel and ">Check in<" in panel and ">No-show<" in panel and "Reschedule" in panel
    for path in (f"/calendar/week?date={TOMORROW}", f"/calendar/week?date={TOMORROW}&station=CT1", "/calendar/waiting"):
        r = page.get(path)
        assert r.status_code == 200, path
        assert (accession in r.get_data(as_text=True)) != path.endswith("waiting"), path  # booked: not waiting
    # Check in from the calendar comes back to it.
    back = f"/calendar?date={TOMORROW}&sel={accession}"
    r = page.post(
        f"/orders/{accession}/status", data={"action": "arrive", "csrf_token": token, "next": back, "version": "1"}
    )
    assert r.status_code == 302 and r.headers["Location"].endswith(back)


def test_reschedule_from_the_calendar_and_a_taken_slot_named(app, client, clerk):
    page, token = clerk
    moving = place(client, _at("08:00")).json["accession_number"]
    taken = place(client, _at("09:00")).json["accession_number"]
    path = f"/calendar/orders/{moving}/reschedule"
    assert 'name="time" value="08:00"' in page.get(path).get_data(as_text=True)
    r = page.post(path, data={"csrf_token": token, "date": str(TOMORROW), "time": "09:05", "station": "CT1"})
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and f"by order {taken}" in html and 'class="flash error"' in html
    r = page.post(path, data={"csrf_token": token, "date": str(TOMORROW), "time": "09:30", "station": "CT1"})
    assert r.status_code == 302 and f"sel={moving}" in r.headers["Location"]
    got = client.get(f"/api/orders/{moving}", headers=ADMIN).json
    assert got["scheduled_procedure_step"]["scheduled_start"].startswith(_at("09:30"))
    # A clerk may not overbook: the box is not offered and is ignored if sent.
    r = page.post(
        path, data={"csrf_token": token, "date": str(TOMORROW), "time": "09:00", "station": "CT1", "overbook": "1"}
    )
    assert r.status_code == 409


def test_the_calendar_is_for_the_desk_only(app):
    for role, expected in (("radiologist", 403), ("technologist", 403), ("admin", 200)):
        page = app.test_client()
        login(app, page, role)
        for path in ("/calendar", "/calendar/week", "/calendar/waiting"):
            assert page.get(path).status_code == expected, (role, path)
    assert app.test_client().get("/calendar").status_code == 302  # to the login page
