"""HL7 and sync health over time: per site day, inbound HL7 messages by outcome, the
outbox by state, the sync worker's Orthanc tasks by state, and the studies that arrived
unmatched (no order found)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter
from ris_app.clock import to_site
from ris_app.model import Hl7Message, Hl7Outbox, OrthancTask, Study

# column name -> (time column, state column or None, the state's value or None for any)
SERIES = {
    "hl7_in": (Hl7Message.received_at, None),
    "hl7_in_failed": (Hl7Message.received_at, Hl7Message.status.in_(("error", "rejected"))),
    "hl7_out": (Hl7Outbox.created_at, None),
    "hl7_out_unsent": (Hl7Outbox.created_at, Hl7Outbox.status.in_(("pending", "error"))),
    "orthanc_tasks": (OrthancTask.created_at, None),
    "orthanc_tasks_failed": (OrthancTask.created_at, OrthancTask.state == "failed"),
    "studies_unmatched": (Study.first_received_at, Study.order_id.is_(None)),
}


def health(session: Session, f: Filter) -> dict:
    days: dict[date, Counter] = defaultdict(Counter)
    for name, (at, condition) in SERIES.items():
        q = select(at).where(at >= f.start, at < f.end)
        if condition is not None:
            q = q.where(condition)
        for (when,) in session.execute(q):
            days[to_site(when).date()][name] += 1
    rows = [{"day": d.isoformat(), **{n: days[d][n] for n in SERIES}} for d in f.days()]
    return {"from": f.first.isoformat(), "to": f.last.isoformat(), "days": rows}
