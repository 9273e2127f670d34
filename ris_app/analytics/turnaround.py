"""Turnaround per stage of an exam's journey: ordered, scheduled, arrived, started,
images complete, preliminary report, signed report.

Each stage's time is the first time it was recorded: the order's creation, the step's
first history row (scheduled), its first move to ARRIVED and to STARTED (or the MPPS
start when earlier), the study's stable time (else its last image), the original report
version's preliminary and signed times. A stage's duration runs from the latest earlier
stage the exam has (an exam signed without a preliminary counts images -> signed), so
the stages add up to the whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, and_, case, func, select, type_coerce
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter, by_ids, minutes, summary, week_of
from ris_app.db import UtcDateTime
from ris_app.model import (
    Order,
    PerformedProcedureStep,
    Report,
    ReportVersion,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatusChange,
    Study,
)

STAGES = ("ordered", "scheduled", "arrived", "started", "images complete", "preliminary", "signed")
TOTAL = "ordered to signed"
NOT_PERFORMED = ("CANCELED", "NO_SHOW", "DISCONTINUED")


def _first(condition, column):
    return type_coerce(func.min(case((condition, column))), UtcDateTime)


def step_rows(f: Filter) -> Select:
    """One row per step of orders placed in the filter's days, with the order's creation.
    Driven by the index on the orders' creation time (a join with the history and a
    GROUP BY in the same statement led SQLite to scan every step)."""
    q = (
        select(ScheduledProcedureStep.id, Order.id, Order.created_at)
        .join(RequestedProcedure, RequestedProcedure.order_id == Order.id)
        .join(ScheduledProcedureStep, ScheduledProcedureStep.requested_procedure_id == RequestedProcedure.id)
        .where(
            Order.created_at >= f.start, Order.created_at < f.end, ScheduledProcedureStep.status.not_in(NOT_PERFORMED)
        )
    )
    return narrow(q, f)


def narrow(q: Select, f: Filter) -> Select:
    """The filter's modality, room, priority and referrer (q joins step and order)."""
    if f.modality:
        q = q.where(ScheduledProcedureStep.modality == f.modality)
    if f.station_aet:
        q = q.where(ScheduledProcedureStep.station_aet == f.station_aet)
    if f.priority:
        q = q.where(Order.priority == f.priority)
    if f.referring:
        q = q.where(Order.referring_physician == f.referring)
    return q


def _history(ids):
    """Per step: the first times it was scheduled, arrived and started."""
    h = StepStatusChange
    return (
        select(
            h.step_id,
            _first(h.from_status.is_(None), h.changed_at),
            _first(h.to_status == "ARRIVED", h.changed_at),
            _first(h.to_status == "STARTED", h.changed_at),
        )
        .where(h.step_id.in_(ids))
        .group_by(h.step_id)
    )


def _mpps(ids):
    """Per step: the earliest MPPS start."""
    p = PerformedProcedureStep
    return (
        select(p.step_id, type_coerce(func.min(p.started_at), UtcDateTime))
        .where(p.step_id.in_(ids))
        .group_by(p.step_id)
    )


def _later(ids):
    """Per order: images complete, preliminary, signed."""
    return (
        select(
            Study.order_id,
            type_coerce(func.min(func.coalesce(Study.stable_at, Study.last_received_at)), UtcDateTime),
            type_coerce(func.min(ReportVersion.preliminary_at), UtcDateTime),
            type_coerce(func.min(ReportVersion.signed_at), UtcDateTime),
        )
        .outerjoin(Report, Report.study_id == Study.id)
        .outerjoin(ReportVersion, and_(ReportVersion.report_id == Report.id, ReportVersion.version == 1))
        .where(Study.order_id.in_(ids))
        .group_by(Study.order_id)
    )


@dataclass
class Journey:
    times: dict[str, datetime | None]

    def durations(self) -> dict[str, float]:
        out, previous = {}, None
        for stage in STAGES:
            at = self.times.get(stage)
            if at is None:
                continue
            if previous is not None:
                d = minutes(previous, at)
                if d is not None:
                    out[stage] = d
            previous = at
        total = minutes(self.times["ordered"], self.times.get("signed"))
        if total is not None:
            out[TOTAL] = total
        return out


def journeys(session: Session, f: Filter) -> list[Journey]:
    rows = session.execute(step_rows(f)).all()
    step_ids, order_ids = [r[0] for r in rows], sorted({r[1] for r in rows})
    # The later times by the ids just read, in chunks: each is an index lookup, whatever
    # plan a database would choose for the same filter as a subquery.
    history, mpps = by_ids(session, step_ids, _history), by_ids(session, step_ids, _mpps)
    later = by_ids(session, order_ids, _later)
    out = []
    for step_id, order_id, ordered in rows:
        scheduled, arrived, started = history.get(step_id, (None, None, None))
        (mpps_start,) = mpps.get(step_id, (None,))
        if mpps_start is not None and (started is None or mpps_start < started):
            started = mpps_start
        images, prelim, signed = later.get(order_id, (None, None, None))
        times = dict(zip(STAGES, (ordered, scheduled, arrived, started, images, prelim, signed), strict=True))
        out.append(Journey(times))
    return out


def turnaround(session: Session, f: Filter) -> dict:
    """Per stage: count, median and p90 minutes; and the weekly trend of the whole."""
    per_stage: dict[str, list[float]] = defaultdict(list)
    per_week: dict[date, list[float]] = defaultdict(list)
    for j in journeys(session, f):
        for stage, d in j.durations().items():
            per_stage[stage].append(d)
            if stage == TOTAL:
                per_week[week_of(j.times["ordered"])].append(d)
    stages = [{"stage": s, **summary(per_stage[s])} for s in (*STAGES[1:], TOTAL)]
    weeks = [{"week": w.isoformat(), **summary(per_week[w])} for w in sorted(per_week)]
    return {"from": f.first.isoformat(), "to": f.last.isoformat(), "stages": stages, "weeks": weeks}
