"""The unmatched-studies inbox: for a study that matched no order, the orders it most
likely belongs to, scored by patient ID, name, birth date, date, modality and AE title.

One table (WEIGHTS) says what each kind of agreement is worth; a candidate's reasons list
which ones matched, so the clerk sees why an order is proposed.
"""

from __future__ import annotations

import contextlib
import unicodedata
from datetime import date, datetime, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds, to_site
from ris_app.model import Order, Patient, RequestedProcedure, Study
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration.search import mrn_clause, same_mrn
from ris_app.scheduling.states import SPSStatus

WEIGHTS = {
    "patient_id": 40,
    "family_name": 20,
    "given_name": 5,
    "birth_date": 15,
    "date": 10,
    "modality": 5,
    "station_aet": 5,
}
WINDOW_DAYS = 3  # orders scheduled this close to the study date are candidates
MIN_SCORE = 10


def unmatched_studies() -> Select[tuple[Study]]:
    """The studies of the inbox: held in Orthanc (not deleted) and linked to no order.
    A query, so each caller adds its own order, limit or count."""
    return select(Study).where(Study.order_id.is_(None), Study.deleted_at.is_(None))


def _fold(text: str) -> str:
    """Case- and accent-insensitive comparison key (Müller == MULLER)."""
    norm = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in norm if not unicodedata.combining(c)).casefold().strip()


def _study_day(study: Study) -> date | None:
    """The StudyDate (the site's date, as the scanner's clock wrote it)."""
    try:
        return datetime.strptime(study.study_date, "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def score(study: Study, order: Order, step: SPS) -> tuple[int, list[str]]:
    p = order.patient
    reasons = []
    if same_mrn(study.patient_mrn, p.mrn):
        reasons.append("patient_id")
    parts = (study.patient_name or "").split("^")
    if parts[0] and _fold(parts[0]) == _fold(p.family_name):
        reasons.append("family_name")
    if len(parts) > 1 and parts[1] and _fold(parts[1]) == _fold(p.given_name):
        reasons.append("given_name")
    if study.patient_birth_date and p.birth_date and study.patient_birth_date == p.birth_date.strftime("%Y%m%d"):
        reasons.append("birth_date")
    day = _study_day(study)
    if day is not None and to_site(step.start_datetime).date() == day:
        reasons.append("date")
    if step.modality in (study.modalities or "").split("\\"):
        reasons.append("modality")
    if study.station_aet and study.station_aet in (step.station_aet or "").split("\\"):
        reasons.append("station_aet")
    return sum(WEIGHTS[r] for r in reasons), reasons


def candidates(session: Session, study: Study, limit: int = 5) -> list[dict]:
    """Orders the study may belong to, best first. Prefilters in SQL: orders of the same
    patient ID or family name, or scheduled within WINDOW_DAYS of the study date, that
    have no study yet and were not canceled."""
    family = (study.patient_name or "").split("^")[0]
    conditions = [mrn_clause(study.patient_mrn or "")]
    if family:
        conditions.append(Patient.family_name.ilike(family))
    day = _study_day(study)
    if day is not None:
        with contextlib.suppress(OverflowError):  # a StudyDate at the calendar's edge: no date window
            conditions.append(
                SPS.start_datetime.between(
                    site_day_bounds(day - timedelta(days=WINDOW_DAYS))[0],
                    site_day_bounds(day + timedelta(days=WINDOW_DAYS))[1],
                )
            )
    linked = select(Study.order_id).where(Study.order_id.is_not(None), Study.deleted_at.is_(None))
    rows = session.execute(
        select(Order, SPS)
        .join(Order.patient)
        .join(Order.requested_procedures)
        .join(RequestedProcedure.steps)
        .where(
            or_(*conditions),
            SPS.status != SPSStatus.CANCELED,
            Order.id.not_in(linked),
            Patient.merged_into_id.is_(None),
        )
        .limit(200)
    ).all()
    out = []
    for order, step in rows:
        points, reasons = score(study, order, step)
        if points >= MIN_SCORE:
            p = order.patient
            out.append(
                {
                    "accession_number": order.accession_number,
                    "score": points,
                    "reasons": reasons,
                    "patient": {
                        "mrn": p.mrn,
                        "family_name": p.family_name,
                        "given_name": p.given_name,
                        "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                    },
                    "modality": step.modality,
                    "scheduled_start": to_site(step.start_datetime).isoformat(),
                    "status": step.status,
                }
            )
    out.sort(key=lambda c: (-c["score"], c["accession_number"]))
    return out[:limit]
