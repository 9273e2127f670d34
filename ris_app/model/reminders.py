"""The reminder outbox: every message to a patient about an appointment (booking
confirmation, reminders at the lead times, reschedule, cancellation), one row per message
and channel, planned in the transaction that booked or moved the step
(ris_app/reminders/plan.py) and sent by the sync worker (ris_app/reminders/outbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.model.scheduling import ScheduledProcedureStep

# What a message says (ris_app/reminders/texts.py holds the words per language).
KINDS = ("confirmation", "reminder", "rescheduled", "canceled")
CHANNELS = ("email", "sms")
# pending -> sending (claimed by one sender) -> sent | pending again (retry) | failed.
# dropped: no longer true (canceled, moved, done) or the patient opted out before it left;
# skipped: the channel is not configured or the patient has no address for it.
STATES = ("pending", "sending", "sent", "failed", "dropped", "skipped")


class Reminder(Base):
    __tablename__ = "reminder"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("scheduled_procedure_step.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    # The appointment (the step's start) the message is about: a message planned for an
    # older start is dropped, and the links it carries answer 410.
    appointment_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lead_hours: Mapped[int | None] = mapped_column(Integer)  # reminders only
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recipient: Mapped[str] = mapped_column(String(255), default="")  # where it went (set when claimed)
    error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    step: Mapped[ScheduledProcedureStep] = relationship()


# The sender's question: which pending messages are due.
Index("ix_reminder_state_due", Reminder.state, Reminder.due_at)
