"""Learned exam durations: per procedure and room, the minutes exams actually took (MPPS
start to end, else first to last image) as median and 80th percentile, beside the
planned duration (the room's own for the procedure, else the catalog's), with a proposed
catalog duration: the 80th percentile rounded up to ROUND_TO minutes, so four exams in
five fit their slot. Proposed only with MIN_EXAMS exams or more."""

from __future__ import annotations

import math
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter, by_ids, minutes, percentile
from ris_app.analytics.utilisation import image_span, mpps_span
from ris_app.frontdesk.resources import find_procedure, update_procedure
from ris_app.model import (
    ProcedureCode,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationProcedure,
)

MIN_EXAMS = 10
ROUND_TO = 5


def _proposal(p80: float | None, count: int, planned: int) -> int | None:
    if p80 is None or count < MIN_EXAMS:
        return None
    proposed = max(ROUND_TO, math.ceil(p80 / ROUND_TO) * ROUND_TO)
    return proposed if proposed != planned else None


def durations(session: Session, f: Filter) -> dict:
    q = (
        select(
            ProcedureCode.code,
            ScheduledProcedureStep.station_aet,
            ScheduledProcedureStep.id,
            RequestedProcedure.order_id,
            ScheduledProcedureStep.status,
        )
        .join(RequestedProcedure, RequestedProcedure.id == ScheduledProcedureStep.requested_procedure_id)
        .join(ProcedureCode, ProcedureCode.id == RequestedProcedure.procedure_code_id)
        .where(
            ScheduledProcedureStep.start_datetime >= f.start,
            ScheduledProcedureStep.start_datetime < f.end,
            # COMPLETED is kept below, in Python: said in SQL, SQLite (without ANALYZE)
            # walks the status index, every completed step ever, instead of the days.
        )
    )
    if f.modality:
        q = q.where(ScheduledProcedureStep.modality == f.modality)
    if f.station_aet:
        q = q.where(ScheduledProcedureStep.station_aet == f.station_aet)
    steps = [r for r in session.execute(q) if r[4] == "COMPLETED"]
    # Their MPPS and images by the ids just read (index lookups, as in turnaround).
    mpps = by_ids(session, [r[2] for r in steps], mpps_span)
    images = by_ids(session, sorted({r[3] for r in steps}), image_span)
    taken: dict[tuple[str, str], list[float]] = defaultdict(list)
    for code, aet, step_id, order_id, _ in steps:
        s, e = mpps.get(step_id, (None, None))
        d = minutes(s, e) if s is not None and e is not None else minutes(*images.get(order_id, (None, None)))
        if d is not None:
            taken[(code, aet)].append(d)
    catalog = {p.code: p for p in session.scalars(select(ProcedureCode))}
    room_minutes = {
        (code, aet): m
        for code, aet, m in session.execute(
            select(ProcedureCode.code, Station.aet, StationProcedure.duration_minutes)
            .join(StationProcedure, StationProcedure.procedure_code_id == ProcedureCode.id)
            .join(Station, Station.id == StationProcedure.station_id)
        )
        if m is not None
    }
    rows = []
    for (code, aet), values in sorted(taken.items()):
        proc = catalog[code]
        planned = room_minutes.get((code, aet), proc.default_duration_minutes)
        median, p80 = percentile(values, 50), percentile(values, 80)
        rows.append(
            {
                "procedure_code": code,
                "description": proc.description,
                "station_aet": aet,
                "exams": len(values),
                "median": round(median, 1),
                "p80": round(p80, 1),
                "planned": planned,
                "catalog": proc.default_duration_minutes,
                "proposed": _proposal(p80, len(values), proc.default_duration_minutes),
            }
        )
    return {"from": f.first.isoformat(), "to": f.last.isoformat(), "durations": rows}


def adopt(session: Session, code: str, minutes_: int) -> ProcedureCode:
    """Set the catalog's duration of `code` (the one-click proposal): the scheduler's
    next slots and bookings use it (frontdesk.resources.update_procedure)."""
    return update_procedure(find_procedure(session, code), minutes=minutes_)
