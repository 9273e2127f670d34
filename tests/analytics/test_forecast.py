"""The forecast against generated history: on held-out weeks, Holt-Winters beats the
seasonal-naive baseline ("same as last week"), and both errors are reported."""

from __future__ import annotations

import random

import pytest

from ris_app.analytics.demo import generate
from ris_app.analytics.forecast import HORIZON_DAYS, errors, fill_holidays, forecast, seasonal_naive
from ris_app.db import transaction

WEEK = (30, 28, 27, 27, 25, 10, 0)


def test_seasonal_naive_repeats_last_week():
    history = [float(n) for n in range(14)]
    assert seasonal_naive(history, 9) == [7, 8, 9, 10, 11, 12, 13, 7, 8]


def test_a_holiday_is_replaced_by_the_same_weekday_before():
    assert fill_holidays([1, 2, 3, 4, 5, 6, 7, 8, 0], [False] * 8 + [True]) == [1, 2, 3, 4, 5, 6, 7, 8, 2]


def test_model_beats_seasonal_naive_on_noisy_weekly_history():
    rng = random.Random(5)
    history = [max(0.0, WEEK[d % 7] * (1 + d / 400) + rng.gauss(0, 4) * (WEEK[d % 7] > 0)) for d in range(140)]
    model, baseline = errors(history)
    assert model is not None and baseline is not None
    assert model < baseline


@pytest.mark.db
def test_forecast_of_demo_history(app):
    sessions = app.extensions["ris_sessions"]
    with app.extensions["ris_engine"].begin() as conn:
        generate(conn, 120, seed=3)
    with sessions() as s:
        data = forecast(s, "CT")
    assert data["history_days"] >= 110
    assert len(data["days"]) == HORIZON_DAYS
    assert data["mape"] < data["baseline_mape"], data  # worth more than "same as last week"
    sundays = [d for d in data["days"] if d["capacity"] == 0]
    assert sundays and all(d["expected"] < 5 for d in sundays)  # the rooms are closed
    weekday = next(d for d in data["days"] if d["capacity"] > 0)
    assert 0 < weekday["expected"] < 200


@pytest.mark.db
def test_a_future_holiday_expects_nothing(app):
    from datetime import timedelta

    from ris_app.clock import site_today
    from ris_app.frontdesk.resources import add_block, find_station, whole_days

    with app.extensions["ris_engine"].begin() as conn:
        generate(conn, 60, seed=4)
    day = site_today() + timedelta(days=7 - site_today().weekday())  # next Monday
    with transaction(app.extensions["ris_sessions"]) as s:
        for aet in ("DEMO_CT1", "DEMO_CT2"):
            add_block(s, find_station(s, aet), *whole_days(day, day), kind="holiday")
    with app.extensions["ris_sessions"]() as s:
        days = {d["date"]: d for d in forecast(s, "CT")["days"]}
    assert days[day.isoformat()] == {
        "date": day.isoformat(),
        "expected": 0.0,
        "capacity": 0,
        "over_capacity": False,
        "holiday": True,
    }
