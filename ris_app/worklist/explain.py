"""The query explainer: for a logged worklist C-FIND, say for each step the scanner may
have expected which rule kept it out (a key's value, the default statuses, the station
rule, the answer cap) or warn when its text cannot travel in the query's character set.

Every C-FIND is logged in the `worklist_query_log` table (calling AE, called AE, keys as
DICOM JSON, answer count); the log files only ever get the key names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds, to_site, utcnow
from ris_app.model import Order, RequestedProcedure, WorklistQueryLog
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.worklist.attributes import WORKLIST_ATTRIBUTES, attribute_value
from ris_app.worklist.matching import (
    START_DATE,
    StepView,
    WorklistQuery,
    condition_matches,
    query_from_dataset,
)
from ris_app.worklist.query import STATUS, WorklistResult, effective_conditions

# What kind of rule each key is, in words a technologist understands.
RULE_NAMES = {"DA": "date range", "TM": "time range", "AE": "AE title", "PN": "name", "SQ": "sequence"}
CANDIDATE_CAP = 200
LOG_KEEP_DAYS = 30  # the log serves "why not yesterday?", not an archive
_PRUNE_EVERY = 500
_logged_since_prune = 0


def log_query(
    session: Session, wq: WorklistQuery, calling_aet: str, called_aet: str, result: WorklistResult, duration_ms: float
) -> WorklistQueryLog:
    entry = WorklistQueryLog(
        calling_aet=calling_aet[:16],
        called_aet=called_aet[:16],
        query=wq.dataset.to_json_dict(),
        answers=len(result.items),
        incomplete=result.incomplete,
        duration_ms=round(duration_ms, 2),
    )
    session.add(entry)
    global _logged_since_prune
    _logged_since_prune += 1
    if _logged_since_prune >= _PRUNE_EVERY:  # now and then, not on every scanner poll
        _logged_since_prune = 0
        session.execute(
            delete(WorklistQueryLog).where(WorklistQueryLog.received_at < utcnow() - timedelta(days=LOG_KEEP_DAYS))
        )
    return entry


def _rule(attr) -> str:
    return RULE_NAMES.get(attr.vr, "value")


def _charset_problems(step: SPS, charset: str) -> list[str]:
    """Text attributes of the step that the query's character set cannot carry."""
    terms = [t.strip() for t in charset.split("\\")] if charset else ["ISO_IR 6"]
    if "ISO_IR 192" in terms or "GB18030" in terms:
        return []
    # The default repertoire is ASCII (pydicom reads it leniently as Latin-1).
    codecs = ["ascii"] if terms in (["ISO_IR 6"], [""]) else convert_encodings(terms)
    problems = []
    for attr in WORKLIST_ATTRIBUTES:
        if attr.vr not in ("PN", "LO", "SH", "LT", "ST", "UT"):
            continue
        value = attribute_value(step, attr)
        if not value:
            continue
        if not any(_encodes(value, c) for c in codecs):
            problems.append(attr.keyword)
    return problems


def _encodes(value: str, codec: str) -> bool:
    try:
        value.encode(codec)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _misdecoded(cond, view: StepView, conditions) -> str:
    """The value a key would have had if its bytes, declared Latin-1 or default, were
    read as UTF-8 (a common scanner misconfiguration), when that value matches; else ""."""
    if cond.attr.vr == "SQ" or cond.value.isascii():
        return ""
    try:
        fixed = cond.value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return ""
    return fixed if condition_matches(view, replace(cond, value=fixed), conditions) else ""


