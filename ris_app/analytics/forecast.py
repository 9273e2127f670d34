"""Exam volume per modality per day for the next HORIZON_DAYS, against capacity.

Demand is the steps booked per site day (cancelled ones left out; no-shows count: the
slot was taken). The model is statsmodels' Holt-Winters exponential smoothing with an
additive weekly season and a damped trend. Holidays are days the modality's rooms were
(or will be) closed by a block while their weekly hours say open: in the history they are
replaced by the same weekday a week earlier, so one closed day does not teach the model
a dip, and a forecast holiday expects nothing.

Capacity is the rooms' open minutes that day (hours less blocks) divided by the mean
planned duration of the modality's procedures. Error: the model is fitted again without
the last HOLDOUT_DAYS, forecasts them, and its mean absolute percentage error (MAPE, on
days with exams) is shown beside the seasonal-naive baseline's ("same as last week"):
a forecast that does not beat it should not be trusted.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter
from ris_app.analytics.utilisation import open_spans
from ris_app.clock import site_today, to_site
from ris_app.model import ProcedureCode, ScheduledProcedureStep, Station

HORIZON_DAYS = 28
HISTORY_DAYS = 182
HOLDOUT_DAYS = 14
SEASON = 7
MIN_HISTORY_DAYS = 4 * SEASON  # two seasons to fit, plus the held-out weeks


def _open_minutes(session: Session, station_ids: list[int], f: Filter, less_blocks: bool) -> dict[date, float]:
    out: Counter = Counter()
    for spans in open_spans(session, station_ids, f, less_blocks=less_blocks).values():
        for a, b in spans:
            out[to_site(a).date()] += (b - a).total_seconds() / 60.0
    return out


def daily_counts(session: Session, modality: str, f: Filter) -> list[float]:
    counts: Counter = Counter()
    q = select(ScheduledProcedureStep.start_datetime).where(
        ScheduledProcedureStep.modality == modality,
        ScheduledProcedureStep.start_datetime >= f.start,
        ScheduledProcedureStep.start_datetime < f.end,
        ScheduledProcedureStep.status != "CANCELED",
    )
    for (at,) in session.execute(q):
        counts[to_site(at).date()] += 1
    return [float(counts[d]) for d in f.days()]


def seasonal_naive(history: list[float], horizon: int) -> list[float]:
    last = history[-SEASON:]
    return [last[h % SEASON] for h in range(horizon)]


def holt_winters(history: list[float], horizon: int) -> list[float]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on short or flat series
        fit = ExponentialSmoothing(
            history,
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=SEASON,
            initialization_method="estimated",
        ).fit()
        return [max(0.0, float(x)) for x in fit.forecast(horizon)]


def mape(actual: list[float], predicted: list[float]) -> float | None:
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a > 0]
    return round(100.0 * sum(abs(a - p) / a for a, p in pairs) / len(pairs), 1) if pairs else None


def fill_holidays(history: list[float], holidays: list[bool]) -> list[float]:
    out = list(history)
    for n, closed in enumerate(holidays):
        if closed:
            out[n] = out[n - SEASON] if n >= SEASON else (out[n + SEASON] if n + SEASON < len(out) else 0.0)
    return out


def errors(history: list[float]) -> tuple[float | None, float | None]:
    """(model MAPE, seasonal-naive MAPE) on the last HOLDOUT_DAYS of `history`."""
    if len(history) < MIN_HISTORY_DAYS:
        return None, None
    train, test = history[:-HOLDOUT_DAYS], history[-HOLDOUT_DAYS:]
    return mape(test, holt_winters(train, HOLDOUT_DAYS)), mape(test, seasonal_naive(train, HOLDOUT_DAYS))


@lru_cache(maxsize=64)
def model(history: tuple[float, ...]) -> tuple[list[float], float | None, float | None]:
    """(the next HORIZON_DAYS, model MAPE, baseline MAPE) for a history. Fitting takes
    about half a second, twice (the forecast and the held-out check); the history ends
    yesterday, so it is the same all day: kept per history, the fit runs once a day per
    modality and process."""
    values = list(history)
    if len(values) >= MIN_HISTORY_DAYS:
        expected = holt_winters(values, HORIZON_DAYS)
    else:
        expected = seasonal_naive(values, HORIZON_DAYS) if len(values) >= SEASON else [0.0] * HORIZON_DAYS
    return (expected, *errors(values))


def forecast(session: Session, modality: str, *, today: date | None = None) -> dict:
    today = today or site_today()
    past = Filter(first=today - timedelta(days=HISTORY_DAYS), last=today - timedelta(days=1))
    future = Filter(first=today, last=today + timedelta(days=HORIZON_DAYS - 1))
    stations = list(session.scalars(select(Station.id).where(Station.modality == modality)))
    mean_minutes = session.scalar(
        select(func.avg(ProcedureCode.default_duration_minutes)).where(ProcedureCode.modality == modality)
    )

    def closed(f: Filter) -> list[bool]:
        planned = _open_minutes(session, stations, f, less_blocks=False)
        actual = _open_minutes(session, stations, f, less_blocks=True)
        return [planned[d] > 0 and actual[d] == 0 for d in f.days()]

    raw = daily_counts(session, modality, past)
    first_data = next((n for n, v in enumerate(raw) if v), len(raw))
    history = fill_holidays(raw, closed(past))[first_data:]
    expected, model_error, baseline_error = model(tuple(history))
    open_future = _open_minutes(session, stations, future, less_blocks=True)
    days = []
    for day, value, holiday in zip(future.days(), expected, closed(future), strict=True):
        capacity = int(open_future[day] // float(mean_minutes)) if mean_minutes else 0
        exp = 0.0 if holiday else round(value, 1)
        days.append(
            {
                "date": day.isoformat(),
                "expected": exp,
                "capacity": capacity,
                "over_capacity": exp > capacity,
                "holiday": holiday,
            }
        )
    return {
        "modality": modality,
        "history_days": len(history),
        "days": days,
        "mape": model_error,
        "baseline_mape": baseline_error,
    }
