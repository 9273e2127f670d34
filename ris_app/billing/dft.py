"""Outbound DFT^P03 (post detail financial transaction): one message per charge line, to
each financial destination (ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS) in the HL7 version it
takes (ORTHANC_RIS_HL7_FINANCIAL_VERSIONS, 2.3.1 or 2.5.1), through the durable outbox of
ris_app/hl7/outbound.py: queued in the transaction that sends the charge, delivered in
order per destination and accession, re-sent until the billing system's ACK.

Segments: MSH, EVN (P03), PID and PV1 as the order messages write them, FT1, a DG1 per
diagnosis code. docs/hl7-conformance.md lists the FT1 fields.
"""

from __future__ import annotations

from sqlalchemy import update
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


def queue_charge(charge: Charge) -> str:
    """Queue the charge's DFT^P03 to every financial destination; returns the control ID
    whose answer moves the charge (the first destination's), "" when none is configured."""
    settings = current_settings()
    session = object_session(charge)
    if session is None or not settings.financial_destinations:
        return ""
    session.flush()  # the charge's id and times go into FT1
    first = ""
    for dest in settings.financial_destinations:
        control_id = new_control_id("F")
        payload = build(charge, settings.financial_version(dest.name), control_id, dest)
        queue_message(session, dest, MESSAGE_TYPE, control_id, payload, charge.accession_number)
        first = first or control_id
    return first


def release(charge: Charge) -> None:
    """Discard the refused message of a rejected charge: an undelivered message holds back
    the later ones of its accession, and the correction must reach the billing system."""
    session = object_session(charge)
    if session is None or not charge.control_id:
        return
    session.execute(
        update(Hl7Outbox)
        .where(Hl7Outbox.control_id == charge.control_id, Hl7Outbox.status == OutboxStatus.ERROR)
        .values(status=OutboxStatus.DISCARDED)
    )
