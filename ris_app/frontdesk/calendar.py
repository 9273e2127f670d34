"""The front desk's calendar as data: columns (a room on a day) holding the opening hours,
the blocked time, the booked exams and the free slots, each placed in minutes of the
site's wall clock, for the pages to draw. No HTML here, no Flask.

A day of several rooms and a week of one room are the same thing: a list of (station,
day) columns, filled by one pass of queries for the whole range (steps, blocks, hours,
then the free slots of `availability.free_slots`). Exams that overlap in a column share
its width side by side (lanes), so a clash is seen, not hidden under the other block.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds, site_zone, to_site, utcnow
from ris_app.frontdesk.availability import able_stations, free_slots, opening_intervals
from ris_app.frontdesk.booking import blocks_query, primary_aet
from ris_app.model import ProcedureCode, Station, StationHours, StationProcedure
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.scheduling.schedule import steps_with_order_and_patient
from ris_app.scheduling.states import SPSStatus

DAY_MINUTES = 24 * 60
# The part of the day drawn when nothing happens earlier or later.
DEFAULT_FIRST, DEFAULT_LAST = 7 * 60, 19 * 60
# Steps the calendar leaves out: a canceled exam holds no time and nobody comes.
HIDDEN = (SPSStatus.CANCELED,)


@dataclass
class Span:
    """A stretch of a column in site minutes since its midnight: opening hours, a block,
    a free slot (`at`: its UTC start, for the link that books it)."""

    start_min: int
    end_min: int
    label: str = ""
    at: datetime | None = None


@dataclass
class Item:
    """A booked exam in a column."""

    step: SPS
    start_min: int
    end_min: int
    out_of_hours: bool = False
    lane: int = 0
    lanes: int = 1

    @property
    def flag(self) -> str:
        """The booking flag: clash (accepted on taken time, for the desk), overbook (on
        purpose by an allowed role), or empty."""
        return self.step.booking_flag


@dataclass
class Column:
    station: Station
    day: date
    booked: bool  # the station has opening hours: under booking rules, offers slots
    procedure_code: str = ""  # the procedure its free slots are for
    hours: list[Span] = field(default_factory=list)
    blocks: list[Span] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    slots: list[Span] = field(default_factory=list)


@dataclass
class Grid:
    columns: list[Column]
    first_min: int  # the drawn part of the day, whole hours
    last_min: int

    @property
    def hour_marks(self) -> list[int]:
        return list(range(self.first_min, self.last_min + 1, 60))


def _minutes(at: datetime, day: date) -> int:
    """`at` as site wall-clock minutes since `day`'s midnight, kept within the day."""
    local = to_site(at)
    if local.date() < day:
        return 0
    if local.date() > day:
        return DAY_MINUTES
    return local.hour * 60 + local.minute


def default_procedures(session: Session, stations: list[Station]) -> dict[int, str]:
    """The procedure each station offers slots for when the desk names none: the first it
    lists, else the first of its modality in the catalog."""
    listed: dict[int, str] = {}
    rows = session.execute(
        select(StationProcedure.station_id, ProcedureCode.code)
        .join(ProcedureCode, ProcedureCode.id == StationProcedure.procedure_code_id)
        .order_by(ProcedureCode.code)
    )
    for station_id, code in rows:
        listed.setdefault(station_id, code)
    by_modality: dict[str, str] = {}
    for code, modality in session.execute(
        select(ProcedureCode.code, ProcedureCode.modality).order_by(ProcedureCode.code)
    ):
        by_modality.setdefault(modality, code)
    return {st.id: listed.get(st.id) or by_modality.get(st.modality, "") for st in stations}


