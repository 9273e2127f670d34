"""Reading a worklist query and matching it against a step, in pure Python.

Matching follows DICOM PS3.4 C.2.2.2 with dcmtk's wlmscpfs as the reference: universal,
single value, list, wildcard, range (also the combined Scheduled Procedure Step start date
and time), sequence matching, several values in one stored attribute, and PN matching
insensitive to case, against every component group.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration.search import mrn_folded
from ris_app.worklist.attributes import (
    BY_KEYWORD,
    DATE_TIME_VRS,
    WILDCARD_VRS,
    WORKLIST_ATTRIBUTES,
    WorklistAttribute,
    as_text,
    attribute_value,
)
from ris_app.worklist.items import stored_item

log = logging.getLogger(__name__)

START_DATE = BY_KEYWORD["ScheduledProcedureStepStartDate"]
START_TIME = BY_KEYWORD["ScheduledProcedureStepStartTime"]


class WorklistQueryError(ValueError):
    """The query itself cannot be read (not DICOM, or no dataset)."""


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
            value = as_text(elem.value).strip()
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
    return any(not _is_universal(as_text(e.value).strip(), e.VR) for e in item if e.VR != "SQ")


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
    keys = [e for e in query_item if e.VR != "SQ" and not _is_universal(as_text(e.value).strip(), e.VR)]
    for item in stored:
        ok = True
        for q in keys:
            v = item.get(q.tag)
            vr = q.VR if q.VR not in ("UN", None) else dictionary_VR(q.tag)
            if v is None or not value_matches(as_text(q.value).strip(), vr, as_text(v.value), True):
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
            self._item = pydicom.dcmread(io.BytesIO(stored_item(self.step)))
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
    if attr.as_mrn:
        return value_matches(mrn_folded(cond.value), attr.vr, mrn_folded(view.value(attr)), attr.multi_valued)
    return value_matches(cond.value, attr.vr, view.value(attr), attr.multi_valued)


def step_matches(step: SPS, conditions: Iterable[Condition]) -> bool:
    conditions = list(conditions)
    view = StepView(step)
    return all(condition_matches(view, c, conditions) for c in conditions)
