"""Free slots: inside opening hours (site wall-clock time, across a clock change), around
booked steps and blocks, of the procedure's length on each station."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.frontdesk.conftest import ADMIN, ZONE, place, slots

pytestmark = pytest.mark.db
MONDAY = "2027-01-04"


def _starts(found) -> list[str]:
    return [s[0][11:16] for s in found]


def test_an_open_station_offers_back_to_back_slots_of_the_procedure_length(client):
    found = slots(client, MONDAY, station_aet="CT1")
    assert _starts(found) == ["08:00", "08:15", "08:30", "08:45", "09:00", "09:15", "09:30", "09:45"]
    assert found[0] == ("2027-01-04T08:00:00+01:00", "2027-01-04T08:15:00+01:00", "CT1")
    assert len(slots(client, MONDAY, "CTCHEST", station_aet="CT1")) == 6  # 20 minutes each


def test_booked_steps_and_blocks_are_not_free_and_canceled_steps_free_their_time(client):
    accession = place(client, f"{MONDAY}T08:30").json["accession_number"]
    r = client.post(
        "/api/stations/CT1/blocks",
        json={"start": f"{MONDAY}T09:15", "end": f"{MONDAY}T09:45", "kind": "maintenance", "reason": "tube"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.json
    assert _starts(slots(client, MONDAY, station_aet="CT1")) == ["08:00", "08:15", "08:45", "09:00", "09:45"]
    r = client.post(f"/api/orders/{accession}/status", json={"action": "cancel"}, headers=ADMIN)
    assert r.status_code == 200
    assert "08:30" in _starts(slots(client, MONDAY, station_aet="CT1"))
    blocks = client.get("/api/stations/CT1/blocks", query_string={"from": MONDAY}, headers=ADMIN).json["items"]
    assert [(b["kind"], b["reason"], b["start"]) for b in blocks] == [
        ("maintenance", "tube", "2027-01-04T09:15:00+01:00")
    ]
    assert client.delete(f"/api/stations/CT1/blocks/{blocks[0]['id']}", headers=ADMIN).status_code == 204
    assert "09:15" in _starts(slots(client, MONDAY, station_aet="CT1"))


def test_a_holiday_closes_whole_site_days(client):
    r = client.post("/api/stations/CT1/blocks", json={"date": MONDAY, "kind": "holiday"}, headers=ADMIN)
    assert r.status_code == 201, r.json
    assert r.json["start"] == "2027-01-04T00:00:00+01:00" and r.json["end"] == "2027-01-05T00:00:00+01:00"
    assert slots(client, MONDAY, station_aet="CT1") == []
    assert len(slots(client, "2027-01-05", station_aet="CT1")) == 8


def test_opening_hours_stay_wall_clock_across_the_change_to_summer_time(client):
    # Paris moves from +01:00 to +02:00 on Sunday 2027-03-28 at 02:00.
    found = slots(client, "2027-03-27", station_aet="CT1", days="2")
    by_day = {}
    for start, _, _ in found:
        by_day.setdefault(start[:10], []).append(start[11:])
    assert by_day["2027-03-27"][0] == "08:00:00+01:00"
    assert by_day["2027-03-28"][0] == "08:00:00+02:00"
    assert by_day["2027-03-28"][-1] == "09:45:00+02:00"
    utc = ZoneInfo("UTC")
    # 08:00 in winter is 07:00 UTC; in summer 06:00: the hours follow the wall clock.
    assert datetime.fromisoformat(f"2027-03-27T{by_day['2027-03-27'][0]}").astimezone(utc).hour == 7
    assert datetime.fromisoformat(f"2027-03-28T{by_day['2027-03-28'][0]}").astimezone(utc).hour == 6


def test_without_a_station_every_station_able_to_do_the_procedure_answers(client):
    client.put(
        "/api/stations/CT2/hours",
        json={"hours": [{"weekday": "mon", "opens": "09:00", "closes": "09:30"}]},
        headers=ADMIN,
    )
    client.put(
        "/api/stations/MR1/hours",
        json={"hours": [{"weekday": "mon", "opens": "08:00", "closes": "18:00"}]},
        headers=ADMIN,
    )
    found = slots(client, MONDAY)
    assert {aet for _, _, aet in found} == {"CT1", "CT2"}  # MR1 does no CT
    assert [s for s in found if s[2] == "CT2"] == [
        ("2027-01-04T09:00:00+01:00", "2027-01-04T09:15:00+01:00", "CT2"),
        ("2027-01-04T09:15:00+01:00", "2027-01-04T09:30:00+01:00", "CT2"),
    ]
    # CT2 listed for CTCHEST only, in 30 minutes there: no longer offered for CTHEAD.
    r = client.put(
        "/api/stations/CT2/procedures",
        json={"procedures": [{"code": "CTCHEST", "duration_minutes": 30}]},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.json
    assert r.json["procedures"] == [{"code": "CTCHEST", "duration_minutes": 30, "effective_minutes": 30}]
    assert {aet for _, _, aet in slots(client, MONDAY)} == {"CT1"}
    assert [s[:2] for s in slots(client, MONDAY, "CTCHEST", station_aet="CT2")] == [
        ("2027-01-04T09:00:00+01:00", "2027-01-04T09:30:00+01:00")
    ]


def test_a_station_without_opening_hours_offers_no_slots(client):
    assert slots(client, MONDAY, station_aet="CT2") == []


@pytest.mark.parametrize(
    ("args", "field", "status"),
    [
        ({"procedure_code": "NOPE"}, "procedure_code", 404),
        ({"procedure_code": "CTHEAD", "station_aet": "XX9"}, "station_aet", 404),
        ({"procedure_code": "CTHEAD", "days": "40"}, "days", 400),
        ({"procedure_code": "CTHEAD", "date": "2027-13-01"}, "date", 400),
        ({}, "procedure_code", 400),
    ],
)
def test_bad_questions_name_their_field(client, args, field, status):
    r = client.get("/api/availability", query_string=args, headers=ADMIN)
    assert r.status_code == status, r.json
    assert r.json["error"]["field"] == field


def test_resources_are_edited_by_admin_tokens_only(client, integrator):
    assert client.get("/api/stations/CT1/hours", headers=integrator).json["hours"][0] == {
        "weekday": "mon",
        "opens": "08:00",
        "closes": "10:00",
    }
    for method, url, body in (
        ("put", "/api/stations/CT1/hours", {"hours": []}),
        ("post", "/api/stations/CT1/blocks", {"date": MONDAY}),
        ("put", "/api/stations/CT1/procedures", {"procedures": []}),
        ("patch", "/api/procedure-codes/CTHEAD", {"preparation": "x"}),
    ):
        assert getattr(client, method)(url, json=body, headers=integrator).status_code == 403


def test_hours_that_overlap_or_run_backwards_are_refused(client):
    bad = [
        {"weekday": "tue", "opens": "08:00", "closes": "12:00"},
        {"weekday": "tue", "opens": "11:00", "closes": "13:00"},
    ]
    r = client.put("/api/stations/CT1/hours", json={"hours": bad}, headers=ADMIN)
    assert r.status_code == 400 and r.json["error"]["field"] == "hours"
    r = client.put(
        "/api/stations/CT1/hours", json={"hours": [{"weekday": 1, "opens": "12:00", "closes": "08:00"}]}, headers=ADMIN
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "hours[0].closes"


def test_a_procedure_has_a_duration_and_preparation_text(client):
    r = client.patch(
        "/api/procedure-codes/CTHEAD",
        json={"default_duration_minutes": 30, "preparation": "Nothing to eat for 4 hours."},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.json
    codes = {p["code"]: p for p in client.get("/api/procedure-codes", headers=ADMIN).json["items"]}
    assert codes["CTHEAD"]["preparation"] == "Nothing to eat for 4 hours."
    assert len(slots(client, MONDAY, station_aet="CT1")) == 4
    r = client.patch("/api/procedure-codes/CTHEAD", json={"default_duration_minutes": 0}, headers=ADMIN)
    assert r.status_code == 400 and r.json["error"]["field"] == "default_duration_minutes"


def test_a_week_is_answered_in_one_call(client):
    first = date(2027, 1, 4)
    found = slots(client, first.isoformat(), station_aet="CT1", days="7")
    assert len(found) == 7 * 8
    assert {s[0][:10] for s in found} == {(first + timedelta(days=n)).isoformat() for n in range(7)}
    assert ZONE == "Europe/Paris"
