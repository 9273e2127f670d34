"""Answering a Modality Worklist C-FIND: a SQL prefilter on indexed columns, the Python
finish of `matching` on the few rows left, and the stored items of `items`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pydicom
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.model import Station, StepSafety
from ris_app.registration.search import mrn_column, mrn_folded
from ris_app.scheduling.schedule import steps_with_order_and_patient
from ris_app.worklist.attributes import (
    BY_KEYWORD,
    DATE_TIME_VRS,
    attribute_value,
)
from ris_app.worklist.items import stored_item
from ris_app.worklist.matching import (
    Condition,
    WorklistQuery,
    WorklistQueryError,
    read_worklist_query,
    step_matches,
    value_matches,
)

log = logging.getLogger(__name__)

START_DATE = BY_KEYWORD["ScheduledProcedureStepStartDate"]
STATION_AET = BY_KEYWORD["ScheduledStationAETitle"]
STATUS = BY_KEYWORD["ScheduledProcedureStepStatus"]


# --------------------------------------------------------------------- SQL prefilter
def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _sql_filter(cond: Condition):
    """A SQL condition that keeps a superset of the rows the condition matches, or None."""
    col = cond.attr.column
    if cond.attr.prefilter is not None:
        return cond.attr.prefilter(cond.value)
    if col is None or cond.attr.vr == "SQ":
        return None
    values = cond.value.split("\\")
    if cond.attr.as_mrn:
        col, values = mrn_column(), [mrn_folded(v) for v in values]
    if cond.attr.vr in ("AE", "CS"):
        # Several values may be stored as a\b: prefilter with LIKE on each value (a
        # superset, also where LIKE ignores case); Python finishes exactly.
        return or_(*[col.like(f"%{_like_pattern(v)}%", escape="\\") for v in values])
    clauses = []
    for v in values:
        if "*" in v or "?" in v:
            clauses.append(col.like(_like_pattern(v), escape="\\"))
        else:
            clauses.append(col == v)
    return or_(*clauses)


def _day(value: str) -> date:
    return datetime.strptime(value, "%Y%m%d").date()


def _date_bounds(q: str) -> tuple[datetime | None, datetime | None] | None:
    """UTC bounds of a DA query (single or range) on the stored start times; None when not a
    plain form. The query's dates are the site's (DICOM DA is local time): a step at 23:30
    site time belongs to that day even when it is the next day in UTC."""
    if "\\" in q:
        return None
    try:
        if "-" in q:
            low, high = q.split("-", 1)
            lo = site_day_bounds(_day(low))[0] if low else None
            hi = site_day_bounds(_day(high))[1] if high else None
            return lo, hi
        return site_day_bounds(_day(q))
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------- answering
@dataclass
class WorklistResult:
    items: list[bytes]
    incomplete: bool
    considered: int
    query: WorklistQuery | None = None
    station_rule: bool = False


def station_rule_applies(session: Session, calling_aet: str) -> bool:
    """Does the calling station ask for only its own steps when it names no station?"""
    if not calling_aet:
        return False
    return bool(session.scalar(select(Station.worklist_own_steps_only).where(Station.aet == calling_aet)))


def effective_conditions(session: Session, wq: WorklistQuery, calling_aet: str) -> tuple[list[Condition], bool]:
    """The query's conditions plus the ones the RIS adds (the per-station rule)."""
    conditions = list(wq.conditions)
    if wq.condition(STATION_AET.keyword) is None and station_rule_applies(session, calling_aet):
        conditions.append(Condition(STATION_AET, calling_aet, added_by="station rule"))
        return conditions, True
    return conditions, False


def _answered_status(statuses: Sequence[str]):
    """The default status filter, written so that no index serves it: nearly every step
    is SCHEDULED, and SQLite without statistics would otherwise walk the status index
    (every row) instead of the start time or name index. A step a safety rule holds
    (registration.safety) is not offered until a radiologist releases it."""
    held = select(StepSafety.step_id).where(StepSafety.hold)
    return and_((SPS.status + "").in_(list(statuses)), SPS.id.not_in(held))


