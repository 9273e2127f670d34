"""Charge capture: the one place a performed exam becomes charges, called by
`scheduling.orders.step_changed` whenever a step's status moves, so every completion
(MPPS, the pages, the API, HL7) passes here, in the transaction of the move.

COMPLETED charges the performed procedure; DISCONTINUED charges what
ORTHANC_RIS_BILLING_DISCONTINUED says (none, or partial: the rows `PARTIAL` names, with
modifier 53); CANCELED never. Each captured line has the unique key step:code:kind, so
telling it twice (a repeated MPPS COMPLETED, a retried transaction, an addendum that
re-touches the step) charges once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from ris_app.billing import settings as billing_settings
from ris_app.billing.catalog import items_of, price_on
from ris_app.billing.charges import send
from ris_app.clock import to_site
from ris_app.model import BillingItem, Charge, Patient, PerformedProcedureStep, ScheduledProcedureStep
from ris_app.model.billing import CHARGE
from ris_app.registration.record import insurance_of as registration_insurance_of
from ris_app.scheduling.states import SPSStatus

log = logging.getLogger(__name__)

# Kinds of catalog row a partial (discontinued) exam bills: the work done on the machine,
# not the reading nor the add-ons.
PARTIAL = frozenset({"procedure", "technical"})
DISCONTINUED_MODIFIER = "53"  # CPT: discontinued procedure


def insurance_of(patient: Patient) -> str:
    """The patient's insurance as a charge line keeps it, from the registration record's
    one accessor: payer and plan, member and group numbers; the old free-text field when
    no structured insurance was entered."""
    ins = registration_insurance_of(patient)
    parts = [
        f"{ins.payer} {ins.plan}".strip(),
        f"member {ins.member_number}" if ins.member_number else "",
        f"group {ins.group_number}" if ins.group_number else "",
    ]
    return "; ".join(p for p in parts if p) or ins.note


def billable(items: list[BillingItem], performed: set[str], partial: bool) -> list[BillingItem]:
    """The catalog rows an exam bills: rows with no performed code always, rows with one
    only when the modality reported it; a reported "procedure" row replaces the plain one
    (the performed procedure is billed, not the ordered one). Partial keeps `PARTIAL`."""
    switched = any(i.kind == "procedure" and i.performed_code and i.performed_code in performed for i in items)
    out = []
    for item in items:
        if item.performed_code and item.performed_code not in performed:
            continue
        if switched and item.kind == "procedure" and not item.performed_code:
            continue
        if partial and item.kind not in PARTIAL:
            continue
        out.append(item)
    return out


def capture_key(step: ScheduledProcedureStep, item: BillingItem) -> str:
    return f"{step.id}:{item.code}:{item.kind}"[:64]


def _performed(session: Session, step: ScheduledProcedureStep) -> tuple[datetime, str, set[str]]:
    """When and where the exam was performed and the codes the modality reported: the last
    MPPS of the step, else the step's move to STARTED (or its last move)."""
    pps = session.scalar(
        select(PerformedProcedureStep)
        .where(PerformedProcedureStep.step_id == step.id)
        .order_by(PerformedProcedureStep.id.desc())
        .limit(1)
    )
    started = next((h.changed_at for h in reversed(step.history) if h.to_status == SPSStatus.STARTED), None)
    station = step.station_aet.split("\\")[0]
    if pps is not None:
        codes = {str(c) for c in (pps.performed_codes or [])}
        return pps.started_at or started or step.status_changed_at, pps.performed_station_aet or station, codes
    return started or step.status_changed_at, station, set()


def capture(step: ScheduledProcedureStep) -> list[Charge]:
    """Charge a step that just completed or was discontinued (see the module). Returns the
    lines added (none when they exist already)."""
    session = object_session(step)
    if session is None or step.id is None:
        return []
    cfg = billing_settings.current()
    if step.status == SPSStatus.COMPLETED:
        partial = False
    elif step.status == SPSStatus.DISCONTINUED and cfg.discontinued == "partial":
        partial = True
    else:
        return []
    procedure = step.requested_procedure.procedure_code
    if procedure is None:
        log.warning("step %d performed with no catalog procedure: not charged (completed without charge)", step.id)
        return []
    performed_at, station, codes = _performed(session, step)
    day = to_site(performed_at).date()
    items = billable(items_of(session, procedure), codes, partial)
    have = set(session.scalars(select(Charge.capture_key).where(Charge.step_id == step.id)))
    order = step.requested_procedure.order
    added = []
    for item in items:
        key = capture_key(step, item)
        if key in have:
            continue
        unit = price_on(item, day)
        charge = Charge(
            step_id=step.id,
            accession_number=order.accession_number,
            capture_key=key,
            line=CHARGE,
            item_id=item.id,
            kind=item.kind,
            code=item.code,
            code_system=item.code_system,
            modifier=DISCONTINUED_MODIFIER if partial else "",
            description=item.description,
            quantity=item.quantity,
            unit_price_cents=unit or 0,
            total_cents=(unit or 0) * item.quantity,
            performed_at=performed_at,
            service_day=day,
            performing_station=station[:16],
            performing_physician=step.performing_physician,
            ordering_physician=order.referring_physician,
            diagnosis_codes=order.diagnosis_codes,
            insurance=insurance_of(order.patient)[:255],
            status="new",
            status_reason="" if unit is not None else f"no price of {item.code} holds on {day.isoformat()}",
        )
        session.add(charge)
        added.append(charge)
    if not items:
        log.warning("step %d: procedure %s bills nothing (completed without charge)", step.id, procedure.code)
    if added:
        session.flush()
        log.info("step %d charged: %d line(s)%s", step.id, len(added), " (partial)" if partial else "")
        if cfg.send == "auto":
            for charge in added:
                send(charge)
    return added
