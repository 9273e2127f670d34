"""The health of each part of the system, as an operator reads it on the sync page: one
row per part with a state (ok, warn, error, idle), when it last did something, and why.

One table, PARTS, of checks; each reads what the parts already record (the sync cursor,
the HL7 message store and outbox, the Orthanc task queue, the reminder outbox), so the
page costs a handful of indexed counts. Times are aware UTC here; the page shows them in
the site's zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.model import Hl7Message, Hl7Outbox, InboundStatus, OrthancTask, OutboxStatus, Reminder

OK, WARN, ERROR, IDLE = "ok", "warn", "error", "idle"
DAY = timedelta(hours=24)


@dataclass
class PartHealth:
    part: str
    state: str
    last: datetime | None  # when it last did something (UTC), None: never
    detail: str


@dataclass
class Facts:
    """What the caller knows from outside the database: Orthanc's answer, the sync summary."""

    orthanc: str  # "ok", "unreachable", "http 500"
    sync: dict  # tracking.state.summary()
    sync_at: datetime | None
    reconcile_at: datetime | None
    reconcile_seconds: float


def _orthanc(s: Session, f: Facts) -> PartHealth:
    answered = utcnow() if f.orthanc == "ok" else None  # asked just now, for this page
    return PartHealth("Orthanc (PACS)", OK if f.orthanc == "ok" else ERROR, answered, f"REST API: {f.orthanc}")


def _feed(s: Session, f: Facts) -> PartHealth:
    backlog = f.sync.get("backlog")
    if backlog is None:
        return PartHealth("Image events (plugin)", WARN, f.sync_at, "backlog unknown: Orthanc did not answer")
    state = OK if backlog == 0 else WARN
    return PartHealth("Image events (plugin)", state, f.sync_at, f"{backlog} Orthanc change(s) not yet delivered")


def _reconcile(s: Session, f: Facts) -> PartHealth:
    late = f.reconcile_at is None or utcnow() - f.reconcile_at > timedelta(seconds=3 * f.reconcile_seconds)
    every = f"runs every {f.reconcile_seconds:g} s"
    return PartHealth("Sync worker (reconciliation)", WARN if late else OK, f.reconcile_at, every)


def _hl7_in(s: Session, f: Facts) -> PartHealth:
    last = s.scalar(select(func.max(Hl7Message.received_at)))
    failed = s.scalar(
        select(func.count(Hl7Message.id)).where(
            Hl7Message.status.in_(InboundStatus.FAILED), Hl7Message.received_at >= utcnow() - DAY
        )
    )
    state = IDLE if last is None else (WARN if failed else OK)
    return PartHealth("HL7 in (listener)", state, last, f"{failed} failed in the last 24 h")


def _hl7_out(s: Session, f: Facts) -> PartHealth:
    rows = dict(
        s.execute(
            select(Hl7Outbox.status, func.count(Hl7Outbox.id))
            .where(Hl7Outbox.status.in_(OutboxStatus.UNSENT))
            .group_by(Hl7Outbox.status)
        ).all()
    )
    last = s.scalar(select(func.max(Hl7Outbox.sent_at)))
    pending, error = rows.get(OutboxStatus.PENDING, 0), rows.get(OutboxStatus.ERROR, 0)
    state = ERROR if error else (WARN if pending else (IDLE if last is None else OK))
    return PartHealth("HL7 out (outbox)", state, last, f"{pending} waiting, {error} refused by the peer")


def _orthanc_tasks(s: Session, f: Facts) -> PartHealth:
    pending, failed = f.sync.get("orthanc_tasks_pending", 0), f.sync.get("orthanc_tasks_failed", 0)
    last = s.scalar(select(func.max(OrthancTask.done_at)))
    state = ERROR if failed else (WARN if pending else (IDLE if last is None else OK))
    return PartHealth(
        "Orthanc tasks (corrections, report documents)", state, last, f"{pending} pending, {failed} failed"
    )


def _reminders(s: Session, f: Facts) -> PartHealth:
    rows = dict(
        s.execute(
            select(Reminder.state, func.count(Reminder.id))
            .where(Reminder.state.in_(("pending", "failed")))
            .group_by(Reminder.state)
        ).all()
    )
    last = s.scalar(select(func.max(Reminder.sent_at)))
    failed = rows.get("failed", 0)
    state = WARN if failed else (IDLE if last is None else OK)
    return PartHealth(
        "Messages to patients (outbox)", state, last, f"{rows.get('pending', 0)} pending, {failed} failed"
    )


PARTS: tuple[Callable[[Session, Facts], PartHealth], ...] = (
    _orthanc,
    _feed,
    _reconcile,
    _hl7_in,
    _hl7_out,
    _orthanc_tasks,
    _reminders,
)


def parts_health(s: Session, facts: Facts) -> list[PartHealth]:
    return [check(s, facts) for check in PARTS]
