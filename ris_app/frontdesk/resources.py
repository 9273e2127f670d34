"""Editing a station's resources: its name, room and modality, weekly opening hours,
blocks, the procedures it does and their durations; and the procedure catalog (code,
description, modality, duration, preparation text). The rules of each value live here,
for the API and the admin pages alike."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds
from ris_app.errors import Conflict, Invalid, NotFound
from ris_app.frontdesk.booking import MAX_MINUTES
from ris_app.model import BLOCK_KINDS, ProcedureCode, Station, StationBlock, StationHours, StationProcedure
from ris_app.scheduling.fields import LO, SH, check_aet, check_modality, check_text

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
MAX_BLOCK_DAYS = 366
MAX_PREPARATION = 2000


@dataclass(frozen=True)
class Period:
    weekday: int
    opens: time
    closes: time


def find_station(session: Session, aet: str) -> Station:
    station = session.scalar(select(Station).where(Station.aet == aet))
    if station is None:
        raise NotFound("no station with this AE title", field="station_aet")
    return station


def find_procedure(session: Session, code: str, field: str = "procedure_code") -> ProcedureCode:
    procedure = session.scalar(select(ProcedureCode).where(ProcedureCode.code == code))
    if procedure is None:
        raise NotFound("not in the procedure catalog", field=field)
    return procedure


def add_station(
    session: Session,
    aet: str,
    modality: str,
    *,
    name: str = "",
    location: str = "",
    host: str = "",
    port: int | None = None,
    own_steps_only: bool = False,
) -> Station:
    """A new station (scanner or room) with its AE title; host and port when the RIS or
    Orthanc must reach it (Orthanc compares a caller's address with the host as text, so
    it is an IP address, not a name)."""
    aet = aet.strip()
    if "\\" in aet:
        raise Invalid("one AE title per station", field="aet")
    check_aet(aet, "aet")
    if session.scalar(select(Station.id).where(Station.aet == aet)) is not None:
        raise Conflict(f"station {aet} exists already", field="aet", code="exists")
    host = host.strip()
    if host:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise Invalid("must be an IP address (e.g. 10.0.0.21), not a host name", field="host") from None
    if port is not None and not 1 <= port <= 65535:
        raise Invalid("must be a whole number from 1 to 65535", field="port")
    station = Station(aet=aet, host=host, port=port, worklist_own_steps_only=own_steps_only)
    update_station(station, name=name, location=location, modality=modality)
    session.add(station)
    return station


def update_station(
    station: Station, *, name: str | None = None, location: str | None = None, modality: str | None = None
) -> Station:
    """Change what the worklist tells the scanner about the station: ScheduledStationName
    and ScheduledProcedureStepLocation (DICOM SH) and its modality. Steps already booked
    keep the name and room they were booked with until they are next moved."""
    if name is not None:
        station.name = check_text("name", name.strip(), SH)
    if location is not None:
        station.location = check_text("location", location.strip(), SH)
    if modality is not None:
        station.modality = check_modality(modality.strip().upper())
    return station


def check_minutes(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MINUTES:
        raise Invalid(f"must be whole minutes from 1 to {MAX_MINUTES}", field=field)
    return value


def hours_of(session: Session, station: Station) -> list[StationHours]:
    return list(
        session.scalars(
            select(StationHours)
            .where(StationHours.station_id == station.id)
            .order_by(StationHours.weekday, StationHours.opens)
        )
    )


def check_hours(periods: list[Period]) -> None:
    """The rules of a week's periods: each closes after it opens, the same day; periods
    of one day do not overlap."""
    by_day: dict[int, list[Period]] = {}
    for n, p in enumerate(periods):
        if p.closes <= p.opens:
            raise Invalid("a period closes after it opens, the same day", field=f"hours[{n}].closes")
        by_day.setdefault(p.weekday, []).append(p)
    for day, day_periods in by_day.items():
        day_periods.sort(key=lambda p: p.opens)
        for a, b in pairwise(day_periods):
            if b.opens < a.closes:
                raise Invalid(f"periods overlap on {WEEKDAYS[day]}", field="hours")


def set_hours(session: Session, station: Station, periods: list[Period]) -> list[StationHours]:
    """Replace the station's weekly opening hours. Periods of one day must not overlap;
    each closes after it opens, the same day. An empty list takes the station out of the
    booking rules (it then accepts orders at any time)."""
    check_hours(periods)
    session.execute(delete(StationHours).where(StationHours.station_id == station.id))
    for p in periods:
        session.add(StationHours(station_id=station.id, weekday=p.weekday, opens=p.opens, closes=p.closes))
    session.flush()
    return hours_of(session, station)


def add_block(
    session: Session,
    station: Station,
    start: datetime,
    end: datetime,
    *,
    kind: str = "blocked",
    reason: str = "",
    by: str = "",
) -> StationBlock:
    """Close the station over [start, end) (aware UTC). Steps already booked there stay:
    the front desk moves them (they are not cancelled behind its back)."""
    if kind not in BLOCK_KINDS:
        raise Invalid(f"must be one of {', '.join(BLOCK_KINDS)}", field="kind")
    if end <= start:
        raise Invalid("ends after it starts", field="end")
    if end - start > timedelta(days=MAX_BLOCK_DAYS):
        raise Invalid(f"at most {MAX_BLOCK_DAYS} days", field="end")
    block = StationBlock(
        station_id=station.id, start_datetime=start, end_datetime=end, kind=kind, reason=reason, created_by=by
    )
    session.add(block)
    session.flush()
    return block


def whole_days(first: date, last: date) -> tuple[datetime, datetime]:
    """Site days first..last (inclusive) as UTC instants: a holiday is the site's days."""
    if last < first:
        raise Invalid("ends after it starts", field="last_date")
    return site_day_bounds(first)[0], site_day_bounds(last)[1]


