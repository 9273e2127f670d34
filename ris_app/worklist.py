"""Modality Worklist: building worklist items and answering C-FIND queries.

Items are built once per change of a step (see `refresh_worklist_item`) and kept as DICOM
Part 10 bytes, so answering a query is a SQL prefilter, a Python finish on the rows left,
and returning stored bytes. Matching follows DICOM PS3.4 C.2.2.2 with dcmtk's wlmscpfs
as the reference: universal, single value, list, wildcard, range (also the combined
Scheduled Procedure Step start date and time), sequence matching, several values in one
stored attribute, and PN matching insensitive to case, against every component group.
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Iterable, Sequence

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, contains_eager

from .dicom_map import (
    BY_KEYWORD, DATE_TIME_VRS, SPS_SEQUENCE_TAG, WILDCARD_VRS, WORKLIST_ATTRIBUTES,
    WorklistAttribute, attribute_value,
)
from .models import Order, RequestedProcedure, ScheduledProcedureStep as SPS, Station

log = logging.getLogger(__name__)

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"
STRING_VRS = frozenset({"AE", "CS", "LO", "PN", "SH", "LT", "ST", "UT", "UC", "DA", "TM", "DT", "UI"})
START_DATE = BY_KEYWORD["ScheduledProcedureStepStartDate"]
START_TIME = BY_KEYWORD["ScheduledProcedureStepStartTime"]
STATION_AET = BY_KEYWORD["ScheduledStationAETitle"]
STATUS = BY_KEYWORD["ScheduledProcedureStepStatus"]


class WorklistQueryError(ValueError):
    """The query itself cannot be read (not DICOM, or no dataset)."""


# --------------------------------------------------------------------- item building
def build_item(step: SPS) -> bytes:
    """The worklist item of one step, as DICOM Part 10 bytes in UTF-8, holding every
    return key of PS3.4 Table K.6-1 (empty when unknown)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    sps = Dataset()
    for attr in WORKLIST_ATTRIBUTES:
        target = sps if attr.in_sps else ds
        if attr.vr == "SQ":
            # Left out when empty: Orthanc 1.10 drops an SPS item whose empty sequence
            # meets a sequence key of the query; a missing one answers empty anyway.
            continue
        elif attr.value is not None:
            setattr(target, attr.keyword, attr.value(step) or "")
        else:
            target.add_new(attr.tag, attr.vr, None)
    rp = step.requested_procedure
    if rp.procedure_code is not None:
        code = Dataset()
        code.CodeValue = rp.procedure_code.code
        code.CodingSchemeDesignator = rp.procedure_code.coding_scheme
        code.CodeMeaning = rp.procedure_code.description
        ds.RequestedProcedureCodeSequence = [code]
        sps.ScheduledProtocolCodeSequence = [code]
    ds.ScheduledProcedureStepSequence = [sps]
    if step.extra_attributes:
        apply_extra(ds, step.extra_attributes)
    return _to_part10(ds)


def _is_empty(elem) -> bool:
    return elem.value in (None, "", b"") or (elem.VR == "SQ" and len(elem.value) == 0)


def apply_extra(ds: Dataset, extra: dict) -> None:
    """Fill in the attributes kept verbatim from an imported item (DICOM JSON): those the
    RIS does not model, and those it models but left empty. The RIS's own non-empty
    values win, so a later change (status, patient name) shows in the answer, except for
    the attributes pinned at import (see worklist_import)."""
    extra = dict(extra)
    pinned = set(extra.pop("pinned", []))
    for path, value in extra.pop("added", {}).items():
        holder = ds.ScheduledProcedureStepSequence[0] if path.startswith(SPS_SEQUENCE_TAG + "/") else ds
        tag = int(path.rsplit("/", 1)[-1], 16)
        if tag in holder and _as_text(holder[tag].value) == value:
            holder[tag].value = None  # the original had no value, the RIS's is unchanged
    sps_extra = extra.pop(SPS_SEQUENCE_TAG, None)
    for elem in Dataset.from_json(extra):
        if elem.tag not in ds or _is_empty(ds[elem.tag]) or f"{elem.tag:08X}" in pinned:
            ds[elem.tag] = elem
    items = (sps_extra or {}).get("Value") or []
    if items:
        first = Dataset.from_json(items[0])
        target = ds.ScheduledProcedureStepSequence[0]
        for elem in first:
            if (elem.tag not in target or _is_empty(target[elem.tag])
                    or f"{SPS_SEQUENCE_TAG}/{elem.tag:08X}" in pinned):
                target[elem.tag] = elem
        for more in items[1:]:  # items beyond the first are kept as they were
            ds.ScheduledProcedureStepSequence.append(Dataset.from_json(more))


