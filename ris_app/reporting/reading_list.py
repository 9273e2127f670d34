"""The radiologists' reading list: studies to read, most urgent first, with their priors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session, joinedload

from ris_app.clock import site_day_bounds
from ris_app.model import (
    DRAFT,
    FINAL,
    PRELIMINARY,
    Order,
    Patient,
    Report,
    Study,
    User,
)

log = logging.getLogger(__name__)

PRIORITY_RANK = case((Order.priority == "STAT", 0), (Order.priority == "HIGH", 1), else_=2)
UNREAD = "UNREAD"


@dataclass
class ReadingFilters:
    modality: str = ""
    date_from: date | None = None
    date_to: date | None = None
    status: str = ""  # "", UNREAD, DRAFT, PRELIMINARY
    radiologist_id: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ReadingFilters:
        """The filters of the worklist's query string (its form's field names); what does
        not parse is ignored, as the form would."""
        mine = args.get("radiologist", "")
        status = args.get("status", "")
        return cls(
            modality=args.get("modality", "").strip()[:16],
            date_from=_day(args.get("from", "")),
            date_to=_day(args.get("to", "")),
            status=status if status in (UNREAD, DRAFT, PRELIMINARY) else "",
            radiologist_id=int(mine) if mine.isdigit() else None,
        )

    def as_args(self) -> dict[str, str]:
        """The query string that gives these filters back (only the ones set), so the
        report pages and "Sign and next" keep the worklist the reader chose."""
        args = {
            "modality": self.modality,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "status": self.status,
            "radiologist": str(self.radiologist_id or ""),
        }
        return {k: v for k, v in args.items() if v}


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass
class ReadingRow:
    study: Study
    report: Report | None
    priority: str
    priors: list[tuple[Study, Report | None]] = field(default_factory=list)


def reading_worklist(session: Session, filters: ReadingFilters, limit: int = 200) -> list[ReadingRow]:
    """Studies with images and no signed report: STAT, then HIGH (urgent), then the rest;
    oldest first within each."""
    rows = [
        ReadingRow(study=s, report=r, priority=s.order.priority if s.order else "ROUTINE")
        for s, r in session.execute(_worklist_query(filters).limit(limit)).unique().all()
    ]
    priors = priors_by_patient(session, [row.study for row in rows])
    for row in rows:
        row.priors = [p for p in priors.get(patient_mrn(row.study), []) if p[0].id != row.study.id]
    return rows


def next_unread(session: Session, filters: ReadingFilters, *, besides: int) -> Study | None:
    """The first study of the worklist under `filters` (same order) with no report yet,
    other than study `besides`: where "Sign and next" goes."""
    stmt = _worklist_query(filters).where(Report.id.is_(None), Study.id != besides).limit(1)
    row = session.execute(stmt).unique().first()
    return row[0] if row else None


def _worklist_query(filters: ReadingFilters):
    stmt = (
        select(Study, Report)
        .outerjoin(Report, Report.study_id == Study.id)
        .outerjoin(Order, Order.id == Study.order_id)
        .options(joinedload(Study.order))
        .where(Study.deleted_at.is_(None), Study.instance_count > 0, or_(Report.id.is_(None), Report.status != FINAL))
        .order_by(PRIORITY_RANK, Study.first_received_at, Study.id)
    )
    if filters.modality:
        stmt = stmt.where(Study.modalities.contains(filters.modality.upper()))
    # The dates a reader picks are the site's days (the page shows received times in site time).
    if filters.date_from:
        stmt = stmt.where(Study.first_received_at >= site_day_bounds(filters.date_from)[0])
    if filters.date_to:
        stmt = stmt.where(Study.first_received_at < site_day_bounds(filters.date_to)[1])
    if filters.status == UNREAD:
        stmt = stmt.where(Report.id.is_(None))
    elif filters.status in (DRAFT, PRELIMINARY):
        stmt = stmt.where(Report.status == filters.status)
    if filters.radiologist_id:
        stmt = stmt.where(Report.author_id == filters.radiologist_id)
    return stmt


def patient_mrn(study: Study) -> str:
    """The patient of a study: its order's patient, else the PatientID in its images."""
    return study.order.patient.mrn if study.order is not None else study.patient_mrn


def priors_by_patient(session: Session, studies: list[Study]) -> dict[str, list[tuple[Study, Report | None]]]:
    """Every study of the patients of `studies`, newest first, with its report, by MRN."""
    mrns = {patient_mrn(s) for s in studies} - {""}
    if not mrns:
        return {}
    patient_ids = list(session.scalars(select(Patient.id).where(Patient.mrn.in_(mrns))).all())
    stmt = (
        select(Study, Report)
        .outerjoin(Report, Report.study_id == Study.id)
        .outerjoin(Order, Order.id == Study.order_id)
        .options(joinedload(Study.order))
        .where(Study.deleted_at.is_(None), or_(Study.patient_mrn.in_(mrns), Order.patient_id.in_(patient_ids)))
        .order_by(Study.first_received_at.desc(), Study.id.desc())
    )
    found: dict[str, list[tuple[Study, Report | None]]] = {}
    for study, report in session.execute(stmt).unique().all():
        found.setdefault(patient_mrn(study), []).append((study, report))
    return found


def priors_of(session: Session, study: Study) -> list[tuple[Study, Report | None]]:
    return [p for p in priors_by_patient(session, [study]).get(patient_mrn(study), []) if p[0].id != study.id]


def radiologists(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.role.in_(("radiologist", "admin")), User.active).order_by(User.username)
        ).all()
    )
