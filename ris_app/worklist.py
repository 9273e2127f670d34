"""Modality Worklist: building worklist items and answering C-FIND queries.

Items are built once per change of a step (see `refresh_worklist_item`) and kept as DICOM
Part 10 bytes, so answering a query is a SQL prefilter, a Python finish on the few rows
left, and returning stored bytes. Matching follows DICOM PS3.4 C.2.2.2: universal,
single value, list, wildcard and range matching.
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Iterable, Sequence

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, contains_eager

from .dicom_map import BY_KEYWORD, WORKLIST_ATTRIBUTES, WorklistAttribute
from .models import Order, Patient, RequestedProcedure, ScheduledProcedureStep as SPS

log = logging.getLogger(__name__)

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"
STRING_VRS = frozenset({"AE", "CS", "LO", "PN", "SH", "LT", "ST", "UT", "UC", "DA", "TM", "DT", "UI"})


class WorklistQueryError(ValueError):
    """The query itself cannot be read (not DICOM, or no dataset)."""


# --------------------------------------------------------------------- item building
def build_item(step: SPS) -> bytes:
    """The worklist item of one step, as DICOM Part 10 bytes in UTF-8."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    sps = Dataset()
    for attr in WORKLIST_ATTRIBUTES:
        target = sps if attr.in_sps else ds
        setattr(target, attr.keyword, attr.value(step) or "")
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
        _apply_extra(ds, step.extra_attributes)
    return _to_part10(ds)


def _apply_extra(ds: Dataset, extra: dict) -> None:
    """Attributes kept verbatim from an imported item (DICOM JSON), for those the RIS does
    not model."""
    extra_ds = Dataset.from_json(extra)
    for elem in extra_ds:
        if elem.tag not in ds:
            ds.add(elem)


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
    attr: WorklistAttribute
    value: str


def parse_query(query: bytes) -> list[Condition]:
    """The non-universal matching keys of a C-FIND MWL identifier that the RIS models."""
    ds = read_query(query)
    conditions: list[Condition] = []

    def collect(d: Dataset, in_sps: bool) -> None:
        for attr in WORKLIST_ATTRIBUTES:
            if attr.in_sps != in_sps or attr.keyword not in d:
                continue
            raw = d[attr.keyword].value
            value = _as_text(raw).strip()
            if _is_universal(value, attr.vr):
                continue
            conditions.append(Condition(attr, value))

    collect(ds, False)
    seq = ds.get("ScheduledProcedureStepSequence")
    if seq:
        collect(seq[0], True)
    return conditions


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
    return value in ("", "*") or (vr in ("DA", "TM", "DT") and value == "-")


# --------------------------------------------------------------------- matching (pure)
@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _range_match(query: str, value: str) -> bool:
    if not value:
        return False
    if "-" in query:
        low, high = query.split("-", 1)
        width = max(len(low), len(high))
        v = value[:width] if width else value
        return (not low or v >= low[: len(v)]) and (not high or v <= high[: len(v)])
    return value.startswith(query) if len(query) < len(value) else value == query


def value_matches(query: str, vr: str, value: str, multi_valued: bool = False) -> bool:
    """Does a stored value match one query value (list, wildcard, range or single)?"""
    candidates = value.split("\\") if multi_valued else [value]
    for q in query.split("\\"):
        for v in candidates:
            if vr in ("DA", "TM", "DT"):
                if _range_match(q.replace(":", ""), v):
                    return True
            elif "*" in q or "?" in q:
                if _wildcard_regex(q).fullmatch(v):
                    return True
            elif vr == "PN":
                if q.rstrip("^").casefold() == v.rstrip("^").casefold():
                    return True
            elif q == v:
                return True
    return False


def step_matches(step: SPS, conditions: Iterable[Condition]) -> bool:
    return all(value_matches(c.value, c.attr.vr, c.attr.value(step), c.attr.multi_valued) for c in conditions)


# --------------------------------------------------------------------- SQL prefilter
def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _sql_filter(cond: Condition):
    """A SQL condition that keeps a superset of the rows the condition matches, or None."""
    col = cond.attr.column
    if col is None:
        return None
    values = cond.value.split("\\")
    if cond.attr.multi_valued:
        # Stored as a\b: prefilter with LIKE on each value; Python finishes exactly.
        return or_(*[col.like(f"%{_like_pattern(v)}%", escape="\\") for v in values])
    clauses = []
    for v in values:
        if "*" in v or "?" in v:
            clauses.append(col.like(_like_pattern(v), escape="\\"))
        else:
            clauses.append(col == v)
    return or_(*clauses)


def _date_bounds(q: str) -> tuple[datetime | None, datetime | None] | None:
    """Datetime bounds of a DA query (single, range or list); None when not a plain form."""
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


def find(session: Session, query: bytes, *, default_statuses: Sequence[str], limit: int) -> WorklistResult:
    """Answer one C-FIND MWL query with stored worklist items."""
    conditions = parse_query(query)
    stmt = (
        select(SPS)
        .join(SPS.requested_procedure)
        .join(RequestedProcedure.order)
        .join(Order.patient)
        .options(contains_eager(SPS.requested_procedure).contains_eager(RequestedProcedure.order).contains_eager(Order.patient))
    )
    if not any(c.attr.keyword == "ScheduledProcedureStepStatus" for c in conditions):
        stmt = stmt.where(SPS.status.in_(list(default_statuses)))
    for cond in conditions:
        clause = _sql_filter(cond)
        if clause is not None:
            stmt = stmt.where(clause)
        if cond.attr.keyword == "ScheduledProcedureStepStartDate":
            bounds = _date_bounds(cond.value)
            if bounds:
                lo, hi = bounds
                if lo is not None:
                    stmt = stmt.where(SPS.start_datetime >= lo)
                if hi is not None:
                    stmt = stmt.where(SPS.start_datetime < hi)
    stmt = stmt.order_by(SPS.start_datetime, SPS.id)
    items: list[bytes] = []
    considered = 0
    incomplete = False
    for step in session.scalars(stmt):
        considered += 1
        if not step_matches(step, conditions):
            continue
        if len(items) >= limit:
            incomplete = True
            break
        if step.worklist_item is None:
            refresh_worklist_item(step)
        items.append(step.worklist_item)
    log.info("worklist query: %d key(s), %d row(s) considered, %d answer(s)%s",
             len(conditions), considered, len(items), " (incomplete)" if incomplete else "")
    return WorklistResult(items, incomplete, considered)


__all__ = ["build_item", "refresh_worklist_item", "parse_query", "value_matches", "find",
           "WorklistResult", "WorklistQueryError", "BY_KEYWORD", "STRING_VRS"]
