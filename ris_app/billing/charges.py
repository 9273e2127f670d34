"""A charge's life: its statuses and the moves between them (one table), sending it to
the billing system, the billing system's answer, and corrections.

A charge that left is never edited: a correction adds a credit line (the original's
quantity negated, so its total is the original's negated) and a new charge, both with the
reason, and marks the original credited. A credit of a charge the billing system never
booked (not sent, or rejected) has nothing to cancel there: it is recorded, not sent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from ris_app.billing.dft import all_acknowledged, charge_control_id, queue_charge, release
from ris_app.clock import utcnow
from ris_app.db import lock_row
from ris_app.errors import Conflict, Invalid, NotFound, Unavailable
from ris_app.model import Charge
from ris_app.model.billing import CHARGE, CREDIT

log = logging.getLogger(__name__)

NEW, REVIEWED, SENT, ACKNOWLEDGED, REJECTED, CREDITED = (
    "new",
    "reviewed",
    "sent",
    "acknowledged",
    "rejected",
    "credited",
)
STATUSES = (NEW, REVIEWED, SENT, ACKNOWLEDGED, REJECTED, CREDITED)

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "review": (frozenset({NEW}), REVIEWED),
    "send": (frozenset({NEW, REVIEWED}), SENT),  # queued as DFT^P03
    "acknowledge": (frozenset({SENT}), ACKNOWLEDGED),  # the billing system answered AA
    "reject": (frozenset({SENT}), REJECTED),  # it answered AE or AR
    # Corrected: a sent one waits for its answer first (the credit must follow a booking).
    "credit": (frozenset({NEW, REVIEWED, ACKNOWLEDGED, REJECTED}), CREDITED),
}
# Lines whose billing system holds them: a correction's credit is sent to cancel them.
BOOKED = frozenset({ACKNOWLEDGED})


class IllegalChargeMove(Conflict):
    def __init__(self, action: str, current: str) -> None:
        super().__init__(f"cannot {action} a charge that is {current}", field="action", code="illegal_transition")


def next_status(current: str, action: str) -> str:
    if action not in TRANSITIONS:
        raise Invalid("unknown action", field="action")
    sources, target = TRANSITIONS[action]
    if current not in sources:
        raise IllegalChargeMove(action, current)
    return target


def move(charge: Charge, action: str, reason: str = "") -> Charge:
    """Move `charge` by `action` (locked and re-read first: two clerks, or a clerk and the
    billing system's answer, cannot both move it)."""
    session = object_session(charge)
    if session is not None:
        lock_row(session, charge)
    charge.status = next_status(charge.status, action)
    charge.status_changed_at = utcnow()
    if reason:
        charge.status_reason = reason[:512]
    return charge


def find(session: Session, charge_id: int) -> Charge:
    charge = session.get(Charge, charge_id)
    if charge is None:
        raise NotFound("no charge with this id", field="charge_id")
    return charge


def send(charge: Charge) -> Charge:
    """Queue the charge's DFT^P03 to every financial destination (the durable outbox, in
    this transaction) and mark it sent."""
    next_status(charge.status, "send")  # refuse before queueing anything
    control_id = queue_charge(charge)
    if not control_id:
        raise Unavailable("no billing system is configured (ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS)")
    move(charge, "send")
    charge.control_id = control_id
    return charge


def on_answer(session: Session, control_id: str, code: str, text: str) -> Charge | None:
    """A billing system's ACK to a DFT^P03 (called by the HL7 outbox sender): AA/CA from
    every destination acknowledges the charge, AE/AR from any rejects it with the reason."""
    ids = {control_id, charge_control_id(control_id)}  # older charges kept their DFT's own ID
    charge = session.scalar(select(Charge).where(Charge.control_id.in_(ids)))
    if charge is None or charge.status != SENT:
        return None
    if code in ("AA", "CA"):
        if not all_acknowledged(charge):
            return charge  # another billing system has not answered yet
        move(charge, "acknowledge")
    else:
        move(charge, "reject", f"billing system answered {code}: {text}" if text else f"billing system answered {code}")
    log.info("charge %d %s by the billing system", charge.id, charge.status)
    return charge


def correct(
    charge: Charge,
    reason: str,
    *,
    quantity: int | None = None,
    unit_price_cents: int | None = None,
    code: str | None = None,
    description: str | None = None,
) -> tuple[Charge, Charge]:
    """Correct a charge line: (credit line, new charge). The original is credited, never
    edited; the new charge starts as new, for review and sending like any other."""
    session = object_session(charge)
    assert session is not None
    if not reason.strip():
        raise Invalid("a correction needs a reason", field="reason")
    if charge.line != CHARGE:
        raise Conflict("a credit line is not corrected; correct the charge it credits", field="charge_id")
    was = charge.status
    move(charge, "credit", reason.strip())
    if was == REJECTED:
        release(charge)  # its refused message no longer holds the correction back
    quantity = charge.quantity if quantity is None else quantity
    unit = charge.unit_price_cents if unit_price_cents is None else unit_price_cents
    if quantity < 1 or unit < 0:
        raise Invalid("quantity must be at least 1 and the price not negative", field="quantity")
    common = {
        "step_id": charge.step_id,
        "accession_number": charge.accession_number,
        "item_id": charge.item_id,
        "kind": charge.kind,
        "code_system": charge.code_system,
        "modifier": charge.modifier,
        "performed_at": charge.performed_at,
        "service_day": charge.service_day,
        "performing_station": charge.performing_station,
        "performing_physician": charge.performing_physician,
        "ordering_physician": charge.ordering_physician,
        "diagnosis_codes": charge.diagnosis_codes,
        "insurance": charge.insurance,
        "corrects_id": charge.id,
        "status_reason": reason.strip()[:512],
    }
    credit = Charge(
        **common,
        line=CREDIT,
        code=charge.code,
        description=charge.description,
        quantity=-charge.quantity,
        unit_price_cents=charge.unit_price_cents,
        total_cents=-charge.total_cents,
        status=NEW if was in BOOKED else CREDITED,
    )
    replacement = Charge(
        **common,
        line=CHARGE,
        code=(code or charge.code)[:16],
        description=(description if description is not None else charge.description)[:128],
        quantity=quantity,
        unit_price_cents=unit,
        total_cents=quantity * unit,
        status=NEW,
    )
    session.add_all([credit, replacement])
    session.flush()
    log.info("charge %d corrected: credit %d, new charge %d", charge.id, credit.id, replacement.id)
    return credit, replacement
