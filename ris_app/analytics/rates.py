"""No-show and cancellation rates of the steps booked in the chosen days.

No-show rate: steps in state NO_SHOW among those not cancelled (a cancelled booking
could not be missed); cancellation rate: CANCELED among all booked. States are compared
by their string values, as stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.analytics.stats import Filter, week_of
from ris_app.analytics.turnaround import narrow
from ris_app.model import Order, RequestedProcedure, ScheduledProcedureStep

NO_SHOW, CANCELED = "NO_SHOW", "CANCELED"


def _row(key: dict, counts: Counter) -> dict:
    booked = sum(counts.values())
    kept = booked - counts[CANCELED]
    return {
        **key,
        "booked": booked,
        "no_show": counts[NO_SHOW],
        "canceled": counts[CANCELED],
        "no_show_pct": round(100.0 * counts[NO_SHOW] / kept, 1) if kept else None,
        "canceled_pct": round(100.0 * counts[CANCELED] / booked, 1) if booked else None,
    }


def rates(session: Session, f: Filter) -> dict:
    q = narrow(
        select(ScheduledProcedureStep.start_datetime, ScheduledProcedureStep.status, ScheduledProcedureStep.modality)
        .join(RequestedProcedure, RequestedProcedure.id == ScheduledProcedureStep.requested_procedure_id)
        .join(Order, Order.id == RequestedProcedure.order_id)
        .where(ScheduledProcedureStep.start_datetime >= f.start, ScheduledProcedureStep.start_datetime < f.end),
        f,
    )
    weeks: dict[date, Counter] = defaultdict(Counter)
    modalities: dict[str, Counter] = defaultdict(Counter)
    for start, status, modality in session.execute(q):
        weeks[week_of(start)][status] += 1
        modalities[modality][status] += 1
    return {
        "from": f.first.isoformat(),
        "to": f.last.isoformat(),
        "weeks": [_row({"week": w.isoformat()}, weeks[w]) for w in sorted(weeks)],
        "modalities": [_row({"modality": m}, modalities[m]) for m in sorted(modalities)],
    }