def _to_part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MWL_FIND_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def refresh_worklist_item(step: SPS) -> None:
    """Rebuild the stored answer of a step; call after any change to the step, its order,
    its requested procedure or its patient."""
    step.worklist_item = build_item(step)


# --------------------------------------------------------------------- query parsing
@dataclass(frozen=True)
class Condition:
    """One non-universal matching key of a query. For a sequence, `items` holds the
    query's sequence item (its non-empty keys must all match one stored item)."""

    attr: WorklistAttribute
    value: str
    items: Dataset | None = None
    added_by: str = ""  # "" from the query; "station rule" when the RIS added it


@dataclass
class WorklistQuery:
    conditions: list[Condition]
    dataset: Dataset
    keys: list[str] = field(default_factory=list)  # every key the query asked (names only)

    @property
    def charset(self) -> str:
        cs = self.dataset.get("SpecificCharacterSet", "")
        return "\\".join(cs) if isinstance(cs, (list, pydicom.multival.MultiValue)) else str(cs)

    def condition(self, keyword: str) -> Condition | None:
        return next((c for c in self.conditions if c.attr.keyword == keyword), None)


def parse_query(query: bytes) -> list[Condition]:
    """The non-universal matching keys of a C-FIND MWL identifier."""
    return read_worklist_query(query).conditions


def read_worklist_query(query: bytes) -> WorklistQuery:
    return query_from_dataset(read_query(query))


def query_from_dataset(ds: Dataset) -> WorklistQuery:
    """The conditions and key names of a C-FIND MWL identifier."""
    conditions: list[Condition] = []
    keys: list[str] = []

    def collect(d: Dataset, in_sps: bool) -> None:
        for elem in d:
            if elem.keyword == "ScheduledProcedureStepSequence":
                continue
            keys.append(elem.keyword or str(elem.tag))
            attr = BY_KEYWORD.get(elem.keyword)
            if attr is None or attr.in_sps != in_sps or not attr.matching:
                continue  # return key only, as in wlmscpfs
            if attr.vr == "SQ":
                if elem.value and _sequence_has_keys(elem.value[0]):
                    conditions.append(Condition(attr, "", elem.value[0]))
                continue
            value = _as_text(elem.value).strip()
            if not _is_universal(value, attr.vr):
                conditions.append(Condition(attr, value))

    collect(ds, False)
    seq = ds.get("ScheduledProcedureStepSequence")
    if seq is not None:
        keys.append("ScheduledProcedureStepSequence")
        if len(seq):
            collect(seq[0], True)
    return WorklistQuery(conditions, ds, keys)


def _sequence_has_keys(item: Dataset) -> bool:
    return any(not _is_universal(_as_text(e.value).strip(), e.VR) for e in item if e.VR != "SQ")


QUERY_KEYS = frozenset(a.keyword for a in WORKLIST_ATTRIBUTES) | {"ScheduledProcedureStepSequence"}


def read_query(query: bytes) -> Dataset:
    """Parse a C-FIND identifier strictly enough that garbage is refused: it must parse
    completely, and hold at least one worklist key."""
    try:
        ds = pydicom.dcmread(io.BytesIO(query), force=True)
        ds.decode()
        elements = list(ds)  # force every element to parse now, not lazily later
    except Exception as exc:  # pydicom raises many types on garbage
        raise WorklistQueryError(f"unreadable worklist query: {exc.__class__.__name__}") from None
    if not any(elem.keyword in QUERY_KEYS for elem in elements):
        raise WorklistQueryError("not a worklist query: none of the worklist keys is present")
    return ds


def _as_text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in raw)
    return str(raw)


def _is_universal(value: str, vr: str) -> bool:
    # A lone "*" is universal matching; for DA/TM/DT Orthanc's matcher would match
    # nothing, so it is sanitised here. "-" is an open range on both sides.
    return value in ("", "*") or (vr in DATE_TIME_VRS and value == "-")


# --------------------------------------------------------------------- matching (pure)
@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, fold: bool) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if fold else 0))


def _digits(v: str) -> str:
    return v.replace(":", "").replace("-", "")


def _range_match(query: str, value: str) -> bool:
    if not value:
        return False
    if "-" in query:
        low, high = query.split("-", 1)
        width = max(len(low), len(high))
        v = value[:width] if width else value
        return (not low or v >= low[: len(v)]) and (not high or v <= high[: len(v)])
    return value.startswith(query) if len(query) < len(value) else value == query