def blocks_of(session: Session, station: Station, start: datetime, end: datetime) -> list[StationBlock]:
    return list(
        session.scalars(
            select(StationBlock)
            .where(
                StationBlock.station_id == station.id,
                StationBlock.start_datetime < end,
                StationBlock.end_datetime > start,
            )
            .order_by(StationBlock.start_datetime)
        )
    )


def remove_block(session: Session, station: Station, block_id: int) -> None:
    block = session.get(StationBlock, block_id)
    if block is None or block.station_id != station.id:
        raise NotFound("no such block on this station", field="block_id")
    session.delete(block)
    session.flush()


def procedures_of(session: Session, station: Station) -> list[tuple[ProcedureCode, int | None]]:
    rows = session.execute(
        select(ProcedureCode, StationProcedure.duration_minutes)
        .join(StationProcedure, StationProcedure.procedure_code_id == ProcedureCode.id)
        .where(StationProcedure.station_id == station.id)
        .order_by(ProcedureCode.code)
    )
    return [(p, minutes) for p, minutes in rows]


def set_procedures(
    session: Session, station: Station, pairs: list[tuple[ProcedureCode, int | None]]
) -> list[tuple[ProcedureCode, int | None]]:
    """Replace what the station does: procedures with their minutes there (None: the
    catalog's). An empty list: every procedure of the station's modality."""
    seen: set[int] = set()
    for n, (procedure, minutes) in enumerate(pairs):
        if procedure.id in seen:
            raise Invalid("listed twice", field=f"procedures[{n}].code")
        seen.add(procedure.id)
        if minutes is not None:
            check_minutes(minutes, f"procedures[{n}].duration_minutes")
    session.execute(delete(StationProcedure).where(StationProcedure.station_id == station.id))
    for procedure, minutes in pairs:
        session.add(StationProcedure(station_id=station.id, procedure_code_id=procedure.id, duration_minutes=minutes))
    session.flush()
    return procedures_of(session, station)


def add_procedure(
    session: Session,
    code: str,
    description: str,
    modality: str,
    *,
    coding_scheme: str = "99ORIS",
    minutes: int | None = None,
    preparation: str = "",
) -> ProcedureCode:
    """Add a procedure to the catalog. The code is CodeValue (SH) in every worklist item
    and HL7 message that names the procedure, so it is fixed once added."""
    code = check_text("code", code.strip(), SH)
    if not code:
        raise Invalid("is required", field="code")
    if session.scalar(select(ProcedureCode.id).where(ProcedureCode.code == code)) is not None:
        raise Conflict("is already in the catalog", field="code")
    procedure = ProcedureCode(code=code, coding_scheme=check_text("coding_scheme", coding_scheme, SH))
    update_procedure(procedure, description=description, modality=modality, preparation=preparation)
    procedure.default_duration_minutes = check_minutes(15 if minutes is None else minutes, "default_duration_minutes")
    session.add(procedure)
    session.flush()
    return procedure


def update_procedure(
    procedure: ProcedureCode,
    *,
    minutes: int | None = None,
    preparation: str | None = None,
    description: str | None = None,
    modality: str | None = None,
) -> ProcedureCode:
    """Change a procedure's description (CodeMeaning, LO), modality, catalog duration and
    patient preparation text. Steps already booked keep their length; the next booking
    or move uses the new one."""
    if description is not None:
        procedure.description = check_text("description", description.strip(), LO)
        if not procedure.description:
            raise Invalid("is required", field="description")
    if modality is not None:
        procedure.modality = check_modality(modality.strip().upper())
    if minutes is not None:
        procedure.default_duration_minutes = check_minutes(minutes, "default_duration_minutes")
    if preparation is not None:
        if len(preparation) > MAX_PREPARATION:
            raise Invalid(f"is longer than {MAX_PREPARATION} characters", field="preparation")
        procedure.preparation = preparation.replace("\r\n", "\n")  # a browser's textarea sends CRLF
    return procedure