def base_statement(conditions: Sequence[Condition], default_statuses: Sequence[str], ordered: bool = True):
    """The SQL prefilter of a query: a superset of the matching steps, in schedule order.
    Steps are loaded with their order and patient, unless every key is a step attribute
    (a scanner's AE title and date): then the step alone, which halves the loading."""
    if all(c.attr.in_sps and c.attr.vr != "SQ" for c in conditions):
        stmt = select(SPS)
    else:
        stmt = steps_with_order_and_patient()
    if not any(c.attr is STATUS for c in conditions):
        stmt = stmt.where(_answered_status(default_statuses))
    for cond in conditions:
        clause = _sql_filter(cond)
        if clause is not None:
            stmt = stmt.where(clause)
        if cond.attr is START_DATE:
            bounds = _date_bounds(cond.value)
            if bounds:
                lo, hi = bounds
                if lo is not None:
                    stmt = stmt.where(SPS.start_datetime >= lo)
                if hi is not None:
                    stmt = stmt.where(SPS.start_datetime < hi)
    return stmt.order_by(SPS.start_datetime, SPS.id) if ordered else stmt


def _project(step: SPS, conditions: Sequence[Condition]) -> bytes | None:
    """The item with each multi-valued SPS attribute the query matched reduced to the
    values it matched, or None when nothing needs it.

    Orthanc 1.10 re-checks every ScheduledProcedureStepSequence item of an answer against
    the query with its own matcher, which compares a stored `CT1\\CT2` as one string and
    would empty the sequence of a step scheduled on two stations queried for `CT2`."""
    changes: dict[int, str] = {}
    for cond in conditions:
        attr = cond.attr
        if not attr.in_sps or attr.vr == "SQ" or attr.vr in DATE_TIME_VRS or not attr.multi_valued:
            continue
        stored = attribute_value(step, attr)
        if "\\" not in stored:
            continue
        kept = [v for v in stored.split("\\") if value_matches(cond.value, attr.vr, v)]
        if kept:
            changes[attr.tag] = "\\".join(kept)
    if not changes:
        return None
    ds = pydicom.dcmread(io.BytesIO(stored_item(step)))
    item = ds.ScheduledProcedureStepSequence[0]
    for tag, value in changes.items():
        item[tag].value = value
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _find_universal(
    session: Session, wq: WorklistQuery, default_statuses: Sequence[str], limit: int, calling_aet: str
) -> WorklistResult:
    """No key restricts the answer: the first `limit` stored items in schedule order,
    read without loading steps (items missing are built on the slow path)."""
    rows = session.execute(
        select(SPS.id, SPS.worklist_item)
        .where(_answered_status(default_statuses))
        .order_by(SPS.start_datetime, SPS.id)
        .limit(limit + 1)
    ).all()
    incomplete = len(rows) > limit
    items = []
    for step_id, item in rows[:limit]:
        items.append(item if item is not None else stored_item(session.get(SPS, step_id)))
    log.info(
        "worklist query from %s: universal, %d answer(s)%s",
        calling_aet or "?",
        len(items),
        " (incomplete)" if incomplete else "",
    )
    return WorklistResult(items, incomplete, len(rows), wq, False)


def find(
    session: Session, query: bytes, *, default_statuses: Sequence[str], limit: int, calling_aet: str = ""
) -> WorklistResult:
    """Answer one C-FIND MWL query with stored worklist items."""
    wq = read_worklist_query(query)
    conditions, station_rule = effective_conditions(session, wq, calling_aet)
    if not conditions:
        return _find_universal(session, wq, default_statuses, limit, calling_aet)
    # A name prefilter is the selective one: SQLite (without statistics) would rather walk
    # the start-time index to skip sorting, so those candidates are sorted here instead.
    in_sql_order = not any(c.attr.prefilter is not None and c.attr.prefilter(c.value) is not None for c in conditions)
    stmt = base_statement(conditions, default_statuses, ordered=in_sql_order)
    items: list[bytes] = []
    considered = 0
    incomplete = False
    result = session.scalars(stmt.execution_options(yield_per=256) if in_sql_order else stmt)
    try:
        steps = result if in_sql_order else sorted(result, key=lambda st: (st.start_datetime, st.id))
        for step in steps:
            considered += 1
            if not step_matches(step, conditions):
                continue
            if len(items) >= limit:
                incomplete = True
                break
            items.append(_project(step, wq.conditions) or stored_item(step))
    finally:
        result.close()
    # Key names only: values may be patient data, logged at DEBUG only.
    log.info(
        "worklist query from %s: keys %s, %d row(s) considered, %d answer(s)%s",
        calling_aet or "?",
        ",".join(sorted({c.attr.keyword for c in conditions})) or "(none)",
        considered,
        len(items),
        " (incomplete)" if incomplete else "",
    )
    log.debug("worklist query values: %s", [(c.attr.keyword, c.value) for c in conditions])
    return WorklistResult(items, incomplete, considered, wq, station_rule)


__all__ = ["WorklistQueryError", "WorklistResult", "find"]
