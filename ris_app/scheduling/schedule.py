"""The schedule of one day: the steps that start on a site day, for the technologists' page
and `GET /api/worklist` alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, contains_eager

from ris_app.clock import site_day_bounds
from ris_app.model import Order, RequestedProcedure
from ris_app.model import ScheduledProcedureStep as SPS


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
