"""The schedule of one day: the steps that start on a site day, for the technologists' page
and `GET /api/worklist` alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager

from ris_app.clock import site_day_bounds
from ris_app.model import Order, Report, RequestedProcedure, Study
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.model.reporting import FINAL
from ris_app.scheduling.states import SPSStatus

# Not a step state: what the pages show once the exam's report is signed. The step itself
# may still read STARTED (images started it; nobody pressed "Complete", no MPPS COMPLETED
# came), but the department's question, "is it done?", is answered by the signature.
REPORTED = "REPORTED"
# States a signed report does not paper over: the exam ended otherwise.
_SHOWN_AS_IS = frozenset({SPSStatus.CANCELED, SPSStatus.DISCONTINUED, SPSStatus.NO_SHOW})


def steps_with_order_and_patient() -> Select:
    """Steps joined to their order and patient, loaded together in one query."""
    return (
        select(SPS)
        .join(SPS.requested_procedure)
        .join(RequestedProcedure.order)
        .join(Order.patient)
        .options(
            contains_eager(SPS.requested_procedure)
            .contains_eager(RequestedProcedure.order)
            .contains_eager(Order.patient)
        )
    )


def day_steps(
    session: Session, day: date, *, modality: str = "", station_aet: str = "", statuses: Sequence[str] = ()
) -> list[SPS]:
    """Steps starting on `day` as the department counts days (site midnight to midnight,
    compared in UTC), in start order, loaded with their order and patient. Optionally only
    one modality, steps whose AE titles contain `station_aet`, or some statuses."""
    start, end = site_day_bounds(day)
    stmt = steps_with_order_and_patient().where(SPS.start_datetime >= start, SPS.start_datetime < end)
    if modality:
        stmt = stmt.where(SPS.modality == modality)
    if station_aet:
        stmt = stmt.where(SPS.station_aet.contains(station_aet))
    if statuses:
        stmt = stmt.where(SPS.status.in_(list(statuses)))
    return list(session.scalars(stmt.order_by(SPS.start_datetime, SPS.id)))


def reported_orders(session: Session, order_ids: Sequence[int]) -> set[int]:
    """Which of `order_ids` have a study with a signed (final) report."""
    if not order_ids:
        return set()
    stmt = (
        select(Study.order_id)
        .join(Report, Report.study_id == Study.id)
        .where(Study.order_id.in_(list(order_ids)), Study.deleted_at.is_(None), Report.status == FINAL)
    )
    return set(session.scalars(stmt))


def shown_status(step: SPS, reported: set[int]) -> str:
    """The one place that decides the state a page shows for a step: REPORTED once its
    order's report is signed (unless it ended otherwise), else the step's own status.
    `reported`: reported_orders of the orders on the page."""
    if step.requested_procedure.order_id in reported and step.status not in _SHOWN_AS_IS:
        return REPORTED
    return str(step.status)