def _pn_forms(value: str) -> list[str]:
    """A PN value and each of its component groups, with trailing separators dropped."""
    groups = value.split("=")
    forms = [value.rstrip("=^")] + [g.rstrip("^") for g in groups if g]
    return [f for f in forms if f] or [""]


def value_matches(query: str, vr: str, value: str, multi_valued: bool = False) -> bool:
    """Does a stored value match one query value (list, wildcard, range or single)?"""
    candidates = value.split("\\") if multi_valued else [value]
    for q in query.split("\\") if vr not in ("LT", "ST", "UT") else [query]:
        for v in candidates:
            if vr in DATE_TIME_VRS:
                if _range_match(q.replace(":", ""), v.replace(":", "")):
                    return True
            elif vr == "PN":
                if _pn_matches(q, v):
                    return True
            elif ("*" in q or "?" in q) and vr in WILDCARD_VRS:
                if _wildcard_regex(q, False).fullmatch(v):
                    return True
            elif q == v:
                return True
    return False


def _pn_matches(q: str, v: str) -> bool:
    wildcard = "*" in q or "?" in q
    target = q.rstrip("=^")
    for form in _pn_forms(v):
        if wildcard:
            if _wildcard_regex(q, True).fullmatch(form):
                return True
        elif target.lower() == form.lower():  # lower(), as the SQL prefilter folds
            return True
    return False


def _datetime_bounds(date_q: str, time_q: str) -> tuple[str, str] | None:
    """Lower and upper YYYYMMDDHHMMSS bounds of a combined SPS start date and time query
    (PS3.4 C.2.2.2.5.1); None when either holds a list."""
    if "\\" in date_q or "\\" in time_q:
        return None
    d_lo, d_hi = date_q.split("-", 1) if "-" in date_q else (date_q, date_q)
    t_q = time_q.replace(":", "")
    t_lo, t_hi = t_q.split("-", 1) if "-" in t_q else (t_q, t_q)
    t_lo = t_lo.split(".")[0]
    t_hi = t_hi.split(".")[0]
    low = (d_lo + (t_lo or "").ljust(6, "0")) if d_lo else ""
    high = (d_hi + (t_hi or "").ljust(6, "9")) if d_hi else ""
    return low, high


def combined_start_matches(date_q: str, time_q: str, step_date: str, step_time: str) -> bool:
    """Combined date and time range matching of the SPS start."""
    bounds = _datetime_bounds(date_q, time_q)
    if bounds is None:
        return value_matches(date_q, "DA", step_date) and value_matches(time_q, "TM", step_time)
    if not step_date:
        return False
    low, high = bounds
    v = step_date + step_time.replace(":", "").split(".")[0].ljust(6, "0")
    return (not low or v >= low) and (not high or v <= high)


def _sequence_matches(query_item: Dataset, stored: Sequence[Dataset]) -> bool:
    keys = [e for e in query_item if e.VR != "SQ" and not _is_universal(_as_text(e.value).strip(), e.VR)]
    for item in stored:
        ok = True
        for q in keys:
            v = item.get(q.tag)
            vr = q.VR if q.VR not in ("UN", None) else dictionary_VR(q.tag)
            if v is None or not value_matches(_as_text(q.value).strip(), vr, _as_text(v.value), True):
                ok = False
                break
        if ok:
            return True
    return False


class StepView:
    """A step seen by the matcher: values read once, the stored item parsed on demand
    (only sequence matching needs it)."""

    def __init__(self, step: SPS) -> None:
        self.step = step
        self._item: Dataset | None = None

    def value(self, attr: WorklistAttribute) -> str:
        return attribute_value(self.step, attr)

    def sequence(self, attr: WorklistAttribute) -> Sequence[Dataset]:
        if self._item is None:
            if self.step.worklist_item is None:
                refresh_worklist_item(self.step)
            self._item = pydicom.dcmread(io.BytesIO(self.step.worklist_item))
        holder = self._item.ScheduledProcedureStepSequence[0] if attr.in_sps else self._item
        return holder.get(attr.keyword) or []


def condition_matches(view: StepView, cond: Condition, conditions: Sequence[Condition] = ()) -> bool:
    """Does one condition keep the step? SPS start date and time are matched combined when
    both are asked."""
    attr = cond.attr
    if attr.vr == "SQ":
        return _sequence_matches(cond.items, view.sequence(attr)) if cond.items is not None else True
    if attr in (START_DATE, START_TIME):
        other = START_TIME if attr is START_DATE else START_DATE
        pair = next((c for c in conditions if c.attr is other), None)
        if pair is not None:
            date_c, time_c = (cond, pair) if attr is START_DATE else (pair, cond)
            return combined_start_matches(date_c.value, time_c.value, view.value(START_DATE), view.value(START_TIME))
    return value_matches(cond.value, attr.vr, view.value(attr), attr.multi_valued)


