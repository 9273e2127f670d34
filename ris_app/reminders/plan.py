"""What to tell the patient, decided where every change of a step passes
(`scheduling.orders.step_changed`), in the same transaction: a booking queues its
confirmation and its reminders, a move drops what was queued for the old time and queues
the reschedule message (a confirmation if the patient was not told the old time yet) with
new reminders, a cancellation drops what was queued and
queues the cancellation message.

The plan compares the step with the messages already queued for it (their
`appointment_at`), so telling it twice, or about a change that does not concern the
patient (a name corrected), queues nothing. Which channels: those the patient has an
address for and has not opted out of; whether the RIS has the channel configured is
decided when sending (the outbox marks the message skipped), so the page shows it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import object_session

from ris_app.clock import utcnow
from ris_app.config import lead_hours
from ris_app.model import Reminder, ScheduledProcedureStep
from ris_app.scheduling.states import SPSStatus

# Steps the patient still has to come for: messages about them stay true.
WAITING = frozenset({SPSStatus.SCHEDULED, SPSStatus.ARRIVED, SPSStatus.READY})
_leads: tuple[int, ...] | None = None


def set_lead_hours(hours: tuple[int, ...] | None) -> None:
    """Use these lead times in this process (the app factory, tests); None reads
    $ORTHANC_RIS_REMINDER_LEAD_HOURS again on next use (the HL7 and MPPS parts)."""
    global _leads
    _leads = hours


def current_lead_hours() -> tuple[int, ...]:
    global _leads
    if _leads is None:
        _leads = lead_hours(os.environ.get("ORTHANC_RIS_REMINDER_LEAD_HOURS") or "48,2")
    return _leads


def channels(step: ScheduledProcedureStep) -> list[str]:
    """The channels this step's patient can be reached on and agreed to."""
    patient = step.requested_procedure.order.patient
    found = []
    if patient.email and patient.notify_email:
        found.append("email")
    if patient.phone and patient.notify_sms:
        found.append("sms")
    return found


def plan(step: ScheduledProcedureStep) -> None:
    """Queue or drop the patient's messages after a change of `step` (see the module)."""
    session = object_session(step)
    if session is None or step.id is None:
        return
    queued = list(session.scalars(select(Reminder).where(Reminder.step_id == step.id).order_by(Reminder.id)))
    now = utcnow()
    start = step.start_datetime
    if not queued:
        # Imported worklists (import-worklists) were booked elsewhere and told already.
        if step.status == SPSStatus.SCHEDULED and start > now and not _imported(step):
            _queue(session, step, "confirmation", now)
        return
    last = queued[-1]
    pending = [r for r in queued if r.state == "pending"]
    if step.status == SPSStatus.CANCELED:
        if last.kind != "canceled":
            _drop(pending, "the appointment was canceled")
            if last.appointment_at > now:
                _queue(session, step, "canceled", now, appointment=last.appointment_at, reminders=False)
        return
    if step.status not in WAITING:
        _drop(pending, f"the exam is {step.status}")
        return
    if last.kind != "canceled" and last.appointment_at != start and start > now:
        _drop(pending, "the appointment was moved")
        # A patient never told the old time (the confirmation still queued, or not
        # delivered) gets a confirmation of the new one, not "your appointment was moved".
        told = any(r.kind in ("confirmation", "rescheduled") and r.state == "sent" for r in queued)
        _queue(session, step, "rescheduled" if told else "confirmation", now)


def _imported(step: ScheduledProcedureStep) -> bool:
    return bool(step.history) and step.history[0].source == "import"


def _queue(
    session,
    step: ScheduledProcedureStep,
    kind: str,
    now: datetime,
    *,
    appointment: datetime | None = None,
    reminders: bool = True,
) -> None:
    appointment = appointment or step.start_datetime
    for channel in channels(step):
        session.add(Reminder(step_id=step.id, kind=kind, channel=channel, appointment_at=appointment, due_at=now))
        if not reminders:
            continue
        for hours in current_lead_hours():
            due = appointment - timedelta(hours=hours)
            if due > now:  # a lead time already past at booking: the confirmation says it all
                session.add(
                    Reminder(
                        step_id=step.id,
                        kind="reminder",
                        channel=channel,
                        appointment_at=appointment,
                        lead_hours=hours,
                        due_at=due,
                    )
                )


def _drop(rows: list[Reminder], why: str) -> None:
    for row in rows:
        row.state, row.error = "dropped", why
