"""Free slots: the times inside a station's opening hours, not taken by a booked step or a
block, each as long as the procedure takes there.

A range of days for many stations costs four queries whatever its size (stations and
their procedures, opening hours, blocks, booked steps: each one indexed range scan);
the rest is interval arithmetic in Python on what they return. Opening hours are site
wall-clock times: each day's are turned into UTC instants with that day's offset, so a
department open 08:00-16:00 is open 08:00-16:00 on the days the clocks change too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import from_site, site_day_bounds, site_zone, to_site
from ris_app.errors import Invalid, NotFound
from ris_app.frontdesk.booking import DEFAULT_MINUTES, blocks_query, busy_steps_query, holds
from ris_app.model import ProcedureCode, Station, StationHours, StationProcedure

MAX_DAYS = 31


@dataclass(frozen=True)
class Slot:
    start: datetime  # aware UTC
    end: datetime
    station_aet: str


def able_stations(session: Session, procedure: ProcedureCode, station_aet: str = "") -> dict[Station, int]:
    """The stations that do `procedure` (listed for it, or listing nothing and of its
    modality), each with the procedure's minutes there. `station_aet`: only that one."""
    stmt = select(Station, StationProcedure.procedure_code_id, StationProcedure.duration_minutes).outerjoin(
        StationProcedure, StationProcedure.station_id == Station.id
    )
    if station_aet:
        stmt = stmt.where(Station.aet == station_aet)
    listed: dict[Station, list[tuple[int, int | None]]] = {}
    for station, code_id, minutes in session.execute(stmt):
        pairs = listed.setdefault(station, [])  # a station listing nothing is kept, with no pairs
        if code_id is not None:
            pairs.append((code_id, minutes))
    default = procedure.default_duration_minutes or DEFAULT_MINUTES
    able: dict[Station, int] = {}
    for station, pairs in listed.items():
        if not pairs:
            if station.modality == procedure.modality:
                able[station] = default
        else:
            own = next((m for code_id, m in pairs if code_id == procedure.id), 0)
            if any(code_id == procedure.id for code_id, _ in pairs):
                able[station] = own or default
    return able


def _subtract(free: list[tuple[datetime, datetime]], busy: list[tuple[datetime, datetime]]):
    """`free` intervals minus `busy` ones (both sorted by start)."""
    out = []
    for lo, hi in free:
        cur = lo
        for b_lo, b_hi in busy:
            if b_hi <= cur or b_lo >= hi:
                continue
            if b_lo > cur:
                out.append((cur, b_lo))
            cur = max(cur, b_hi)
            if cur >= hi:
                break
        if cur < hi:
            out.append((cur, hi))
    return out


def opening_intervals(
    hours: list[StationHours], first: date, days: int, zone: tzinfo
) -> list[tuple[datetime, datetime]]:
    """A station's opening hours over `days` days from `first`, as UTC instants."""
    out = []
    for n in range(days):
        day = first + timedelta(days=n)
        for h in hours:
            if h.weekday == day.weekday():
                out.append(
                    (from_site(datetime.combine(day, h.opens), zone), from_site(datetime.combine(day, h.closes), zone))
                )
    return sorted(out)


def free_slots(
    session: Session,
    first: date,
    procedure_code: str,
    *,
    days: int = 1,
    station_aet: str = "",
    zone: tzinfo | None = None,
) -> list[Slot]:
    """Free slots for `procedure_code` on `days` site days from `first`, on `station_aet`
    or on every station able to do it, in start order. Slots run back to back from the
    start of each free stretch. Stations without opening hours offer none."""
    if not 1 <= days <= MAX_DAYS:
        raise Invalid(f"from 1 to {MAX_DAYS} days", field="days")
    zone = zone or site_zone()
    procedure = session.scalar(select(ProcedureCode).where(ProcedureCode.code == procedure_code))
    if procedure is None:
        raise NotFound("not in the procedure catalog", field="procedure_code")
    able = able_stations(session, procedure, station_aet)
    if station_aet and not able:
        if session.scalar(select(Station.id).where(Station.aet == station_aet)) is None:
            raise NotFound("no station with this AE title", field="station_aet")
        return []
    by_id = {s.id: s for s in able}
    hours: dict[int, list[StationHours]] = defaultdict(list)
    for h in session.scalars(select(StationHours).where(StationHours.station_id.in_(list(by_id)))):
        hours[h.station_id].append(h)
    if not hours:
        return []
    start, _ = site_day_bounds(first, zone)
    _, end = site_day_bounds(first + timedelta(days=days - 1), zone)
    aets = {by_id[i].aet: i for i in hours}
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in session.execute(busy_steps_query(aets, start, end)):
        for aet, station_id in aets.items():
            if holds(row.station_aet, aet):
                busy[station_id].append((row.start_datetime, row.end_datetime))
    for block in session.scalars(blocks_query(list(hours), start, end)):
        busy[block.station_id].append((block.start_datetime, block.end_datetime))
    slots = []
    for station_id, station_hours in hours.items():
        station = by_id[station_id]
        length = timedelta(minutes=able[station])
        free = _subtract(opening_intervals(station_hours, first, days, zone), sorted(busy[station_id]))
        for lo, hi in free:
            at = lo
            while at + length <= hi:
                slots.append(Slot(at, at + length, station.aet))
                at += length
    return sorted(slots, key=lambda s: (s.start, s.station_aet))


def out_of_hours(session: Session, station_aet: str, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies outside the station's opening hours (accepted, shown as
    such). False for a station without opening hours: it is never closed."""
    station = session.scalar(select(Station).where(Station.aet == station_aet))
    if station is None:
        return False
    hours = list(session.scalars(select(StationHours).where(StationHours.station_id == station.id)))
    if not hours:
        return False
    zone = site_zone()
    first = to_site(start, zone).date() - timedelta(days=1)
    return not any(lo <= start and end <= hi for lo, hi in opening_intervals(hours, first, 3, zone))
