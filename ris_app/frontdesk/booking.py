"""The booking rule: a station's time is taken once. One function, `book`, is told by
every path that places or moves a step (the API, the pages, HL7, the worklist import,
a reschedule); only the caller's policy differs.

A station is under booking rules once it has opening hours. Stations without any (every
station before this existed, scanners nobody schedules) take every order at any time,
overlaps included, as before. Outside opening hours is not a clash: the STAT CT at 3 am
is accepted (see `availability.out_of_hours`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ris_app.clock import to_site
from ris_app.db import lock_row
from ris_app.errors import Conflict
from ris_app.model import (
    Order,
    ProcedureCode,
    RequestedProcedure,
    Station,
    StationBlock,
    StationHours,
    StationProcedure,
)
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.scheduling.states import SPSStatus

DEFAULT_MINUTES = 15  # a step without a procedure code (HL7 free text, an imported item)
MAX_MINUTES = 24 * 60  # no step or duration is longer: range queries look back this far
# Steps that no longer hold their time (a no-show's slot is over, or is free for the next).
FREE_STATUSES = (SPSStatus.CANCELED, SPSStatus.NO_SHOW)


class ClashPolicy(StrEnum):
    REFUSE = "refuse"  # people at the desk and integrators: 409, they choose another time
    FLAG = "flag"  # HL7 and imports: accepted, flagged "clash" for the front desk
    OVERBOOK = "overbook"  # an allowed role on purpose: accepted, flagged "overbook"


class SlotTaken(Conflict):
    """The time asked for is taken on that station (HTTP 409, HL7 application error)."""

    def __init__(self, what: str) -> None:
        super().__init__(what, field="scheduled_start", code="slot_taken")


def primary_aet(station_aet: str) -> str:
    """The station a step books: the first of its AE titles."""
    return station_aet.split("\\")[0] if station_aet else ""


def scheduled_station(session: Session, station_aet: str) -> Station | None:
    """The station `station_aet` books when it is under booking rules (has opening hours)."""
    aet = primary_aet(station_aet)
    if not aet:
        return None
    station = session.scalar(select(Station).where(Station.aet == aet))
    if station is None:
        return None
    has_hours = session.scalar(select(StationHours.id).where(StationHours.station_id == station.id).limit(1))
    return station if has_hours is not None else None


def step_minutes(session: Session, procedure: ProcedureCode | None, station_aet: str) -> int:
    """How long a procedure takes on a station: the station's own duration when it has
    one, else the catalog's, else DEFAULT_MINUTES."""
    if procedure is None:
        return DEFAULT_MINUTES
    aet = primary_aet(station_aet)
    if aet:
        own = session.scalar(
            select(StationProcedure.duration_minutes)
            .join(Station, Station.id == StationProcedure.station_id)
            .where(Station.aet == aet, StationProcedure.procedure_code_id == procedure.id)
        )
        if own:
            return own
    return procedure.default_duration_minutes or DEFAULT_MINUTES


def busy_steps_query(aets: Iterable[str], start: datetime, end: datetime):
    """Steps holding time on any of `aets` within [start, end): one indexed range scan on
    (station_aet, start_datetime), bounded below by the longest a step can last. Steps
    with several AE titles are few; they are fetched too and matched by the caller
    (`holds`)."""
    aets = list(aets)
    return (
        select(SPS.id, SPS.station_aet, SPS.start_datetime, SPS.end_datetime, Order.accession_number)
        .join(RequestedProcedure, RequestedProcedure.id == SPS.requested_procedure_id)
        .join(Order, Order.id == RequestedProcedure.order_id)
        .where(
            or_(SPS.station_aet.in_(aets), SPS.station_aet.contains("\\", autoescape=True)),
            SPS.start_datetime < end,
            SPS.start_datetime >= start - timedelta(minutes=MAX_MINUTES),
            SPS.end_datetime > start,
            SPS.status.not_in(list(FREE_STATUSES)),
        )
    )


def holds(station_aet: str, aet: str) -> bool:
    """Whether a step's AE titles book station `aet` (its first one does)."""
    return primary_aet(station_aet) == aet


def blocks_query(station_ids: Iterable[int], start: datetime, end: datetime):
    """Blocks of those stations overlapping [start, end)."""
    return select(StationBlock).where(
        StationBlock.station_id.in_(list(station_ids)),
        and_(StationBlock.start_datetime < end, StationBlock.end_datetime > start),
    )


def _site_span(start: datetime, end: datetime) -> str:
    a, b = to_site(start), to_site(end)
    return f"{a:%Y-%m-%d %H:%M}-{b:%H:%M}"


def find_clash(
    session: Session, station: Station, start: datetime, end: datetime, *, exclude_step_id: int | None = None
) -> tuple[str, str] | None:
    """What takes [start, end) on `station` already: (message naming it, accession number
    or ""), or None when the time is free."""
    with session.no_autoflush:  # the step being booked may be pending: it is no clash of its own
        for row in session.execute(busy_steps_query([station.aet], start, end).order_by(SPS.start_datetime)):
            if row.id != exclude_step_id and holds(row.station_aet, station.aet):
                span = _site_span(row.start_datetime, row.end_datetime)
                return f"{station.aet} is booked {span} by order {row.accession_number}", row.accession_number
        block = session.scalars(blocks_query([station.id], start, end).order_by(StationBlock.start_datetime)).first()
    if block is not None:
        reason = f": {block.reason}" if block.reason else ""
        span = _site_span(block.start_datetime, block.end_datetime)
        return f"{station.aet} is closed {span} ({block.kind}{reason})", ""
    return None


def book(session: Session, step: SPS, procedure: ProcedureCode | None, policy: ClashPolicy) -> None:
    """Give `step` its booked end and apply the one rule: on a station under booking rules,
    time already taken (another step, a block) is refused (SlotTaken), flagged "clash" or
    recorded as an "overbook", by `policy`. The station row is locked first (SELECT ... FOR
    UPDATE on PostgreSQL; SQLite's writer holds the database), so two bookings of one slot
    at once are checked one after the other and cannot both take it."""
    step.end_datetime = step.start_datetime + timedelta(minutes=step_minutes(session, procedure, step.station_aet))
    step.booking_flag = step.booking_clash_with = ""
    station = scheduled_station(session, step.station_aet)
    if station is None:
        return
    lock_row(session, station)
    clash = find_clash(session, station, step.start_datetime, step.end_datetime, exclude_step_id=step.id)
    if clash is None:
        return
    message, accession = clash
    if policy is ClashPolicy.REFUSE:
        raise SlotTaken(message)
    step.booking_flag = "clash" if policy is ClashPolicy.FLAG else "overbook"
    step.booking_clash_with = accession
