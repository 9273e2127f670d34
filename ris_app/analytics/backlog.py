"""The unread backlog: studies with images linked to an order and no signed report yet,
by priority and age, and those past their priority's reading target
(ORTHANC_RIS_READ_TARGET_MINUTES). Age runs from the first image.

Only studies received in the last BACKLOG_DAYS are looked at: an index range instead of
every study ever stored (an older unread study is a data problem, shown on the sync page).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ris_app.clock import to_site, utcnow
from ris_app.model import FINAL, Order, Report, Study

BACKLOG_DAYS = 90
# (label, up to this many minutes of age)
AGE_BUCKETS = (("< 1 h", 60), ("1-4 h", 240), ("4-24 h", 1440), ("1-2 d", 2880), ("2-7 d", 10080), ("> 7 d", None))
PAST_TARGET_LISTED = 50


def _bucket(age: float) -> str:
    for label, upto in AGE_BUCKETS:
        if upto is None or age < upto:
            return label
    return AGE_BUCKETS[-1][0]


def backlog(session: Session, targets: Mapping[str, int], *, modality: str = "", now: datetime | None = None) -> dict:
    now = now or utcnow()
    q = (
        select(Study.accession_number, Study.modalities, Study.first_received_at, Order.priority, Report.status)
        .join(Order, Order.id == Study.order_id)
        .outerjoin(Report, Report.study_id == Study.id)
        .where(
            Study.first_received_at >= now - timedelta(days=BACKLOG_DAYS),
            Study.deleted_at.is_(None),
            or_(Report.id.is_(None), Report.status != FINAL),
        )
    )
    if modality:
        q = q.where(Study.modalities.contains(modality))
    grid: dict[str, Counter] = defaultdict(Counter)
    late = []
    for accession, modalities, received, priority, status in session.execute(q):
        age = (now - received).total_seconds() / 60.0
        grid[priority][_bucket(age)] += 1
        target = targets.get(priority)
        if target is not None and age > target:
            grid[priority]["past target"] += 1
            late.append(
                {
                    "accession_number": accession,
                    "priority": priority,
                    "modality": modalities,
                    "received": to_site(received).isoformat(timespec="minutes"),
                    "age_hours": round(age / 60.0, 1),
                    "target_hours": round(target / 60.0, 1),
                    "report": status or "none",
                }
            )
    late.sort(key=lambda r: -r["age_hours"])
    rows = [
        {
            "priority": p,
            "unread": sum(v for k, v in grid[p].items() if k != "past target"),
            **{label: grid[p][label] for label, _ in AGE_BUCKETS},
            "target_minutes": targets.get(p),
            "past_target": grid[p]["past target"],
        }
        for p in sorted(grid, key=lambda p: (p not in targets, targets.get(p, 0), p))
    ]
    return {"priorities": rows, "past_target": late[:PAST_TARGET_LISTED]}
