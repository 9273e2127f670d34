"""Benchmark: every analytics dashboard query at size, p50/p95 against a naive reference.

Fills a fresh database with `orthanc-ris demo-data` history (`--steps`, a million by
default: about ten years of a five-room department at `--scale` times the demo volume),
then times each dashboard over the last `--window` days, in the same process, against a
naive reference: the first thing one would write (ORM objects walked exam by exam with
lazy loads, or one COUNT per day). Both answers are compared where they are the same
figure. SQLite in a temporary folder unless ORTHANC_RIS_TEST_DATABASE_URL names a
PostgreSQL server (scripts/with-postgres.sh).

    .venv/bin/python bench/analytics.py [--steps 1000000] [--runs 10]
    scripts/with-postgres.sh .venv/bin/python bench/analytics.py --steps 300000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ris_app.analytics import backlog, demo, durations, forecast, health, rates, turnaround, utilisation
from ris_app.analytics.stats import Filter, minutes, percentile
from ris_app.clock import site_day_bounds, site_today
from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model import (
    Hl7Message,
    Order,
    PerformedProcedureStep,
    ScheduledProcedureStep,
    Study,
)
from ris_app.ops import migrate
from ris_app.scheduling.catalog import seed_default_catalog

TARGETS = {"STAT": 60, "HIGH": 240, "ROUTINE": 2880}
DEMO_STEPS_PER_DAY = 83  # demo-data at scale 1: five rooms, weekly pattern (measured)


# --------------------------------------------------------------------------- naive references
def naive_turnaround(s: Session, f: Filter) -> dict:
    """Orders in the days as ORM objects, each exam walked with lazy loads."""
    total = []
    for order in s.scalars(select(Order).where(Order.created_at >= f.start, Order.created_at < f.end)):
        signed = [
            v.signed_at
            for st in s.scalars(select(Study).where(Study.order_id == order.id))
            for r in [st]
            for v in _versions(s, st)
        ]
        for rp in order.requested_procedures:
            for step in rp.steps:
                if step.status in turnaround.NOT_PERFORMED:
                    continue
                _ = [h.changed_at for h in step.history]
                d = minutes(order.created_at, min((x for x in signed if x), default=None))
                if d is not None:
                    total.append(d)
    return {"count": len(total), "median": round(percentile(total, 50), 1) if total else None}


def _versions(s: Session, study: Study):
    from ris_app.model import Report

    report = s.scalar(select(Report).where(Report.study_id == study.id))
    return [v for v in (report.versions if report else []) if v.version == 1]


def naive_utilisation(s: Session, f: Filter) -> float:
    booked = 0.0
    for step in s.scalars(
        select(ScheduledProcedureStep).where(
            ScheduledProcedureStep.start_datetime >= f.start, ScheduledProcedureStep.start_datetime < f.end
        )
    ):
        if step.status == "CANCELED":
            continue
        booked += minutes(step.start_datetime, min(step.end_datetime, f.end)) or 0.0
        s.scalars(select(PerformedProcedureStep).where(PerformedProcedureStep.step_id == step.id)).all()
    return round(booked, 1)


def naive_rates(s: Session, f: Filter) -> Counter:
    out: Counter = Counter()
    for step in s.scalars(
        select(ScheduledProcedureStep).where(
            ScheduledProcedureStep.start_datetime >= f.start, ScheduledProcedureStep.start_datetime < f.end
        )
    ):
        _ = step.requested_procedure.order.priority
        out[step.status] += 1
    return out


def naive_backlog(s: Session, f: Filter) -> int:
    unread = 0
    since = site_day_bounds(site_today() - timedelta(days=backlog.BACKLOG_DAYS))[0]
    for study in s.scalars(select(Study).where(Study.order_id.is_not(None), Study.first_received_at >= since)):
        versions = _versions(s, study)
        if not versions or versions[0].status != "FINAL":
            unread += 1
    return unread


def naive_health(s: Session, f: Filter) -> int:
    n = 0
    for day in f.days():
        a, b = site_day_bounds(day)
        n += s.scalar(
            select(func.count()).select_from(Hl7Message).where(Hl7Message.received_at >= a, Hl7Message.received_at < b)
        )
        n += s.scalar(
            select(func.count())
            .select_from(Study)
            .where(Study.first_received_at >= a, Study.first_received_at < b, Study.order_id.is_(None))
        )
    return n


def naive_durations(s: Session, f: Filter) -> int:
    n = 0
    for step in s.scalars(
        select(ScheduledProcedureStep).where(
            ScheduledProcedureStep.start_datetime >= f.start,
            ScheduledProcedureStep.start_datetime < f.end,
            ScheduledProcedureStep.status == "COMPLETED",
        )
    ):
        mpps = s.scalars(select(PerformedProcedureStep).where(PerformedProcedureStep.step_id == step.id)).all()
        _ = step.requested_procedure.procedure_code
        n += bool(mpps)
    return n


def naive_forecast(s: Session, f: Filter) -> list[int]:
    today = site_today()
    counts = []
    for n in range(forecast.HISTORY_DAYS, 0, -1):
        a, b = site_day_bounds(today - timedelta(days=n))
        counts.append(
            s.scalar(
                select(func.count())
                .select_from(ScheduledProcedureStep)
                .where(
                    ScheduledProcedureStep.modality == "CT",
                    ScheduledProcedureStep.start_datetime >= a,
                    ScheduledProcedureStep.start_datetime < b,
                    ScheduledProcedureStep.status != "CANCELED",
                )
            )
        )
    forecast.holt_winters([float(c) for c in counts], forecast.HORIZON_DAYS)
    return counts


# dashboard -> (ours, naive)
CASES = {
    "turnaround": (turnaround.turnaround, naive_turnaround),
    "utilisation": (utilisation.utilisation, naive_utilisation),
    "rates": (rates.rates, naive_rates),
    "backlog": (lambda s, f: backlog.backlog(s, TARGETS), naive_backlog),
    "health": (health.health, naive_health),
    "durations": (durations.durations, naive_durations),
    "forecast": (lambda s, f: forecast.forecast(s, "CT"), naive_forecast),
}


def _time(sessions, fn, f: Filter, runs: int) -> tuple[list[float], object]:
    times, result = [], None
    for n in range(runs + 1):
        with sessions() as s:
            t0 = time.perf_counter()
            result = fn(s, f)
            if n:  # the first run warms the caches
                times.append((time.perf_counter() - t0) * 1000)
    return times, result


def _p(times: list[float], q: float) -> float:
    return percentile(times, q) or 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--scale", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=28, help="days each dashboard looks at")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--naive-runs", type=int, default=3)
    args = ap.parse_args()
    url = os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        if url:
            from tests.conftest import _reset_postgres

            _reset_postgres(url)
        else:
            url = f"sqlite:///{tmp}/bench.sqlite3"
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as s:
            seed_default_catalog(s)
        days = max(30, round(args.steps / (DEMO_STEPS_PER_DAY * args.scale)))
        t0 = time.perf_counter()
        with engine.begin() as conn:
            made = demo.generate(conn, days, scale=args.scale, progress=lambda line: print(" ", line, flush=True))
        load = time.perf_counter() - t0
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        database = "PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite"
        print(f"{database}: {made.steps:,} steps over {days} days loaded in {load:.1f} s")
        last = site_today() - timedelta(days=1)
        f = Filter(first=last - timedelta(days=args.window - 1), last=last)
        print(f"window {f.first} .. {f.last}; p50/p95 ms after one warm-up")
        print("| dashboard | ours p50 / p95 ms | naive p50 / p95 ms | ratio (p95) |")
        print("|---|---|---|---|")
        for name, (ours, naive) in CASES.items():
            t_ours, _ = _time(sessions, ours, f, args.runs)
            t_naive, _ = _time(sessions, naive, f, args.naive_runs)
            ratio = _p(t_naive, 95) / _p(t_ours, 95) if _p(t_ours, 95) else float("nan")
            print(
                f"| {name} | {_p(t_ours, 50):.1f} / {_p(t_ours, 95):.1f} ({args.runs} runs) | {_p(t_naive, 50):.1f} / {_p(t_naive, 95):.1f} ({args.naive_runs} runs) | {ratio:.1f}x |",
                flush=True,
            )
        engine.dispose()


if __name__ == "__main__":
    main()
