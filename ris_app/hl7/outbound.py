"""Outbound HL7: order status (ORM^O01 / OMG^O19) when a step is arrived, started,
completed, canceled, discontinued or marked a no-show, and results (ORU^R01) when a report
is signed or amended. Messages are written to the outbox in the caller's transaction
(nothing is lost when a peer is down, nothing is sent for a change that rolls back) and
sent by `ris_app.hl7.sender.OutboxSender`, which re-sends until the peer's ACK echoes our
control ID.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, object_session

from ris_app.clock import utcnow
from ris_app.hl7 import mapping as m
from ris_app.hl7.ack import hl7_datetime, hl7_now, new_control_id
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.hl7.text import DEFAULT, PersonName, escape, name_to_xpn, pn_to_name
from ris_app.model import Hl7Outbox, Order, OutboxStatus, ScheduledProcedureStep
from ris_app.scheduling.states import SPSStatus

log = logging.getLogger(__name__)

# Step statuses the EHR hears about.
NOTIFY = frozenset(
    {
        SPSStatus.ARRIVED,
        SPSStatus.STARTED,
        SPSStatus.COMPLETED,
        SPSStatus.CANCELED,
        SPSStatus.DISCONTINUED,
        SPSStatus.NO_SHOW,
    }
)

_settings: Hl7Settings | None = None


def current_settings() -> Hl7Settings:
    """HL7 settings of this process (from the environment, read once)."""
    global _settings
    if _settings is None:
        _settings = Hl7Settings.from_env()
    return _settings


def set_settings(settings: Hl7Settings | None) -> None:
    """Use these settings in this process (tests; None re-reads the environment)."""
    global _settings
    _settings = settings


# ----------------------------------------------------------------------------- building
class SegmentWriter:
    """Fields of one message, written by mapping location, rendered as ER7."""

    def __init__(self, order: Sequence[str]) -> None:
        self.order = list(order)
        self.fields: dict[str, dict[int, dict[int, str]]] = {name: {} for name in order}

    def put(self, loc: str, value: str, *, escaped: bool = False) -> None:
        """Write a value at 'SEG-f[.c]'; a whole-field location takes an escaped composite."""
        if not value:
            return
        seg, field, comp, _ = m.parse_location(loc)
        if seg not in self.fields:
            return
        v = value if escaped else escape(value)
        if comp:
            self.fields[seg].setdefault(field, {})[comp] = v
        else:
            self.fields[seg][field] = {1: v}

    def put_key(self, key: str, family: str, value: str, *, escaped: bool = False) -> None:
        locs = m.locations(key, family)
        if locs:
            self.put(locs[0], value, escaped=escaped)

    def render(self, msh: str) -> str:
        """The message: `msh` then the segments, CR-terminated."""
        lines = [msh]
        for name in self.order:
            fields = self.fields[name]
            top = max(fields, default=0)
            values = []
            for n in range(1, top + 1):
                comps = fields.get(n, {})
                ctop = max(comps, default=0)
                values.append("^".join(comps.get(c, "") for c in range(1, ctop + 1)))
            lines.append("|".join([name, *values]))
        return "\r".join(lines) + "\r"


def msh_segment(settings: Hl7Settings, dest: Destination, message_type: str, control_id: str, version: str) -> str:
    return "|".join(
        [
            "MSH",
            DEFAULT.encoding_characters,
            escape(settings.application),
            escape(settings.facility),
            escape(dest.name),
            escape(dest.name),
            hl7_now(),
            "",
            message_type,
            control_id,
            "P",
            version,
            "",
            "",
            "",
            "",
            "",
            "UNICODE UTF-8",
        ]
    )


def write_patient_order(w: SegmentWriter, step: ScheduledProcedureStep, family: str) -> None:
    order = step.requested_procedure.order
    rp = step.requested_procedure
    p = order.patient
    w.put_key("mrn", family, p.mrn)
    w.put_key("issuer", family, p.issuer)
    w.put_key(
        "name",
        family,
        name_to_xpn(PersonName(p.family_name, p.given_name, p.middle_name, p.name_prefix, p.name_suffix)),
        escaped=True,
    )
    w.put_key("birth_date", family, p.birth_date.strftime("%Y%m%d") if p.birth_date else "")
    w.put_key("sex", family, p.sex)
    w.put("PV1-2", "U")
    w.put_key("placer_order_number", family, order.placer_order_number)
    w.put_key("filler_order_number", family, order.filler_order_number)
    w.put("OBR-2", order.placer_order_number)
    w.put("OBR-3", order.filler_order_number)
    w.put("OBR-1", "1")
    w.put_key("accession_number", family, order.accession_number)
    w.put_key("requested_procedure_id", family, rp.requested_procedure_id)
    w.put_key("study_instance_uid", family, rp.study_instance_uid)
    w.put_key("sps_id", family, step.sps_id)
    if rp.procedure_code is not None:
        w.put_key("procedure_code", family, rp.procedure_code.code)
        w.put("OBR-4.3", rp.procedure_code.coding_scheme)
    w.put_key("procedure_text", family, rp.description)
    w.put_key("modality", family, step.modality)
    w.put_key("station_aet", family, step.station_aet.split("\\")[0])
    w.put_key("station_name", family, step.station_name)
    w.put_key("location", family, step.location)
    w.put_key("scheduled_start", family, hl7_datetime(step.start_datetime))
    w.put_key("priority", family, m.PRIORITY_OUT.get(order.priority, "R"))
    if order.referring_physician:
        w.put_key("referring_physician", family, "^" + name_to_xpn(pn_to_name(order.referring_physician)), escaped=True)
    if family == "2.3.1":
        w.put("ZDS-1", f"{escape(rp.study_instance_uid)}^{escape('ORTHANC_RIS')}^Application^DICOM", escaped=True)


def build_status_message(
    step: ScheduledProcedureStep, dest: Destination, settings: Hl7Settings, control_id: str, order_control: str = "SC"
) -> tuple[str, str]:
    """(message type, ER7) of an order status message for one step; ORC-1 `SC` (status
    changed) or, for a move, `XX` (changed, unsolicited: hl7.appointments)."""
    if settings.status_message == "OMG^O19":
        family, version, message_type = "2.5.1", "2.5.1", "OMG^O19^OMG_O19"
        w = SegmentWriter(["PID", "PV1", "ORC", "TQ1", "OBR", "IPC"])
    else:
        family, version, message_type = "2.3.1", "2.3.1", "ORM^O01"
        w = SegmentWriter(["PID", "PV1", "ORC", "OBR", "ZDS"])
    w.put("ORC-1", order_control)
    write_patient_order(w, step, family)
    w.put_key("order_status", family, m.ORDER_STATUS_OUT.get(step.status, "SC"))
    w.put("ORC-9", hl7_datetime(step.status_changed_at))
    last = step.history[-1] if step.history else None
    if last is not None and last.reason and last.to_status == step.status:
        w.put("ORC-16.2", last.reason)  # order control code reason (CE text): why it was canceled
    if family == "2.5.1":
        w.put("TQ1-1", "1")
    return message_type, w.render(msh_segment(settings, dest, message_type, control_id, version))


def queue_message(
    session: Session, dest: Destination, message_type: str, control_id: str, payload: str, reference: str
) -> Hl7Outbox:
    row = Hl7Outbox(
        destination=dest.name,
        message_type="^".join(message_type.split("^")[:2]),
        control_id=control_id,
        reference=reference[:64],
        payload=payload,
        status=OutboxStatus.PENDING,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    return row


def on_step_status(step: ScheduledProcedureStep, target: SPSStatus | str, source: str) -> list[Hl7Outbox]:
    """Queue a status message per destination (called by orders.set_step_status). Changes
    that came from the EHR itself (source 'hl7') are not echoed back."""
    if source == "hl7" or target not in NOTIFY:
        return []
    settings = current_settings()
    session = object_session(step)
    if not settings.destinations or session is None:
        return []
    rows = []
    for dest in settings.destinations:
        control_id = new_control_id("S")
        message_type, payload = build_status_message(step, dest, settings, control_id)
        rows.append(
            queue_message(
                session, dest, message_type, control_id, payload, step.requested_procedure.order.accession_number
            )
        )
    return rows


def send_report_result(
    session: Session,
    order: Order,
    report_text: str,
    *,
    amended: bool = False,
    radiologist: str = "",
    signed_at: datetime | None = None,
    report_id: str = "",
    settings: Hl7Settings | None = None,
) -> list[Hl7Outbox]:
    """Queue an ORU^R01 (HL7 2.5.1) carrying a signed (OBR-25/OBX-11 'F') or amended ('C')
    report to every destination, in the caller's transaction. `radiologist` is a DICOM PN
    (Family^Given); `report_text` may hold line breaks (sent as FT with \\.br\\).
    Returns the outbox rows."""
    settings = settings or current_settings()
    step = order.requested_procedures[0].steps[0]
    when = hl7_datetime(signed_at or utcnow())
    status = "C" if amended else "F"
    rows = []
    for dest in settings.destinations:
        control_id = new_control_id("R")
        w = SegmentWriter(["PID", "PV1", "ORC", "OBR", "OBX"])
        write_patient_order(w, step, "2.5.1")
        # ORU carries no IPC: the accession goes where 2.3.1 receivers look too.
        w.put("OBR-18", order.accession_number)
        w.put("OBR-19", step.requested_procedure.requested_procedure_id)
        w.put("OBR-20", step.sps_id)
        w.put("OBR-24", step.modality)
        w.put("ORC-1", "RE")
        w.put("ORC-5", "CM")
        w.put("OBR-7", hl7_datetime(step.start_datetime))
        w.put("OBR-22", when)
        w.put("OBR-25", status)
        if radiologist:
            n = pn_to_name(radiologist)
            cnn = "&".join(escape(p) for p in ("", n.family, n.given, n.middle, n.suffix, n.prefix)).rstrip("&")
            w.put("OBR-32", cnn, escaped=True)
        w.put("OBX-1", "1")
        w.put("OBX-2", "FT")
        w.put("OBX-3", "^Report", escaped=True)
        w.put("OBX-4", report_id)
        w.put("OBX-5", escape(report_text), escaped=True)
        w.put("OBX-11", status)
        w.put("OBX-14", when)
        payload = w.render(msh_segment(settings, dest, "ORU^R01^ORU_R01", control_id, "2.5.1"))
        rows.append(queue_message(session, dest, "ORU^R01", control_id, payload, order.accession_number))
    return rows
