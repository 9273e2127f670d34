"""What the front desk is told about a booking: outside opening hours, or accepted over
taken time (a "clash" from HL7 or an import, an "overbook" on purpose); the list of
clashes still to resolve, and "keep", the clerk's decision that a clash may stand.

Resolving a clash is either moving the step (scheduling.orders.reschedule_step, under the
booking rule) or keeping it: both are the clerk's, both are audited by the route."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from ris_app.errors import Conflict
from ris_app.frontdesk.availability import out_of_hours
from ris_app.frontdesk.booking import DEFAULT_MINUTES, primary_aet
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.scheduling.orders import lock_step
from ris_app.scheduling.states import STARTABLE

CLASH = "clash"


@dataclass(frozen=True)
class BookingOutcome:
    """How a step's booking stands, for the order page and the order JSON."""

    out_of_hours: bool
    flag: str  # "" | clash | overbook
    clash_with: str  # the accession whose time it shares ("" for a block)
    by: str  # who overbooked (the step's changed_by when it was flagged)


def outcome_of(step: SPS) -> BookingOutcome:
    """The booking's standing. Out of hours is asked only of waiting steps: once the exam
    began, when it was booked does not matter to the desk any more."""
    session = object_session(step)
    late = False
    if session is not None and step.status in STARTABLE and step.station_aet:
        end = step.end_datetime or step.start_datetime + timedelta(minutes=DEFAULT_MINUTES)
        late = out_of_hours(session, primary_aet(step.station_aet), step.start_datetime, end)
    by = step.changed_by if step.booking_flag == "overbook" else ""
    return BookingOutcome(late, step.booking_flag, step.booking_clash_with, by)


def flagged_steps(session: Session, limit: int = 200) -> list[SPS]:
    """Waiting steps accepted over taken time, soonest first: the desk's to-do list."""
    return list(
        session.scalars(
            select(SPS)
            .where(SPS.booking_flag == CLASH, SPS.status.in_(list(STARTABLE)))
            .order_by(SPS.start_datetime, SPS.id)
            .limit(limit)
        )
    )


def keep_booking(step: SPS, expected_version: int | None = None) -> SPS:
    """The clerk lets a clash stand (both patients come; the room copes): the flag is
    cleared, the step's changed_by names the clerk, the route records the audit event."""
    lock_step(step, expected_version)
    if step.booking_flag != CLASH:
        raise Conflict("has no clash to keep (moved or kept already)", field="booking_flag")
    step.booking_flag = ""
    step.booking_clash_with = ""
    return step
