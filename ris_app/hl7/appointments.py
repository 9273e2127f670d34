"""Outbound appointment messages: what the EHR hears when a step is booked, moved,
canceled or missed.

Peers in ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS get HL7 2.5.1 chapter 10 SIU messages
(SCH, TQ1, PID, PV1, RGS, AIS, AIL); peers in ORTHANC_RIS_HL7_DESTINATIONS get, for a move,
the order status message they already read (ORM^O01 / OMG^O19) with ORC-1 `XX` (changed,
unsolicited) and the new time where the mapping table puts it. Both go through the same
durable, ordered outbox as the status and result messages (ris_app.hl7.sender).

EVENTS is the one table: an event names its SIU trigger, its filler status, the action on
the resource segments and the order control of the status message (none where the status
move already sends one through outbound.on_step_status).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import object_session

from ris_app.hl7.ack import hl7_datetime, new_control_id
from ris_app.hl7.outbound import (
    SegmentWriter,
    build_status_message,
    current_settings,
    msh_segment,
    queue_message,
    write_patient_order,
)
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.hl7.text import escape
from ris_app.model import Hl7Outbox, ScheduledProcedureStep


@dataclass(frozen=True)
class AppointmentEvent:
    siu: str  # trigger event of the SIU message (HL7 table 0003)
    reason: str  # SCH-6 event reason, as text
    filler_status: str  # SCH-25, AIS-10, AIL-12 (HL7 table 0278)
    action: str  # AIS-2, AIL-2 segment action code (HL7 table 0206): A add, U update, D delete
    order_control: str  # ORC-1 of the status message to ORTHANC_RIS_HL7_DESTINATIONS; "" sends none


EVENTS: dict[str, AppointmentEvent] = {
    "booked": AppointmentEvent("S12", "Appointment booked", "Booked", "A", ""),
    "rescheduled": AppointmentEvent("S13", "Appointment rescheduled", "Booked", "U", "XX"),
    # The order page's edit (procedure, priority, referrer, reason, room): same time, changed.
    "changed": AppointmentEvent("S14", "Appointment modified", "Booked", "U", "XX"),
    # The status move itself sends ORC-5 CA to the status destinations (outbound.NOTIFY).
    "canceled": AppointmentEvent("S15", "Appointment canceled", "Cancelled", "D", ""),
    "no_show": AppointmentEvent("S26", "Patient did not show up", "Noshow", "U", ""),
}

# A step status that is an appointment event: the move to it sends that event. NO_SHOW is
# the state the no-show sweep moves a missed step to (once scheduling/states.py has it).
STATUS_EVENTS: dict[str, str] = {"CANCELED": "canceled", "NO_SHOW": "no_show"}

# (event, source) pairs the peers do not hear about: items imported from an old worklist
# were booked elsewhere, long ago.
SILENT = frozenset({("booked", "import")})


def build_siu(
    step: ScheduledProcedureStep, event: AppointmentEvent, dest: Destination, settings: Hl7Settings, control_id: str
) -> tuple[str, str]:
    """(message type, ER7) of an SIU message (HL7 2.5.1) about one step's appointment."""
    message_type = f"SIU^{event.siu}^SIU_S12"
    w = SegmentWriter(["SCH", "TQ1", "PID", "PV1", "RGS", "AIS", "AIL"])
    write_patient_order(w, step, "2.5.1")  # PID and PV1; the order fields land nowhere here
    order = step.requested_procedure.order
    rp = step.requested_procedure
    start = hl7_datetime(step.start_datetime)
    end = hl7_datetime(step.end_datetime) if step.end_datetime else ""
    minutes = str(int((step.end_datetime - step.start_datetime).total_seconds() // 60)) if step.end_datetime else ""
    w.put("SCH-1", order.placer_order_number)
    w.put("SCH-2", step.sps_id)  # the filler's appointment: one scheduled procedure step
    w.put("SCH-6", f"{event.siu}^{escape(event.reason)}^HL70003", escaped=True)
    w.put("SCH-11.3", minutes and f"{minutes}M")  # TQ timing, for receivers before 2.5
    w.put("SCH-11.4", start)
    w.put("SCH-11.5", end)
    w.put("SCH-25", event.filler_status)
    w.put("SCH-26", order.placer_order_number)
    w.put("SCH-27", order.filler_order_number)
    w.put("TQ1-1", "1")
    w.put("TQ1-7", start)
    w.put("TQ1-8", end)
    w.put("RGS-1", "1")
    w.put("RGS-2", event.action)
    w.put("AIS-1", "1")
    w.put("AIS-2", event.action)
    code = rp.procedure_code
    service = "^".join(
        escape(v) for v in ((code.code, rp.description, code.coding_scheme) if code else ("", rp.description))
    )
    w.put("AIS-3", service, escaped=True)
    w.put("AIS-4", start)
    w.put("AIS-7", minutes)
    w.put("AIS-8", minutes and "min")
    w.put("AIS-10", event.filler_status)
    w.put("AIL-1", "1")
    w.put("AIL-2", event.action)
    # PL: point of care = the station's AE title, room = its location, description = its name.
    aet = step.station_aet.split("\\")[0]
    w.put(
        "AIL-3",
        "^".join(escape(v) for v in (aet, step.location, "", "", "", "", "", "", step.station_name)).rstrip("^"),
        escaped=True,
    )
    w.put("AIL-6", start)
    w.put("AIL-9", minutes)
    w.put("AIL-10", minutes and "min")
    w.put("AIL-12", event.filler_status)
    return message_type, w.render(msh_segment(settings, dest, message_type, control_id, "2.5.1"))


def on_appointment(step: ScheduledProcedureStep, event: str, source: str) -> list[Hl7Outbox]:
    """Queue the messages of an appointment event (EVENTS) in the caller's transaction:
    SIU to every scheduling destination, whoever made the change (the appointment book
    follows HL7's own changes too), and the event's status message to the status
    destinations unless the change came from the EHR itself (source 'hl7')."""
    ev = EVENTS[event]
    session = object_session(step)
    if session is None or (event, source) in SILENT:
        return []
    settings = current_settings()
    accession = step.requested_procedure.order.accession_number
    rows = []
    if ev.order_control and source != "hl7":
        for dest in settings.destinations:
            control_id = new_control_id("S")
            message_type, payload = build_status_message(step, dest, settings, control_id, ev.order_control)
            rows.append(queue_message(session, dest, message_type, control_id, payload, accession))
    for dest in settings.scheduling_destinations:
        control_id = new_control_id("A")
        message_type, payload = build_siu(step, ev, dest, settings, control_id)
        rows.append(queue_message(session, dest, message_type, control_id, payload, accession))
    return rows


def on_status(step: ScheduledProcedureStep, source: str) -> list[Hl7Outbox]:
    """The appointment event of a status move, if the new status is one (STATUS_EVENTS)."""
    event = STATUS_EVENTS.get(str(step.status))
    return on_appointment(step, event, source) if event else []
