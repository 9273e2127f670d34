"""The waiting list: orders the front desk still has to give a time in a room, most urgent
first and, within one urgency, oldest first.

A step always has a start (the column is required), so "not yet booked" means one of:
  no station   the order names no room (HL7 and API orders may leave it to the desk);
  clash        accepted on time already taken (HL7, an imported worklist) and flagged
               for the desk (`booking_flag` "clash").
Only steps still SCHEDULED wait; the reason of each is one entry of `REASONS`. A step on
a station without opening hours is not waiting: that room takes no bookings (a walk-in
scanner), its time is whatever the order said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, or_
from sqlalchemy.orm import Session

from ris_app.clock import site_today, utcnow
from ris_app.frontdesk.availability import Slot, free_slots
from ris_app.frontdesk.booking import primary_aet
from ris_app.model import Order
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.scheduling.schedule import steps_with_order_and_patient
from ris_app.scheduling.states import SPSStatus

# RequestedProcedurePriority, most urgent first. MEDIUM comes from HL7's P (pre-op) and
# T (timing critical): sooner than ROUTINE.
URGENCY = ("STAT", "HIGH", "MEDIUM", "ROUTINE", "LOW")
REASONS = {
    "no_station": "no room chosen",
    "clash": "clashes with another booking",
}
LOOK_AHEAD_DAYS = 14  # how far the "book" link looks for the next free slot
NEXT_SLOT_ROWS = 50  # rows that get a "book" link (4 queries each)


@dataclass
class Waiting:
    step: SPS
    reason: str  # a key of REASONS
    next_slot: Slot | None = None


def waiting_list(session: Session, *, limit: int = 200) -> list[Waiting]:
    """The steps waiting for the desk (see the module), most urgent and oldest first, the
    first NEXT_SLOT_ROWS with the next free slot for their procedure."""
    rank = case({p: n for n, p in enumerate(URGENCY)}, value=Order.priority, else_=len(URGENCY))
    stmt = (
        steps_with_order_and_patient()
        .where(
            SPS.status == SPSStatus.SCHEDULED,
            or_(SPS.station_aet == "", SPS.booking_flag == "clash"),
        )
        .order_by(rank, Order.created_at, SPS.id)
    )
    out = [Waiting(step, "clash" if step.station_aet else "no_station") for step in session.scalars(stmt.limit(limit))]
    now = utcnow()
    for row in out[:NEXT_SLOT_ROWS]:
        row.next_slot = next_slot(
            session, row.step, now, "" if row.reason != "clash" else primary_aet(row.step.station_aet)
        )
    return out


def next_slot(session: Session, step: SPS, now: datetime, station_aet: str = "") -> Slot | None:
    """The first free slot after `now` for the step's procedure, on `station_aet` or any
    station able to do it, within LOOK_AHEAD_DAYS."""
    procedure = step.requested_procedure.procedure_code
    if procedure is None:
        return None
    first = site_today()
    for slot in free_slots(session, first, procedure.code, days=LOOK_AHEAD_DAYS, station_aet=station_aet):
        if slot.start >= now + timedelta(minutes=1):
            return slot
    return None