def step_matches(step: SPS, conditions: Iterable[Condition]) -> bool:
    conditions = list(conditions)
    view = StepView(step)
    return all(condition_matches(view, c, conditions) for c in conditions)


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


def _date_bounds(q: str) -> tuple[datetime | None, datetime | None] | None:
    """Datetime bounds of a DA query (single or range); None when not a plain form."""
    if "\\" in q:
        return None
    try:
        if "-" in q:
            low, high = q.split("-", 1)
            lo = datetime.strptime(low, "%Y%m%d") if low else None
            hi = datetime.strptime(high, "%Y%m%d") + timedelta(days=1) if high else None
            return lo, hi
        d = datetime.strptime(q, "%Y%m%d")
        return d, d + timedelta(days=1)
    except ValueError:
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
    (every row) instead of the start time or name index."""
    return (SPS.status + "").in_(list(statuses))


def base_statement(conditions: Sequence[Condition], default_statuses: Sequence[str], ordered: bool = True):
    """The SQL prefilter of a query: a superset of the matching steps, in schedule order.
    Steps are loaded with their order and patient, unless every key is a step attribute
    (a scanner's AE title and date): then the step alone, which halves the loading."""
    if all(c.attr.in_sps and c.attr.vr != "SQ" for c in conditions):
        stmt = select(SPS)
    else:
        stmt = (
            select(SPS)
            .join(SPS.requested_procedure)
            .join(RequestedProcedure.order)
            .join(Order.patient)
            .options(contains_eager(SPS.requested_procedure).contains_eager(RequestedProcedure.order)
                     .contains_eager(Order.patient))
        )
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
    ds = pydicom.dcmread(io.BytesIO(step.worklist_item))
    item = ds.ScheduledProcedureStepSequence[0]
    for tag, value in changes.items():
        item[tag].value = value
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _find_universal(session: Session, wq: WorklistQuery, default_statuses: Sequence[str], limit: int,
                    calling_aet: str) -> WorklistResult:
    """No key restricts the answer: the first `limit` stored items in schedule order,
    read without loading steps (items missing are built on the slow path)."""
    rows = session.execute(
        select(SPS.id, SPS.worklist_item).where(_answered_status(default_statuses))
        .order_by(SPS.start_datetime, SPS.id).limit(limit + 1)).all()
    incomplete = len(rows) > limit
    items = []
    for step_id, item in rows[:limit]:
        if item is None:
            step = session.get(SPS, step_id)
            refresh_worklist_item(step)
            item = step.worklist_item
        items.append(item)
    log.info("worklist query from %s: universal, %d answer(s)%s", calling_aet or "?", len(items),
             " (incomplete)" if incomplete else "")
    return WorklistResult(items, incomplete, len(rows), wq, False)


def find(session: Session, query: bytes, *, default_statuses: Sequence[str], limit: int,
         calling_aet: str = "") -> WorklistResult:
    """Answer one C-FIND MWL query with stored worklist items."""
    wq = read_worklist_query(query)
    conditions, station_rule = effective_conditions(session, wq, calling_aet)
    if not conditions:
        return _find_universal(session, wq, default_statuses, limit, calling_aet)
    # A name prefilter is the selective one: SQLite (without statistics) would rather walk
    # the start-time index to skip sorting, so those candidates are sorted here instead.
    in_sql_order = not any(c.attr.prefilter is not None and c.attr.prefilter(c.value) is not None
                           for c in conditions)
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
            if step.worklist_item is None:
                refresh_worklist_item(step)
            items.append(_project(step, wq.conditions) or step.worklist_item)
    finally:
        result.close()
    # Key names only: values may be patient data, logged at DEBUG only.
    log.info("worklist query from %s: keys %s, %d row(s) considered, %d answer(s)%s",
             calling_aet or "?", ",".join(sorted({c.attr.keyword for c in conditions})) or "(none)",
             considered, len(items), " (incomplete)" if incomplete else "")
    log.debug("worklist query values: %s", [(c.attr.keyword, c.value) for c in conditions])
    return WorklistResult(items, incomplete, considered, wq, station_rule)


__all__ = ["build_item", "refresh_worklist_item", "parse_query", "read_worklist_query", "value_matches",
           "step_matches", "condition_matches", "find", "WorklistResult", "WorklistQuery",
           "WorklistQueryError", "Condition", "BY_KEYWORD", "STRING_VRS"]
