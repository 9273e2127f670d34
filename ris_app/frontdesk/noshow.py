"""Missed appointments: an exam still SCHEDULED (never checked in) when its booked slot
ended more than a grace period ago is marked NO_SHOW, each round of the sync worker.

The mark goes the way of the desk's "No-show" button (`scheduling.orders.apply_action`,
action "no_show"), so `step_changed` does the rest: the worklist item goes, the EHR hears
the status, pending reminders are dropped, and the slot is free again (a no-show holds
no time, `booking.FREE_STATUSES`). Only steps on stations under booking rules (with
opening hours) are swept: elsewhere a start time is a wish, not an appointment, and a
walk-in on an unscheduled scanner must not vanish from the worklist half an hour later.

Each step is marked in a transaction of its own, re-checked under its lock: a patient
checked in (or an exam moved) meanwhile stays as it is. Running it twice marks nothing
twice; the audit trail gets one `step.move` event per step, by `system:no-show`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit.trail import Who, record
from ris_app.clock import utcnow
from ris_app.db import retrying, set_actor, transaction
from ris_app.frontdesk.booking import primary_aet
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.model import Station, StationHours
from ris_app.scheduling.orders import apply_action, lock_step
from ris_app.scheduling.states import SPSStatus

log = logging.getLogger(__name__)
ACTOR = "system:no-show"  # changed_by of the steps it marks, actor of its audit events
SOURCE = "no-show"  # the step history's source
BATCH = 200  # steps per round at most: a first run over years of history does not stall the worker


def overdue_steps(session: Session, cutoff: datetime) -> list[int]:
    """Ids of steps still SCHEDULED, on a station with opening hours, whose booked end is
    at or before `cutoff`, oldest first."""
    booked = set(session.scalars(select(Station.aet).where(Station.id.in_(select(StationHours.station_id)))))
    if not booked:
        return []
    rows = session.execute(
        select(SPS.id, SPS.station_aet)
        .where(
            SPS.status == SPSStatus.SCHEDULED,
            SPS.end_datetime.is_not(None),
            SPS.end_datetime <= cutoff,
            # Steps with several AE titles book their first: matched in Python (booking.holds).
            or_(SPS.station_aet.in_(booked), SPS.station_aet.contains("\\", autoescape=True)),
        )
        .order_by(SPS.end_datetime, SPS.id)
    )
    return [row.id for row in rows if primary_aet(row.station_aet) in booked]


def mark_no_shows(sessions: sessionmaker[Session], grace_minutes: int, *, now: datetime | None = None) -> int:
    """Mark the overdue steps NO_SHOW (see the module). Returns how many were marked."""
    cutoff = (now or utcnow()) - timedelta(minutes=grace_minutes)
    with transaction(sessions, write=False) as s:
        ids = overdue_steps(s, cutoff)[:BATCH]
    marked = 0
    for step_id in ids:
        marked += retrying(lambda step_id=step_id: _mark(sessions, step_id, cutoff), what="no-show")
    if marked:
        log.info("%d exam(s) marked no-show", marked)
    return marked


def _mark(sessions: sessionmaker[Session], step_id: int, cutoff: datetime) -> int:
    with transaction(sessions) as s:
        set_actor(s, ACTOR)
        step = s.get(SPS, step_id)
        if step is None:
            return 0
        lock_step(step)  # what another writer committed since the list was read
        if step.status != SPSStatus.SCHEDULED or step.end_datetime is None or step.end_datetime > cutoff:
            return 0  # checked in, canceled or moved meanwhile
        apply_action(step, "no_show", source=SOURCE)
        order = step.requested_procedure.order
        record(s, "step.move", Who(ACTOR), mrn=order.patient.mrn, accession=order.accession_number, detail="no-show")
        return 1
