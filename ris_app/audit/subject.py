"""Which patient and order a unit of work is about: the MRN and accession number an audit
event names, read from the rows the work touched or from the row a request names.

One table (`_OF`) says, for each kind of row, how to reach its patient and order; the web
layer, the HL7 processor and MPPS all ask it, so an event names the same identifiers
whichever door the change came through."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.model import (
    AuditEvent,
    Charge,
    CriticalResult,
    Order,
    Patient,
    PerformedProcedureStep,
    Report,
    ReportVersion,
    RequestedProcedure,
    ScheduledProcedureStep,
    Study,
    StudyCorrection,
)

Subject = tuple[str, str]  # (MRN, accession number); "" when unknown
NOBODY: Subject = ("", "")


def _order(o: Order | None) -> Subject:
    return (o.patient.mrn, o.accession_number) if o is not None else NOBODY


def _study(st: Study | None) -> Subject:
    """A linked study belongs to its order's patient (the RIS's truth, whatever the images
    said); an unmatched one only to the identifiers its images carry."""
    if st is None:
        return NOBODY
    return _order(st.order) if st.order is not None else (st.patient_mrn, st.accession_number)


# How each kind of row reaches its patient and order.
_OF: dict[type, Callable[[object], Subject]] = {
    Patient: lambda p: (p.mrn, ""),
    Order: _order,
    RequestedProcedure: lambda rp: _order(rp.order),
    ScheduledProcedureStep: lambda sps: _order(sps.requested_procedure.order if sps.requested_procedure else None),
    Study: _study,
    Report: lambda r: _study(r.study),
    ReportVersion: lambda v: _study(v.report.study if v.report else None),
    CriticalResult: lambda c: _study(c.report.study if c.report else None),
    PerformedProcedureStep: lambda p: _order_of_step(p.step) if p.step else ("", p.accession_number),
    StudyCorrection: lambda c: _study(c.study),
    Charge: lambda c: _order_of_step(c.step) if c.step else ("", c.accession_number),
}


def _order_of_step(step: ScheduledProcedureStep) -> Subject:
    return _OF[ScheduledProcedureStep](step)


def of(row: object) -> Subject:
    """The (MRN, accession) of one row; NOBODY for a row that belongs to no patient."""
    reach = _OF.get(type(row))
    if reach is None:
        return NOBODY
    try:
        mrn, accession = reach(row)
    except AttributeError:  # a relationship not set yet (a row being built)
        return NOBODY
    return (mrn or "", accession or "")


def first(rows: Iterable[object]) -> Subject:
    """The subject of the first row that names an order, else of the first that names a
    patient: a request that creates an order also loads its patient."""
    found = [s for s in (of(r) for r in rows) if s != NOBODY]
    return next((s for s in found if s[1]), found[0] if found else NOBODY)


def by_id(session: Session, model: type, row_id: object, column: str = "id") -> Subject:
    """The subject of the row of `model` whose `column` is `row_id` (NOBODY if none)."""
    row = session.scalars(select(model).where(getattr(model, column) == row_id).limit(1)).first()
    return of(row) if row is not None else NOBODY


# ------------------------------------------------------------------ rows a transaction touched
_TOUCHED = "audit_touched"
_WATCHED = "_ris_audit_watched"


def _note_flushed(session: Session, _context, _instances) -> None:
    session.info.setdefault(_TOUCHED, []).extend(_pending(session))


def _forget(session: Session, *_args) -> None:
    session.info.pop(_TOUCHED, None)


def watch(target: Session | sessionmaker[Session]) -> None:
    """Remember, per transaction, the rows each flush of `target` wrote (a flush empties
    session.new/dirty before the commit that records the event)."""
    # Marked on the target itself: event.contains() keys its registry by id(), and a new
    # sessionmaker at the address of a collected one (another app in the same process) was
    # taken as watched already, so its flushed rows went unseen and writes unaudited.
    if getattr(target, _WATCHED, False):
        return
    event.listen(target, "before_flush", _note_flushed)
    event.listen(target, "after_commit", _forget)
    event.listen(target, "after_soft_rollback", _forget)
    setattr(target, _WATCHED, True)


def touched(session: Session) -> Subject:
    """The subject of what the session's transaction wrote so far (flushed or pending)."""
    return first(_rows(session))


def _pending(session: Session) -> list[object]:
    # session.dirty holds every row an attribute was set on, even to its old value: an
    # idempotent repeat (the same study event twice) changes nothing and is no event.
    return [*session.new, *(r for r in session.dirty if session.is_modified(r)), *session.deleted]


def _rows(session: Session) -> list[object]:
    return [*session.info.get(_TOUCHED, []), *_pending(session)]


def changed(session: Session, ignore: tuple[type, ...] = ()) -> bool:
    """Whether the transaction wrote (or is about to write) a row other than `ignore`'s
    kinds: the login bookkeeping a page request commits on its way is no patient data."""
    return any(not isinstance(r, (AuditEvent, *ignore)) for r in _rows(session))