def build(
    session: Session, stations: list[Station], days: list[date], *, procedure_code: str = "", by_day: bool = False
) -> Grid:
    """Columns for every station on every day: station by station, each over the days
    (a day of rooms), or day by day (`by_day`: a week of one room)."""
    first, last = min(days), max(days)
    start, _ = site_day_bounds(first)
    _, end = site_day_bounds(last)
    zone = site_zone()
    ids = [st.id for st in stations]
    hours: dict[int, list[StationHours]] = defaultdict(list)
    for h in session.scalars(select(StationHours).where(StationHours.station_id.in_(ids))):
        hours[h.station_id].append(h)
    columns: dict[tuple[int, date], Column] = {}
    for st in stations:
        for day in days:
            col = Column(st, day, booked=bool(hours[st.id]))
            col.hours = [
                Span(_minutes(lo, day), _minutes(hi, day)) for lo, hi in opening_intervals(hours[st.id], day, 1, zone)
            ]
            columns[st.id, day] = col
    by_aet = {st.aet: st for st in stations}
    _place_steps(session, columns, by_aet, hours, start, end)
    for block in session.scalars(blocks_query(ids, start, end)):
        for day in days:
            lo, hi = site_day_bounds(day)
            if block.start_datetime < hi and block.end_datetime > lo:
                label = f"{block.kind}: {block.reason}" if block.reason else block.kind
                columns[block.station_id, day].blocks.append(
                    Span(_minutes(block.start_datetime, day), _minutes(block.end_datetime, day), label)
                )
    _place_slots(session, columns, stations, days, procedure_code)
    ordered = (
        [columns[st.id, d] for d in days for st in stations]
        if by_day
        else [columns[st.id, d] for st in stations for d in days]
    )
    marks = [m for c in ordered for s in (*c.hours, *c.items) for m in (s.start_min, s.end_min)]
    lo = min([DEFAULT_FIRST, *marks]) // 60 * 60
    hi = min(DAY_MINUTES, -(-max([DEFAULT_LAST, *marks]) // 60) * 60)
    return Grid(ordered, lo, hi)


def _place_steps(session, columns, by_aet, hours, start: datetime, end: datetime) -> None:
    stmt = steps_with_order_and_patient().where(
        SPS.start_datetime >= start,
        SPS.start_datetime < end,
        SPS.status.not_in(list(HIDDEN)),
        or_(SPS.station_aet.in_(list(by_aet)), SPS.station_aet.contains("\\", autoescape=True)),
    )
    zone = site_zone()
    for step in session.scalars(stmt.order_by(SPS.start_datetime, SPS.id)):
        station = by_aet.get(primary_aet(step.station_aet))
        if station is None:
            continue
        day = to_site(step.start_datetime).date()
        col = columns.get((station.id, day))
        if col is None:
            continue
        step_end = step.end_datetime or step.start_datetime + timedelta(minutes=15)
        open_at = opening_intervals(hours[station.id], day - timedelta(days=1), 3, zone)
        inside = any(lo <= step.start_datetime and step_end <= hi for lo, hi in open_at)
        col.items.append(
            Item(
                step,
                _minutes(step.start_datetime, day),
                max(_minutes(step_end, day), _minutes(step.start_datetime, day) + 10),
                out_of_hours=col.booked and not inside,
            )
        )
    for col in columns.values():
        _lanes(col.items)


def _lanes(items: list[Item]) -> None:
    """Overlapping items side by side: a cluster of items overlapping one another shares
    the column's width, each item in the first lane free at its start."""
    cluster: list[Item] = []
    cluster_end = -1
    lane_ends: list[int] = []
    for item in sorted(items, key=lambda i: (i.start_min, i.end_min)):
        if cluster and item.start_min >= cluster_end:
            for done in cluster:
                done.lanes = len(lane_ends)
            cluster, lane_ends = [], []
        free = [n for n, e in enumerate(lane_ends) if e <= item.start_min]
        item.lane = free[0] if free else len(lane_ends)
        if free:
            lane_ends[item.lane] = item.end_min
        else:
            lane_ends.append(item.end_min)
        cluster.append(item)
        cluster_end = max(cluster_end, item.end_min)
    for done in cluster:
        done.lanes = len(lane_ends)


def _place_slots(session, columns, stations: list[Station], days: list[date], procedure_code: str) -> None:
    """Free slots from today on, for `procedure_code` or each station's default."""
    now = utcnow()
    defaults = default_procedures(session, stations)
    wanted = None
    if procedure_code:
        procedure = session.scalar(select(ProcedureCode).where(ProcedureCode.code == procedure_code))
        wanted = {st.aet for st in able_stations(session, procedure)} if procedure else set()
    for st in stations:
        code = procedure_code or defaults.get(st.id, "")
        if not code or (wanted is not None and st.aet not in wanted) or not columns[st.id, days[0]].booked:
            continue
        for day in days:
            columns[st.id, day].procedure_code = code
        for slot in free_slots(session, min(days), code, days=len(days), station_aet=st.aet):
            if slot.start < now:
                continue
            day = to_site(slot.start).date()
            if (st.id, day) in columns:
                label = f"{to_site(slot.start):%H:%M}"
                columns[st.id, day].slots.append(
                    Span(_minutes(slot.start, day), _minutes(slot.end, day), label, slot.start)
                )


def week_of(day: date) -> list[date]:
    """The seven days, Monday first, of the week holding `day`."""
    monday = day - timedelta(days=day.weekday())
    return [monday + timedelta(days=n) for n in range(7)]
