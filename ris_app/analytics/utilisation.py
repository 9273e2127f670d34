"""Room utilisation: open minutes (the station's weekly hours, less its blocks), booked
minutes (steps on it, but cancelled ones) and used minutes (MPPS start to end, else
first to last image), per room and per hour of the week in the site's time.

A step books [start, end) on its station (frontdesk.booking); one without an end books
its start only. Everything is clipped to the chosen days.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter, by_ids
from ris_app.clock import from_site, to_site
from ris_app.db import UtcDateTime
from ris_app.model import (
    PerformedProcedureStep,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationBlock,
    StationHours,
    Study,
)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Interval = tuple[datetime, datetime]


def _minus(spans: list[Interval], cut: list[Interval]) -> list[Interval]:
    """`spans` less every interval of `cut`."""
    out = spans
    for c0, c1 in cut:
        nxt: list[Interval] = []
        for s0, s1 in out:
            if c1 <= s0 or c0 >= s1:
                nxt.append((s0, s1))
                continue
            if s0 < c0:
                nxt.append((s0, c0))
            if c1 < s1:
                nxt.append((c1, s1))
        out = nxt
    return out


def spread(start: datetime, end: datetime, into: dict[tuple[int, int], float]) -> float:
    """Add the minutes of [start, end) to `into` by site (weekday, hour); returns them."""
    total, at = 0.0, start
    while at < end:
        local = to_site(at)
        next_hour = from_site(local.replace(minute=0, second=0, microsecond=0, tzinfo=None) + timedelta(hours=1))
        upto = min(end, next_hour if next_hour > at else at + timedelta(hours=1))
        m = (upto - at).total_seconds() / 60.0
        into[(local.weekday(), local.hour)] += m
        total += m
        at = upto
    return total


def open_spans(
    session: Session, station_ids: list[int], f: Filter, *, less_blocks: bool = True
) -> dict[int, list[Interval]]:
    """Per station: its open time over the filter's days (UTC intervals), blocks removed
    (unless `less_blocks` is false: the hours as planned week by week)."""
    hours: dict[int, list[StationHours]] = defaultdict(list)
    for h in session.scalars(select(StationHours).where(StationHours.station_id.in_(station_ids))):
        hours[h.station_id].append(h)
    blocks: dict[int, list[Interval]] = defaultdict(list)
    for b in session.scalars(
        select(StationBlock).where(
            StationBlock.station_id.in_(station_ids),
            StationBlock.start_datetime < f.end,
            StationBlock.end_datetime > f.start,
        )
    ):
        blocks[b.station_id].append((b.start_datetime, b.end_datetime))
    out: dict[int, list[Interval]] = {}
    for sid in station_ids:
        spans = [
            (from_site(datetime.combine(day, h.opens)), from_site(datetime.combine(day, h.closes)))
            for day in f.days()
            for h in hours[sid]
            if h.weekday == day.weekday()
        ]
        out[sid] = _minus(spans, blocks[sid]) if less_blocks else spans
    return out


def _stations(session: Session, f: Filter) -> list[Station]:
    q = select(Station).order_by(Station.aet)
    if f.station_aet:
        q = q.where(Station.aet == f.station_aet)
    if f.modality:
        q = q.where(Station.modality == f.modality)
    return list(session.scalars(q))


def mpps_span(ids):
    """Per step: its MPPS start and end."""
    p, t = PerformedProcedureStep, UtcDateTime
    return (
        select(p.step_id, type_coerce(func.min(p.started_at), t), type_coerce(func.max(p.ended_at), t))
        .where(p.step_id.in_(ids))
        .group_by(p.step_id)
    )


def image_span(ids):
    """Per order: its first and last image."""
    t = UtcDateTime
    return (
        select(
            Study.order_id,
            type_coerce(func.min(Study.first_received_at), t),
            type_coerce(func.max(Study.last_received_at), t),
        )
        .where(Study.order_id.in_(ids))
        .group_by(Study.order_id)
    )


def _steps(session: Session, aets: list[str], f: Filter):
    rows = session.execute(
        select(
            ScheduledProcedureStep.id,
            ScheduledProcedureStep.station_aet,
            ScheduledProcedureStep.start_datetime,
            ScheduledProcedureStep.end_datetime,
            RequestedProcedure.order_id,
        )
        .join(RequestedProcedure, RequestedProcedure.id == ScheduledProcedureStep.requested_procedure_id)
        .where(
            ScheduledProcedureStep.station_aet.in_(aets),
            ScheduledProcedureStep.start_datetime >= f.start,
            ScheduledProcedureStep.start_datetime < f.end,
            ScheduledProcedureStep.status != "CANCELED",
        )
    ).all()
    # Their MPPS and images by the ids just read (index lookups, as in turnaround).
    mpps = by_ids(session, [r[0] for r in rows], mpps_span)
    images = by_ids(session, sorted({r[4] for r in rows}), image_span)
    return rows, mpps, images


def _clip(span: tuple[datetime | None, datetime | None], f: Filter) -> Interval | None:
    s, e = span
    if s is None or e is None:
        return None
    s, e = max(s, f.start), min(e, f.end)
    return (s, e) if e > s else None


def utilisation(session: Session, f: Filter) -> dict:
    """Per room and per hour of the week: open, booked and used minutes."""
    stations = _stations(session, f)
    by_aet = {s.aet: s for s in stations}
    spans = open_spans(session, [s.id for s in stations], f)
    rows, mpps, images = _steps(session, list(by_aet), f) if stations else ([], {}, {})
    kinds = ("open", "booked", "used")
    grid = {k: defaultdict(float) for k in kinds}
    rooms = {s.aet: dict.fromkeys(kinds, 0.0) for s in stations}
    for s in stations:
        for a, b in spans[s.id]:
            rooms[s.aet]["open"] += spread(a, b, grid["open"])
    for step_id, aet, start, end, order_id in rows:
        booked = _clip((start, end or start), f)
        if booked:
            rooms[aet]["booked"] += spread(*booked, grid["booked"])
        used = _clip(mpps.get(step_id) or images.get(order_id) or (None, None), f)
        if used:
            rooms[aet]["used"] += spread(*used, grid["used"])

    def pct(part: float, whole: float) -> float | None:
        return round(100.0 * part / whole, 1) if whole else None

    room_rows = [
        {
            "station_aet": aet,
            "modality": by_aet[aet].modality,
            **{f"{k}_minutes": round(v, 1) for k, v in m.items()},
            "booked_pct": pct(m["booked"], m["open"]),
            "used_pct": pct(m["used"], m["open"]),
        }
        for aet, m in rooms.items()
    ]
    hours = [
        {
            "weekday": WEEKDAYS[d],
            "hour": h,
            **{f"{k}_minutes": round(grid[k][(d, h)], 1) for k in kinds},
            "booked_pct": pct(grid["booked"][(d, h)], grid["open"][(d, h)]),
            "used_pct": pct(grid["used"][(d, h)], grid["open"][(d, h)]),
        }
        for d in range(7)
        for h in range(24)
        if any(grid[k][(d, h)] for k in kinds)
    ]
    return {"from": f.first.isoformat(), "to": f.last.isoformat(), "rooms": room_rows, "hours": hours}
