"""Named sync facts (plugin cursor, last reconciliation) and the health summary built
from them: backlog of Orthanc changes not yet delivered, last sync, pending corrections."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.model import OrthancTask, SyncState
from ris_app.tracking.inbox import unmatched_studies

FEED = "feed"  # what the plugin last reported: cursor, last, delivered
RECONCILE = "reconcile"  # outcome of the last reconciliation


def put(session: Session, name: str, value: dict) -> None:
    row = session.get(SyncState, name)
    if row is None:
        session.add(SyncState(name=name, value=value, updated_at=utcnow()))
    else:
        row.value = value
        row.updated_at = utcnow()


def get(session: Session, name: str) -> tuple[dict, datetime | None]:
    row = session.get(SyncState, name)
    return (dict(row.value), row.updated_at) if row else ({}, None)


def summary(session: Session, orthanc_last: int | None) -> dict:
    """Backlog and freshness of the sync, for /api/health and the sync page.

    `orthanc_last` is Orthanc's newest change sequence number when Orthanc answered; the
    backlog is what Orthanc logged beyond the cursor the plugin last reported."""
    feed, feed_at = get(session, FEED)
    rec, rec_at = get(session, RECONCILE)
    cursor = feed.get("cursor")
    last = orthanc_last if orthanc_last is not None else feed.get("last")
    backlog = max(0, int(last) - int(cursor)) if cursor is not None and last is not None else None
    pending = session.scalar(select(func.count(OrthancTask.id)).where(OrthancTask.state == "pending")) or 0
    failed = session.scalar(select(func.count(OrthancTask.id)).where(OrthancTask.state == "failed")) or 0
    unmatched = session.scalar(select(func.count()).select_from(unmatched_studies().subquery())) or 0
    return {
        "feed_cursor": cursor,
        "orthanc_last_change": last,
        "backlog": backlog,
        "last_sync": feed_at.isoformat() if feed_at else None,
        "last_reconcile": rec_at.isoformat() if rec_at else None,
        "reconcile": rec or None,
        "orthanc_tasks_pending": pending,
        "orthanc_tasks_failed": failed,
        "unmatched_studies": unmatched,
    }
