"""Outbound DFT^P03 (post detail financial transaction): one message per charge line, to
each financial destination (ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS) in the HL7 version it
takes (ORTHANC_RIS_HL7_FINANCIAL_VERSIONS, 2.3.1 or 2.5.1), through the durable outbox of
ris_app/hl7/outbound.py: queued in the transaction that sends the charge, delivered in
order per destination and accession, re-sent until the billing system's ACK.

Segments: MSH, EVN (P03), PID and PV1 as the order messages write them, FT1, a DG1 per
diagnosis code. docs/hl7-conformance.md lists the FT1 fields.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import object_session

from ris_app.hl7.ack import hl7_datetime, hl7_now, new_control_id
from ris_app.hl7.outbound import SegmentWriter, current_settings, msh_segment, queue_message, write_patient_order
from ris_app.hl7.text import escape, name_to_xpn, pn_to_name
from ris_app.model import Charge, Hl7Outbox, OutboxStatus
from ris_app.model.billing import CREDIT

MESSAGE_TYPE = "DFT^P03"
STRUCTURE = {"2.3.1": "DFT^P03", "2.5.1": "DFT^P03^DFT_P03"}  # MSH-9 per version


def amount(cents: int) -> str:
    """Cents as an HL7 money amount: -12050 -> '-120.50'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _xcn(pn: str) -> str:
    """A DICOM person name as an XCN with no ID: '^Family^Given...' (escaped)."""
    return "^" + name_to_xpn(pn_to_name(pn)) if pn else ""


def build(charge: Charge, version: str, control_id: str, dest) -> str:
    """The ER7 text of the DFT^P03 of one charge line."""
    settings = current_settings()
    step = charge.step
    w = SegmentWriter(["EVN", "PID", "PV1", "FT1"])
    w.put("EVN-1", "P03")
    w.put("EVN-2", hl7_now())
    write_patient_order(w, step, version)  # PID, PV1; the order's segments are not in this message
    w.put("FT1-1", "1")
    w.put("FT1-2", str(charge.id))
    w.put("FT1-4", hl7_datetime(charge.performed_at))
    w.put("FT1-5", hl7_datetime(charge.created_at))
    w.put("FT1-6", "CD" if charge.line == CREDIT else "CG")
    w.put("FT1-7", "^".join(escape(v) for v in (charge.code, charge.description, charge.code_system)), escaped=True)
    w.put("FT1-8", charge.description)
    w.put("FT1-10", str(charge.quantity))
    w.put("FT1-11", amount(charge.total_cents))
    w.put("FT1-12", amount(charge.unit_price_cents))
    w.put("FT1-13", step.modality)
    w.put("FT1-16", charge.performing_station)
    codes = [c for c in charge.diagnosis_codes.split("~") if c]
    w.put("FT1-19", "~".join(f"{escape(c)}^^I10" for c in codes), escaped=True)
    w.put("FT1-20", _xcn(charge.performing_physician), escaped=True)
    w.put("FT1-21", _xcn(charge.ordering_physician), escaped=True)
    w.put("FT1-23", step.requested_procedure.order.filler_order_number)
    w.put("FT1-25", "^".join(escape(v) for v in (charge.code, charge.description, charge.code_system)), escaped=True)
    w.put("FT1-26", charge.modifier)
    text = w.render(msh_segment(settings, dest, STRUCTURE[version], control_id, version))
    dg1 = [f"DG1|{n}||{escape(code)}^^I10||||W" for n, code in enumerate(codes, start=1)]
    return text + "".join(seg + "\r" for seg in dg1)


# The DFTs of one charge to several billing systems share a control ID but for the last
# character (one per destination, in order): any answer finds the charge, and the charge
# waits for every destination's.
DESTINATION_MARKS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def charge_control_id(control_id: str) -> str:
    """The control ID the charge keeps (the first destination's) for any of its DFTs."""
    return control_id[:-1] + DESTINATION_MARKS[0] if control_id else ""


def sibling_pattern(charge: Charge) -> str:
    """A LIKE pattern for the outbox rows of all the charge's DFTs (control IDs are
    letters and digits only: nothing to escape)."""
    return charge.control_id[:-1] + "_"


def queue_charge(charge: Charge) -> str:
    """Queue the charge's DFT^P03 to every financial destination; returns the control ID
    the charge keeps (charge_control_id of each), "" when none is configured."""
    settings = current_settings()
    session = object_session(charge)
    if session is None or not settings.financial_destinations:
        return ""
    if len(settings.financial_destinations) > len(DESTINATION_MARKS):
        raise ValueError(f"at most {len(DESTINATION_MARKS)} financial destinations")
    session.flush()  # the charge's id and times go into FT1
    base = new_control_id("F")[:-1]
    for mark, dest in zip(DESTINATION_MARKS, settings.financial_destinations, strict=False):
        control_id = base + mark
        payload = build(charge, settings.financial_version(dest.name), control_id, dest)
        queue_message(session, dest, MESSAGE_TYPE, control_id, payload, charge.accession_number)
    return base + DESTINATION_MARKS[0]


def all_acknowledged(charge: Charge) -> bool:
    """Whether every billing system the charge went to has answered AA/CA."""
    session = object_session(charge)
    assert session is not None
    states = session.scalars(select(Hl7Outbox.status).where(Hl7Outbox.control_id.like(sibling_pattern(charge)))).all()
    return all(state == OutboxStatus.SENT for state in states)


def release(charge: Charge) -> None:
    """Discard the refused messages of a rejected charge: an undelivered message holds back
    the later ones of its accession, and the correction must reach the billing system."""
    session = object_session(charge)
    if session is None or not charge.control_id:
        return
    session.execute(
        update(Hl7Outbox)
        .where(Hl7Outbox.control_id.like(sibling_pattern(charge)), Hl7Outbox.status == OutboxStatus.ERROR)
        .values(status=OutboxStatus.DISCARDED)
    )
