#!/usr/bin/env python3
"""Free-slot benchmark: a week for ten rooms over 100,000 booked steps, ours
(frontdesk.availability.free_slots: four indexed queries for the whole range) against a
naive reference in the same process (one overlap query per candidate slot, as a first
implementation would ask "is 08:15 free on CT3?"). Both answers are compared: they must
be the same slots. Prints p50/p95 of each and the ratio.

The database is a migrated SQLite file in a temporary folder, or PostgreSQL when
ORTHANC_RIS_TEST_DATABASE_URL names one (scripts/with-postgres.sh). Steps are written
in bulk (no worklist items: the query never reads them); rooms are open 07:00-19:00
every day in Europe/Paris, 10,000 steps each spread over 300 days, one in five canceled,
one block a day per room.

    .venv/bin/python bench/availability.py [--steps 100000] [--repeat 15]
    scripts/with-postgres.sh .venv/bin/python bench/availability.py
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from ris_app import clock
from ris_app.clock import from_site
from ris_app.db import make_engine, make_sessionmaker
from ris_app.frontdesk.availability import Slot, able_stations, free_slots, opening_intervals
from ris_app.model import (
    Order,
    Patient,
    ProcedureCode,
    RequestedProcedure,
    Station,
    StationBlock,
    StationHours,
)
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.ops import migrate
from ris_app.scheduling.catalog import seed_default_catalog
from tests.conftest import _reset_postgres

ZONE = "Europe/Paris"
ROOMS = 10
FIRST_DAY = date(2027, 1, 1)
SPAN_DAYS = 300
WEEK = date(2027, 5, 3)  # a Monday in the middle of the bookings, after the clocks changed
OPEN, CLOSE = 7, 19


def seed(sessions, steps: int, rng: random.Random) -> None:
    with sessions.begin() as s:
        seed_default_catalog(s)
        s.flush()
        head = s.scalar(select(ProcedureCode).where(ProcedureCode.code == "CTHEAD"))
        s.add(Patient(id=1, mrn="BENCH", family_name="Bench"))
        for n in range(ROOMS):
            s.add(Station(id=n + 1, aet=f"CT{n + 1}", modality="CT"))
        s.flush()
        s.execute(
            insert(StationHours),
            [
                {
                    "station_id": n + 1,
                    "weekday": d,
                    "opens": datetime.min.time().replace(hour=OPEN),
                    "closes": datetime.min.time().replace(hour=CLOSE),
                }
                for n in range(ROOMS)
                for d in range(7)
            ],
        )
        s.execute(
            insert(StationBlock),
            [
                {
                    "station_id": n + 1,
                    "start_datetime": from_site(
                        datetime.combine(FIRST_DAY + timedelta(days=d), datetime.min.time().replace(hour=12))
                    ),
                    "end_datetime": from_site(
                        datetime.combine(FIRST_DAY + timedelta(days=d), datetime.min.time().replace(hour=12, minute=30))
                    ),
                    "kind": "blocked",
                    "reason": "lunch",
                }
                for n in range(ROOMS)
                for d in range(SPAN_DAYS)
            ],
        )
        orders, rps, sps = [], [], []
        for i in range(1, steps + 1):
            room = i % ROOMS + 1
            day = FIRST_DAY + timedelta(days=rng.randrange(SPAN_DAYS))
            slot = rng.randrange((CLOSE - OPEN) * 4)  # quarter hours
            start = from_site(datetime.combine(day, datetime.min.time()) + timedelta(hours=OPEN, minutes=15 * slot))
            orders.append({"id": i, "accession_number": f"B{i:08d}", "patient_id": 1})
            rps.append(
                {
                    "id": i,
                    "order_id": i,
                    "requested_procedure_id": f"B{i:08d}",
                    "procedure_code_id": head.id,
                    "study_instance_uid": f"2.25.{i}",
                }
            )
            sps.append(
                {
                    "id": i,
                    "requested_procedure_id": i,
                    "sps_id": f"S{i:08d}",
                    "modality": "CT",
                    "station_aet": f"CT{room}",
                    "start_datetime": start,
                    "end_datetime": start + timedelta(minutes=15),
                    "status": "CANCELED" if rng.random() < 0.2 else "SCHEDULED",
                }
            )
        for model, rows in ((Order, orders), (RequestedProcedure, rps), (SPS, sps)):
            for k in range(0, len(rows), 5000):
                s.execute(insert(model), rows[k : k + 5000])


def naive_slots(session, first: date, days: int, code: str) -> list[Slot]:
    """The reference: every candidate slot asked of the database on its own."""
    procedure = session.scalar(select(ProcedureCode).where(ProcedureCode.code == code))
    zone = clock.site_zone()
    out = []
    for station, minutes in able_stations(session, procedure).items():
        hours = list(session.scalars(select(StationHours).where(StationHours.station_id == station.id)))
        length = timedelta(minutes=minutes)
        for lo, hi in opening_intervals(hours, first, days, zone):
            at = lo
            while at + length <= hi:
                end = at + length
                step = session.scalar(
                    select(SPS.end_datetime)
                    .where(
                        SPS.station_aet == station.aet,
                        SPS.status != "CANCELED",
                        SPS.start_datetime < end,
                        SPS.end_datetime > at,
                    )
                    .order_by(SPS.end_datetime.desc())
                    .limit(1)
                )
                block = session.scalar(
                    select(StationBlock.end_datetime)
                    .where(
                        StationBlock.station_id == station.id,
                        StationBlock.start_datetime < end,
                        StationBlock.end_datetime > at,
                    )
                    .order_by(StationBlock.end_datetime.desc())
                    .limit(1)
                )
                busy_until = max([t for t in (step, block) if t is not None], default=None)
                if busy_until is None:
                    out.append(Slot(at, end, station.aet))
                    at = end
                else:
                    at = busy_until
    return sorted(out, key=lambda s: (s.start, s.station_aet))


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat + 1):  # one warm-up
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times[1:], result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--naive-repeat", type=int, default=3)
    args = ap.parse_args()
    clock.set_site_zone(ZONE)
    url = os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        if url:
            _reset_postgres(url)
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        t0 = time.perf_counter()
        seed(sessions, args.steps, random.Random(15))
        loaded = time.perf_counter() - t0
        with sessions() as s:
            ours_t, ours = timed(lambda: free_slots(s, WEEK, "CTHEAD", days=7), args.repeat)
            naive_t, naive = timed(lambda: naive_slots(s, WEEK, 7, "CTHEAD"), args.naive_repeat)
        engine.dispose()
    assert ours == naive, "the two answers differ"
    p = lambda xs, q: statistics.quantiles(xs, n=20)[18] if len(xs) > 1 and q == 95 else statistics.median(xs)  # noqa: E731
    database = "PostgreSQL" if os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL") else "SQLite"
    print(f"database: {database}; {args.steps:,} booked steps, {ROOMS} rooms, loaded in {loaded:.1f} s")
    print(f"a week for {ROOMS} rooms: {len(ours):,} free slots (both answers equal)")
    print("| | p50 ms | p95 ms | runs |")
    print("|---|---|---|---|")
    print(f"| free_slots (ours) | {p(ours_t, 50):.1f} | {p(ours_t, 95):.1f} | {len(ours_t)} |")
    print(f"| naive: a query per candidate slot | {p(naive_t, 50):.1f} | {p(naive_t, 95):.1f} | {len(naive_t)} |")
    print(f"ratio (naive p50 / ours p50): {p(naive_t, 50) / p(ours_t, 50):.1f}x")


if __name__ == "__main__":
    main()
