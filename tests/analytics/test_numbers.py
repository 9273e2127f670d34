"""The dashboards' numbers against a fixture worked out by hand (tests/analytics/fixture.py)."""

from __future__ import annotations

import pytest

from ris_app.analytics.backlog import backlog
from ris_app.analytics.durations import durations
from ris_app.analytics.rates import rates
from ris_app.analytics.stats import Filter, percentile
from ris_app.analytics.turnaround import turnaround
from ris_app.analytics.utilisation import utilisation
from ris_app.db import transaction
from tests.analytics.fixture import build

pytestmark = pytest.mark.db


@pytest.fixture
def department(app):
    sessions = app.extensions["ris_sessions"]
    with transaction(sessions) as s:
        day = build(s)
    with sessions() as s:
        yield s, Filter(first=day, last=day)


def test_percentile_interpolates_between_ranks():
    assert percentile([], 50) is None
    assert percentile([5, 10, 10], 90) == 10
    assert percentile([50, 55, 50], 90) == pytest.approx(54)
    assert percentile([1, 2, 3, 4], 50) == 2.5


def test_turnaround_per_stage(department):
    s, f = department
    stages = {r["stage"]: r for r in turnaround(s, f)["stages"]}
    # scheduled 10, 10, 5; arrived 50, 50, 55; started 10, 10 (E2's MPPS at 08:40 is
    # earlier than its move at 08:45), 20; images 30, 30, 35; preliminary E2 only 30;
    # signed 120, 30, 240; ordered to signed 220, 160, 355. No-show and cancelled: out.
    expect = {
        "scheduled": (3, 10, 10),
        "arrived": (3, 50, 54),
        "started": (3, 10, 18),
        "images complete": (3, 30, 34),
        "preliminary": (1, 30, 30),
        "signed": (3, 120, 216),
        "ordered to signed": (3, 220, 328),
    }
    assert {k: (v["count"], v["median"], v["p90"]) for k, v in stages.items()} == expect


def test_turnaround_filters(department):
    s, f = department
    stat = Filter(first=f.first, last=f.last, priority="STAT")
    assert {r["stage"]: r["count"] for r in turnaround(s, stat)["stages"]}["signed"] == 1
    assert turnaround(s, Filter(first=f.first, last=f.last, modality="MR"))["stages"][0]["count"] == 0


def test_utilisation_room_and_hour(department):
    s, f = department
    data = utilisation(s, f)
    (room,) = data["rooms"]
    # open 08-12 less the 11-12 block: 180; booked: four 30-minute bookings (the cancelled
    # one is not); used: MPPS 30 + 20, images 29 (E3 had no MPPS).
    assert (room["open_minutes"], room["booked_minutes"], room["used_minutes"]) == (180, 120, 79)
    assert (room["booked_pct"], room["used_pct"]) == (66.7, 43.9)
    hours = {h["hour"]: h for h in data["hours"]}
    assert (hours[8]["open_minutes"], hours[8]["booked_minutes"], hours[8]["booked_pct"]) == (60, 60, 100.0)
    assert hours[10]["booked_minutes"] == 30  # the no-show booked the slot
    assert 11 not in hours  # blocked, the cancelled booking not counted


def test_no_show_and_cancellation_rates(department):
    s, f = department
    (row,) = rates(s, f)["modalities"]
    assert (row["booked"], row["no_show"], row["canceled"]) == (5, 1, 1)
    assert (row["no_show_pct"], row["canceled_pct"]) == (25.0, 20.0)  # 1 of 4 kept, 1 of 5 booked


def test_backlog_against_targets(department):
    s, _ = department
    data = backlog(s, {"STAT": 60, "ROUTINE": 2880})
    by = {r["priority"]: r for r in data["priorities"]}
    assert (by["STAT"]["unread"], by["STAT"]["1-4 h"], by["STAT"]["past_target"]) == (1, 1, 1)
    assert (by["ROUTINE"]["unread"], by["ROUTINE"]["< 1 h"], by["ROUTINE"]["past_target"]) == (1, 1, 0)
    assert [r["accession_number"] for r in data["past_target"]] == ["B0"]  # signed ones are not unread


def test_learned_durations(department):
    s, f = department
    (row,) = durations(s, f)["durations"]
    # MPPS 30 and 20 minutes, images 29: median 29, p80 29.6; too few exams to propose.
    assert (row["procedure_code"], row["station_aet"], row["exams"]) == ("CTHEAD", "CT1", 3)
    assert (row["median"], row["p80"], row["planned"], row["proposed"]) == (29, 29.6, 15, None)
