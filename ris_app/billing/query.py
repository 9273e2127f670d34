"""Reading charges: the list by day, status and accession (the API, the review page and
the CSV read the same query, so the CSV sums to the page's total), and the exams
performed without a charge (a leak: the list should stay empty)."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ris_app.billing import settings as billing_settings
from ris_app.billing.dft import amount
from ris_app.clock import site_day_bounds, to_site
from ris_app.model import Charge, ScheduledProcedureStep
from ris_app.scheduling.states import SPSStatus

LIMIT = 2000
CSV_COLUMNS = (
    "charge_id",
    "accession_number",
    "line",
    "corrects",
    "code",
    "code_system",
    "modifier",
    "description",
    "quantity",
    "unit_price",
    "total",
    "status",
    "service_day",
    "performed_at",
    "performing_station",
    "ordering_physician",
    "diagnosis_codes",
    "insurance",
    "reason",
)


def charges(
    session: Session, *, day: date | None = None, status: str = "", accession: str = "", limit: int = LIMIT
) -> list[Charge]:
    stmt = select(Charge).order_by(Charge.service_day, Charge.accession_number, Charge.id).limit(limit)
    if day is not None:
        stmt = stmt.where(Charge.service_day == day)
    if status:
        stmt = stmt.where(Charge.status == status)
    if accession:
        stmt = stmt.where(Charge.accession_number == accession)
    return list(session.scalars(stmt))


def total_cents(rows: list[Charge]) -> int:
    return sum(c.total_cents for c in rows)


def to_dict(c: Charge) -> dict:
    return {
        "id": c.id,
        "accession_number": c.accession_number,
        "line": c.line,
        "corrects": c.corrects_id,
        "kind": c.kind,
        "code": c.code,
        "code_system": c.code_system,
        "modifier": c.modifier,
        "description": c.description,
        "quantity": c.quantity,
        "unit_price": amount(c.unit_price_cents),
        "total": amount(c.total_cents),
        "status": c.status,
        "status_reason": c.status_reason,
        "service_day": c.service_day.isoformat(),
        "performed_at": c.performed_at.isoformat(),
        "performing_station": c.performing_station,
        "ordering_physician": c.ordering_physician,
        "diagnosis_codes": [d for d in c.diagnosis_codes.split("~") if d],
        "created_at": c.created_at.isoformat(),
        "status_changed_at": c.status_changed_at.isoformat(),
    }


def to_csv(rows: list[Charge]) -> str:
    """The day's lines as CSV (amounts in the currency's units, a last line with the total)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for c in rows:
        w.writerow(
            [
                c.id,
                c.accession_number,
                c.line,
                c.corrects_id or "",
                c.code,
                c.code_system,
                c.modifier,
                c.description,
                c.quantity,
                amount(c.unit_price_cents),
                amount(c.total_cents),
                c.status,
                c.service_day.isoformat(),
                to_site(c.performed_at).isoformat(timespec="minutes"),
                c.performing_station,
                c.ordering_physician,
                c.diagnosis_codes,
                c.insurance,
                c.status_reason,
            ]
        )
    w.writerow(["total", "", "", "", "", "", "", "", "", "", amount(total_cents(rows))])
    return out.getvalue()


def uncharged(session: Session, day: date) -> list[ScheduledProcedureStep]:
    """Steps performed on site day `day` (completed; discontinued too under the partial
    rule) that hold no charge line."""
    start, end = site_day_bounds(day)
    performed = [SPSStatus.COMPLETED]
    if billing_settings.current().discontinued == "partial":
        performed.append(SPSStatus.DISCONTINUED)
    return list(
        session.scalars(
            select(ScheduledProcedureStep)
            .where(
                ScheduledProcedureStep.status.in_(performed),
                ScheduledProcedureStep.status_changed_at >= start,
                ScheduledProcedureStep.status_changed_at < end,
                ~exists().where(Charge.step_id == ScheduledProcedureStep.id),
            )
            .order_by(ScheduledProcedureStep.status_changed_at)
            .limit(LIMIT)
        )
    )