def candidates(
    session: Session, entry: WorklistQueryLog, wq: WorklistQuery, accession: str = "", sps_id: str = ""
) -> Sequence[SPS]:
    """The steps the scanner may have expected: those named, else the ones scheduled on
    its AE title within a week of the date it asked for (or of the query)."""
    stmt = select(SPS).join(SPS.requested_procedure).join(RequestedProcedure.order)
    if accession or sps_id:
        clauses = []
        if accession:
            clauses.append(Order.accession_number == accession)
        if sps_id:
            clauses.append(SPS.sps_id == sps_id)
        stmt = stmt.where(or_(*clauses))
    else:
        day = to_site(entry.received_at).date()  # the scanner's day, as its DA keys are
        date_cond = wq.condition(START_DATE.keyword)
        if date_cond:
            with contextlib.suppress(ValueError):
                day = datetime.strptime(date_cond.value.replace("-", "")[:8], "%Y%m%d").date()
        stmt = stmt.where(
            SPS.station_aet.contains(entry.calling_aet),
            SPS.start_datetime >= site_day_bounds(day - timedelta(days=7))[0],
            SPS.start_datetime < site_day_bounds(day + timedelta(days=7))[1],
        )
    return session.scalars(stmt.order_by(SPS.start_datetime, SPS.id).limit(CANDIDATE_CAP)).all()


def explain(
    session: Session,
    entry: WorklistQueryLog,
    *,
    default_statuses: Sequence[str],
    limit: int,
    accession: str = "",
    sps_id: str = "",
) -> dict:
    """For each candidate step: answered or not, and every rule that kept it out."""
    wq = query_from_dataset(Dataset.from_json(entry.query))
    conditions, station_rule = effective_conditions(session, wq, entry.calling_aet)
    asks_status = any(c.attr is STATUS for c in conditions)
    steps_out = []
    matched = 0
    for step in candidates(session, entry, wq, accession, sps_id):
        view = StepView(step)
        reasons = []
        if not asks_status and step.status not in default_statuses:
            reasons.append(
                {
                    "rule": "status",
                    "key": STATUS.keyword,
                    "step_has": step.status,
                    "why": f"only {', '.join(default_statuses)} steps are answered when the query "
                    "asks for no ScheduledProcedureStepStatus",
                }
            )
        for cond in conditions:
            if condition_matches(view, cond, conditions):
                continue
            reason = {
                "rule": "station rule" if cond.added_by else _rule(cond.attr),
                "key": cond.attr.keyword,
                "asked": cond.value,
                "step_has": view.value(cond.attr) if cond.attr.vr != "SQ" else "(sequence)",
            }
            misread = _misdecoded(cond, view, conditions)
            if misread:
                reason["rule"] = "charset"
                reason["why"] = (
                    f"the query declares {wq.charset or 'no character set'} but its {cond.attr.keyword} "
                    f"bytes are UTF-8: read as UTF-8 it is {misread!r}, which matches"
                )
            elif cond.added_by:
                reason["why"] = (
                    f"station {entry.calling_aet} answers only its own steps when the query names "
                    "no ScheduledStationAETitle"
                )
            elif cond.attr.keyword in ("ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"):
                reason["why"] = "outside the scheduled start date/time asked (date and time matched combined)"
            else:
                reason["why"] = f"{cond.attr.keyword} does not match"
            reasons.append(reason)
        notes = []
        problems = _charset_problems(step, wq.charset)
        if problems:
            notes.append(
                {
                    "rule": "charset",
                    "why": f"the query's character set ({wq.charset or 'default repertoire'}) "
                    f"cannot carry {', '.join(problems)}: the scanner may show it garbled",
                    "keys": problems,
                }
            )
        answered = not reasons
        if answered:
            matched += 1
            if matched > limit:
                answered = False
                reasons.append({"rule": "limit", "why": f"matched, but the answer was cut at {limit} items"})
        order = step.requested_procedure.order
        steps_out.append(
            {
                "accession_number": order.accession_number,
                "sps_id": step.sps_id,
                "status": step.status,
                "station_aet": step.station_aet,
                "scheduled_start": to_site(step.start_datetime).isoformat(),
                "answered": answered,
                "reasons": reasons,
                "notes": notes,
            }
        )
    return {
        "query_id": entry.id,
        "received_at": entry.received_at.isoformat(),
        "calling_aet": entry.calling_aet,
        "called_aet": entry.called_aet,
        "answers": entry.answers,
        "incomplete": entry.incomplete,
        "keys": [{"key": c.attr.keyword, "value": c.value, "added_by": c.added_by or "query"} for c in conditions],
        "station_rule": station_rule,
        "default_statuses": list(default_statuses) if not asks_status else [],
        "character_set": wq.charset,
        "steps": steps_out,
    }


__all__ = ["candidates", "explain", "log_query"]
