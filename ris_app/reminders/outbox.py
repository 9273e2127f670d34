"""The sender of the reminder outbox, run by the sync worker every round.

Never twice: a message is claimed before it is sent, by a conditional UPDATE
(`state` pending -> sending) in a short writer transaction; only the sender whose UPDATE
changed the row sends it, and `sent_at` is written after. Two senders (or one run again
after a crash) cannot both claim a row. A row a crash left in `sending` may or may not
have left: after CLAIM_TIMEOUT it is marked failed, not sent again, and the page shows it.

Retried: a failure that may pass (server down, 4xx) puts the row back to pending with a
back-off (RETRY_BASE doubled per attempt, at most RETRY_MAX), up to MAX_ATTEMPTS.

Sending happens outside any transaction: a slow mail server holds no lock the RIS needs.
Each message is re-checked when claimed: a reminder whose appointment moved, was
canceled or began, or whose patient opted out since, is dropped rather than sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.model import Reminder, ScheduledProcedureStep
from ris_app.reminders.channels import DeliveryError, configured, deliver
from ris_app.reminders.links import links
from ris_app.reminders.plan import WAITING
from ris_app.reminders.texts import Message, compose

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
CLAIM_TIMEOUT = timedelta(minutes=10)
BATCH = 200


def send_due(sessions: sessionmaker[Session], cfg: Config, now: datetime | None = None) -> int:
    """Send every due message (up to BATCH a round). Returns how many left."""
    now = now or utcnow()
    _give_up_interrupted(sessions, now)
    with transaction(sessions, write=False) as s:
        due = list(
            s.scalars(
                select(Reminder.id)
                .where(Reminder.state == "pending", Reminder.due_at <= now)
                .where(or_(Reminder.next_attempt_at.is_(None), Reminder.next_attempt_at <= now))
                .order_by(Reminder.due_at, Reminder.id)
                .limit(BATCH)
            )
        )
    return sum(send_one(sessions, cfg, row_id, now) for row_id in due)


def send_one(sessions: sessionmaker[Session], cfg: Config, row_id: int, now: datetime) -> bool:
    """Claim, send and record one message; False when another sender has it or it was
    not sent (dropped, skipped, failed)."""
    with transaction(sessions) as s:
        # The step first, as every writer of a step's messages takes it (a cancel locks the
        # step, then drops its pending messages). Claimed first, the row's second update
        # below re-checks its foreign key (FOR KEY SHARE on the step) on PostgreSQL and
        # waited for such a cancel while the cancel waited for this claim: a deadlock.
        s.execute(
            select(ScheduledProcedureStep.id)
            .where(ScheduledProcedureStep.id == select(Reminder.step_id).where(Reminder.id == row_id).scalar_subquery())
            .with_for_update(key_share=True)
        )
        claimed = s.execute(
            update(Reminder)
            .where(Reminder.id == row_id, Reminder.state == "pending")
            .values(state="sending", claimed_at=now, attempts=Reminder.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return False
        row = s.get(Reminder, row_id)
        outcome = _prepare(row, cfg)
        if isinstance(outcome, tuple):  # (state, why): not to be sent
            row.state, row.error = outcome
            log.info("reminder %d %s: %s", row_id, row.state, row.error)
            return False
        channel, to, message = row.channel, row.recipient, outcome
    try:
        deliver(cfg, channel, to, message.subject, message.text, message.language)
    except DeliveryError as exc:
        _failed(sessions, row_id, exc, now)
        return False
    with transaction(sessions) as s:
        row = s.get(Reminder, row_id)
        row.state, row.sent_at, row.error = "sent", utcnow(), ""
    log.info("reminder %d sent by %s", row_id, channel)  # no address: it identifies the patient
    return True


def _prepare(row: Reminder, cfg: Config) -> Message | tuple[str, str]:
    step = row.step
    patient = step.requested_procedure.order.patient
    if row.kind != "canceled" and (step.status not in WAITING or step.start_datetime != row.appointment_at):
        return "dropped", "the appointment changed before the message left"
    if not configured(cfg, row.channel):
        setting = "ORTHANC_RIS_SMTP_HOST" if row.channel == "email" else "ORTHANC_RIS_SMS_WEBHOOK_URL"
        return "skipped", f"{setting} is not set"
    wanted = patient.notify_email if row.channel == "email" else patient.notify_sms
    if not wanted:
        return "dropped", "the patient opted out of this channel"
    row.recipient = (patient.email if row.channel == "email" else patient.phone).strip()
    if not row.recipient:
        return "skipped", "the patient has no address for this channel"
    offered = {} if row.kind == "canceled" else links(cfg, step.id, row.appointment_at)
    return compose(row, cfg, offered)


def _failed(sessions: sessionmaker[Session], row_id: int, exc: DeliveryError, now: datetime) -> None:
    with transaction(sessions) as s:
        row = s.get(Reminder, row_id)
        row.error = str(exc)[:500]
        if exc.retry and row.attempts < MAX_ATTEMPTS:
            row.state = "pending"
            row.next_attempt_at = now + min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
        else:
            row.state = "failed"
    log.warning("reminder %d not sent (attempt %d): %s", row_id, row.attempts, exc)


def _give_up_interrupted(sessions: sessionmaker[Session], now: datetime) -> None:
    """A row left in `sending` by a crash may have left already: never send it again."""
    stale = (Reminder.state == "sending", Reminder.claimed_at < now - CLAIM_TIMEOUT)
    with transaction(sessions, write=False) as s:  # most rounds: none, and no write lock taken
        if s.scalar(select(Reminder.id).where(*stale).limit(1)) is None:
            return
    with transaction(sessions) as s:
        s.execute(
            update(Reminder)
            .where(*stale)
            .values(state="failed", error="interrupted while sending (may have left): not sent again")
            .execution_options(synchronize_session=False)
        )
