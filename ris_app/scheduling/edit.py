"""The order edit: what the desk may change before the exam (procedure, priority,
referring physician, reason for exam, notes, room). Moving it in time is the calendar's
reschedule (scheduling.orders.reschedule_step).

It runs the write path every other change runs: the step is locked and checked against
the version the page read, a new room or procedure is booked again under the one booking
rule (frontdesk.booking.book), and `step_changed` rebuilds the worklist item, tells the EHR
(the status message with ORC-1 XX and SIU^S14: hl7.appointments "changed") and re-plans
the patient's messages. Once the exam started the order stays as it is (EDITABLE).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import object_session

from ris_app.errors import Invalid
from ris_app.frontdesk.booking import ClashPolicy, book, primary_aet
from ris_app.model import ProcedureCode, ScheduledProcedureStep, Station
from ris_app.registration.safety import SafetyPolicy
from ris_app.registration.safety import check as safety_check
from ris_app.scheduling.fields import check_order, check_text
from ris_app.scheduling.history import record_edit
from ris_app.scheduling.orders import lock_step, put_on_station, step_changed
from ris_app.scheduling.states import STARTABLE, IllegalTransition

log = logging.getLogger(__name__)

# The states in which an order may still be edited: the exam has not started.
EDITABLE = STARTABLE
# Order columns the edit may set, as text.
ORDER_FIELDS = ("priority", "referring_physician", "reason_for_exam", "notes")
NOTES = ("LT", 1024, "")  # the column's length; one line of text


# How the history names each field an edit changed; coded fields also say from and to,
# free text (which may name people) is only named.
EDIT_NAMES = {
    "priority": ("priority", True),
    "procedure": ("procedure", True),
    "station_aet": ("room", True),
    "referring_physician": ("referring physician", False),
    "reason_for_exam": ("reason for exam", False),
    "notes": ("notes", False),
}


def _said(field: str, before: str, after: str) -> str:
    name, coded = EDIT_NAMES[field]
    return f"{name} {before or '—'} → {after or '—'}" if coded else name


def update_order(
    step: ScheduledProcedureStep,
    changes: dict,
    *,
    source: str = "api",
    expected_version: int | None = None,
    clash_policy: ClashPolicy = ClashPolicy.REFUSE,
    safety_policy: SafetyPolicy = SafetyPolicy.REFUSE,
) -> list[str]:
    """Apply `changes` (ORDER_FIELDS, "procedure": a ProcedureCode, "station_aet") to the
    step's order; returns the names of what changed ([] when nothing did)."""
    lock_step(step, expected_version)
    if step.status not in EDITABLE:
        raise IllegalTransition("edit", step.status)
    session = object_session(step)
    assert session is not None
    rp = step.requested_procedure
    order = rp.order
    procedure: ProcedureCode | None = changes.get("procedure")
    modality = procedure.modality if procedure is not None else step.modality
    check_order({"modality": modality, **{k: v for k, v in changes.items() if k in ORDER_FIELDS}})
    if changes.get("notes"):
        check_text("notes", changes["notes"], NOTES)
    changed = [k for k in ORDER_FIELDS if k in changes and getattr(order, k) != changes[k]]
    said = [_said(k, getattr(order, k), changes[k]) for k in changed]
    for key in changed:
        setattr(order, key, changes[key])
    rebook = False
    if procedure is not None and procedure is not rp.procedure_code:
        said.append(_said("procedure", rp.procedure_code.code if rp.procedure_code else "", procedure.code))
        rp.procedure_code = procedure
        rp.description = step.description = procedure.description
        step.modality = procedure.modality
        changed.append("procedure")
        rebook = True
    aet = changes.get("station_aet")
    if aet is not None and aet != step.station_aet:
        said.append(_said("station_aet", step.station_aet or "any", aet or "any"))
        put_on_station(session, step, aet)  # "": any room of the modality
        changed.append("station_aet")
        rebook = True
    station = session.scalar(select(Station).where(Station.aet == primary_aet(step.station_aet))) if rebook else None
    if station is not None and station.modality != step.modality:
        raise Invalid(f"is a {station.modality} room; the exam needs {step.modality}", field="station_aet")
    if not changed:
        return []
    session.flush()
    if rebook:  # another room or a longer procedure: booked again under the one rule
        book(session, step, rp.procedure_code, clash_policy)
        safety_check(step, "book", safety_policy)
    record_edit(session, step, "edit", source, "; ".join(said))
    step_changed(step, appointment=("changed", source))
    log.info("order %s edited (%s; %s)", order.accession_number, ", ".join(changed), source)
    return changed


# Why an exam is canceled: the short list the cancel page offers (code -> text). The text,
# with the user's own words after it, is what the history, the audit trail and the EHR's
# status message (ORC-16) carry.
CANCEL_REASONS: dict[str, str] = {
    "patient_request": "Patient's request",
    "patient_unfit": "Patient unwell or unfit for the exam",
    "referrer": "Referrer withdrew the request",
    "duplicate": "Duplicate order",
    "contraindication": "Contraindication found",
    "equipment": "Equipment unavailable",
    "other": "Other",
}
REASON_TEXT = ("LO", 200, "")  # kind for check_text: one line, room for the list's text before it


def cancel_reason(code: str, text: str = "") -> str:
    """The reason a cancel stores: the chosen entry of CANCEL_REASONS, then the free text
    (required for "other")."""
    if code not in CANCEL_REASONS:
        raise Invalid("is required: choose one", field="reason")
    text = check_text("reason_text", text.strip(), REASON_TEXT)
    if code == "other" and not text:
        raise Invalid("is required when the reason is Other", field="reason_text")
    return f"{CANCEL_REASONS[code]}: {text}" if text else CANCEL_REASONS[code]
