"""Orders: ORM^O01 (2.3.1) and OMI^O23 (2.5.1) carry one order group per ORC: NW creates,
XO changes, CA cancels, DC discontinues (or cancels a step that has not started).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.errors import DomainError
from ris_app.frontdesk.booking import ClashPolicy, book
from ris_app.hl7 import mapping as m
from ris_app.hl7.parse import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    DOMAIN_ERROR_CODES,
    DUPLICATE_KEY_IDENTIFIER,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNKNOWN_KEY_IDENTIFIER,
    Message,
    Segment,
    content_error,
    reject,
    warning,
)
from ris_app.hl7.reading import (
    NAME_FORBID,
    SOURCE,
    Context,
    domain_error,
    family_of,
    field_datetime,
    field_text,
    identity,
    lookup_patient,
    read_patient,
    segments,
    upsert_patient,
)
from ris_app.hl7.stations import pick_station
from ris_app.hl7.text import xpn_components
from ris_app.model import Order, ProcedureCode, ScheduledProcedureStep
from ris_app.registration.safety import SafetyPolicy
from ris_app.registration.safety import check as safety_check
from ris_app.scheduling.history import record_edit, room_change
from ris_app.scheduling.names import dicom_pn
from ris_app.scheduling.orders import (
    OrderData,
    apply_action,
    create_order,
    primary_step,
    step_changed,
)
from ris_app.scheduling.states import FINAL_STATES, SPSStatus

log = logging.getLogger(__name__)


def order_groups(msg: Message) -> list[dict[str, Segment]]:
    """One dict per ORC: the ORC and the OBR/TQ1/IPC/ZDS after it (first of each wins),
    plus the message's PID and PV1."""
    common = segments(msg, "PID", "PV1")
    groups: list[dict[str, Segment]] = []
    for seg in msg.segments[1:]:
        if seg.name == "ORC":
            groups.append({**common, "ORC": seg})
        elif seg.name in ("OBR", "TQ1", "IPC", "ZDS") and groups:
            groups[-1].setdefault(seg.name, seg)
        elif seg.name == "OBR":
            raise reject(SEGMENT_SEQUENCE_ERROR, "OBR before any ORC", "OBR")
    if not groups:
        raise reject(SEGMENT_SEQUENCE_ERROR, "required segment ORC is missing", "ORC")
    for g in groups:
        if "OBR" not in g:
            raise reject(SEGMENT_SEQUENCE_ERROR, "required segment OBR is missing", "OBR")
    return groups


def find_existing_order(ctx: Context, g: dict[str, Segment], fam: str) -> Order:
    accession, _ = field_text(g, "accession_number", fam, 64)
    if accession:
        order = ctx.session.scalar(select(Order).where(Order.accession_number == accession))
        if order is not None:
            return order
    placer, _ = field_text(g, "placer_order_number", fam, 64)
    if placer:
        order = ctx.session.scalars(select(Order).where(Order.placer_order_number == placer).order_by(Order.id)).first()
        if order is not None:
            return order
    filler, _ = field_text(g, "filler_order_number", fam, 64)
    if filler:
        order = ctx.session.scalars(select(Order).where(Order.filler_order_number == filler).order_by(Order.id)).first()
        if order is not None:
            return order
    loc = m.locations("accession_number", fam)[0] if accession else "ORC-2"
    raise content_error(UNKNOWN_KEY_IDENTIFIER, "no order with this accession or order number", loc)


def _modality(g: dict[str, Segment], fam: str, procedure: ProcedureCode | None) -> str:
    modality, loc = field_text(g, "modality", fam, 16)
    modality = modality.upper() or (procedure.modality if procedure else "")
    if not modality:
        raise content_error(REQUIRED_FIELD_MISSING, "modality is required (or a catalog procedure code)", loc)
    if not modality.isalnum():
        raise content_error(DATA_TYPE_ERROR, f"{loc} must be a DICOM modality code such as CT", loc)
    return modality


def _procedure(ctx: Context, g: dict[str, Segment], fam: str) -> tuple[ProcedureCode | None, str, str]:
    code, loc = field_text(g, "procedure_code", fam, 16)
    text, _ = field_text(g, "procedure_text", fam, 64)
    procedure = ctx.session.scalar(select(ProcedureCode).where(ProcedureCode.code == code)) if code else None
    return procedure, text, loc


def _physician(g: dict[str, Segment], fam: str) -> str:
    comps, loc = m.read(g, "referring_physician", fam)
    if not comps:
        return ""
    name = xpn_components(list(comps)[1:])  # XCN: ID first, then the name
    parts = (name.family, name.given, name.middle, name.prefix, name.suffix)
    if any(ch in p for p in parts for ch in NAME_FORBID):
        raise content_error(DATA_TYPE_ERROR, "physician name part holds ^, \\ or =", loc)
    return dicom_pn(*(p[:64] for p in parts))[:128]


def _uid(g: dict[str, Segment], key: str, fam: str) -> str:
    uid, loc = field_text(g, key, fam, 64)
    if uid and not all(part.isdigit() for part in uid.split(".")):
        raise content_error(DATA_TYPE_ERROR, f"{loc} must be a DICOM UID (digits and dots)", loc)
    return uid


def _diagnoses(msg: Message, fam: str) -> str:
    """The diagnosis codes of every DG1 of the message, ~-separated (HL7 repeats)."""
    seg_name, field, comp, _ = m.parse_location(m.locations("diagnosis_codes", fam)[0])
    codes = [seg.get(field, comp or 1) for seg in msg.segments if seg.name == seg_name]
    return "~".join(c for c in codes if c and c != '""')[:255]


def order_new(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    if "PID" not in g:
        raise reject(SEGMENT_SEQUENCE_ERROR, "required segment PID is missing", "PID")
    fields, _ = read_patient(g, fam)
    # A known patient's demographics are ADT's business: an order only registers the unknown.
    patient = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", "")) or upsert_patient(
        ctx, fields, identifiers=identity(g["PID"])[1]
    )
    assert patient is not None
    accession, acc_loc = field_text(g, "accession_number", fam, 16)
    if accession and ctx.session.scalar(select(Order.id).where(Order.accession_number == accession)) is not None:
        raise content_error(DUPLICATE_KEY_IDENTIFIER, "an order with this accession number exists", acc_loc)
    procedure, proc_text, proc_loc = _procedure(ctx, g, fam)
    modality = _modality(g, fam, procedure)
    if procedure is None and not proc_text:
        raise content_error(TABLE_VALUE_NOT_FOUND, "procedure code not in the catalog and no procedure text", proc_loc)
    start_value, start_loc = field_text(g, "scheduled_start", fam, 26)
    start = field_datetime(start_value, start_loc) or utcnow().replace(second=0, microsecond=0)
    station, _ = field_text(g, "station_aet", fam, 128, forbid="")
    station = station.replace("~", "\\")
    if not station:
        station = pick_station(
            ctx.session,
            ctx.settings.station_rules,
            modality=modality,
            procedure_code=procedure.code if procedure else "",
        )
    priority, _ = field_text(g, "priority", fam, 8)
    suid = _uid(g, "study_instance_uid", fam)
    sps_id, sps_loc = field_text(g, "sps_id", fam, 16)
    if sps_id and ctx.session.scalar(select(ScheduledProcedureStep.id).where(ScheduledProcedureStep.sps_id == sps_id)):
        raise content_error(DUPLICATE_KEY_IDENTIFIER, "a scheduled step with this SPS ID exists", sps_loc)
    rp_id, _ = field_text(g, "requested_procedure_id", fam, 16)
    data = OrderData(
        patient=patient,
        procedure=procedure,
        modality=modality,
        scheduled_start=start,
        station_aet=station,
        station_name=field_text(g, "station_name", fam, 16)[0],
        location=field_text(g, "location", fam, 16)[0],
        accession_number=accession,
        study_instance_uid=suid,
        placer_order_number=field_text(g, "placer_order_number", fam, 64)[0],
        filler_order_number=field_text(g, "filler_order_number", fam, 64)[0],
        priority=m.PRIORITY_IN.get(priority.upper(), "ROUTINE"),
        referring_physician=_physician(g, fam),
        reason_for_exam=field_text(g, "reason_for_exam", fam, 64)[0],
        diagnosis_codes=_diagnoses(msg, fam),
        description=proc_text if procedure is None else "",
    )
    try:
        order = create_order(
            ctx.session,
            data,
            accession_prefix=ctx.accession_prefix,
            uid_root=ctx.uid_root,
            source=SOURCE,
            clash_policy=ClashPolicy.FLAG,  # the EHR cannot pick another time: the desk resolves it
            safety_policy=SafetyPolicy.HOLD,  # nor refuse for a clinical reason: held for the desk
        )
    except DomainError as exc:
        raise domain_error(exc, fam) from None
    step = primary_step(order)
    held = step.safety is not None and step.safety.hold  # type: ignore[attr-defined]
    if sps_id or rp_id:
        step.sps_id = sps_id or step.sps_id
        step.requested_procedure.requested_procedure_id = rp_id or step.requested_procedure.requested_procedure_id
        step_changed(step)
    clash = _booking_warning(ctx, step, fam)
    if held:  # accepted (AA): the EHR learns why the desk holds it
        hold = f"on hold: {step.safety.hold_reason}"  # type: ignore[attr-defined]
        ctx.warnings.append(warning(f"order {order.accession_number} {hold}", "ORC-1"))
        return f"order {order.accession_number} created, {hold}{clash}"
    return f"order {order.accession_number} created{clash}"


def _booking_warning(ctx: Context, step: ScheduledProcedureStep, fam: str) -> str:
    """A booking the EHR sent onto taken time is accepted and flagged for the desk
    (ClashPolicy.FLAG); the AA carries it as a warning naming the start-time field (ERR,
    severity W) and in its text ("; " + the note, "" without a clash) for 2.3.1 senders,
    whose ERR has no place for it."""
    if step.booking_flag != "clash":
        return ""
    taken_by = f"order {step.booking_clash_with}" if step.booking_clash_with else "blocked time"
    text = f"time clashes with {taken_by}: flagged for the desk"
    ctx.warnings.append(warning(text, m.locations("scheduled_start", fam)[0]))
    return f"; {text}"


def order_change(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    order = find_existing_order(ctx, g, fam)
    step = primary_step(order)
    if step.status in FINAL_STATES:
        raise content_error(APPLICATION_INTERNAL_ERROR, f"order is {step.status}: it can no longer change", "ORC-1")
    procedure, proc_text, _ = _procedure(ctx, g, fam)
    rp = step.requested_procedure
    if procedure is not None:
        rp.procedure_code = procedure
        rp.description = step.description = proc_text[:64] or procedure.description
    elif proc_text:
        rp.description = step.description = proc_text
    modality, _ = field_text(g, "modality", fam, 16)
    if modality:
        step.modality = _modality(g, fam, procedure)
    booked_at = (step.start_datetime, step.station_aet)
    start_value, start_loc = field_text(g, "scheduled_start", fam, 26)
    if start_value:
        step.start_datetime = field_datetime(start_value, start_loc)  # type: ignore[assignment]
    station, _ = field_text(g, "station_aet", fam, 128, forbid="")
    if station:
        step.station_aet = station.replace("~", "\\")
    for key, attr, max_len in (("station_name", "station_name", 16), ("location", "location", 16)):
        value, _ = field_text(g, key, fam, max_len)
        if value:
            setattr(step, attr, value)
    priority, _ = field_text(g, "priority", fam, 8)
    if priority:
        order.priority = m.PRIORITY_IN.get(priority.upper(), order.priority)
    physician = _physician(g, fam)
    if physician:
        order.referring_physician = physician
    reason, _ = field_text(g, "reason_for_exam", fam, 64)
    if reason:
        order.reason_for_exam = reason
    diagnoses = _diagnoses(msg, fam)
    if diagnoses:
        order.diagnosis_codes = diagnoses
    edited = any(ctx.session.is_modified(row) for row in (order, rp, step))  # an XO sent again changes nothing
    ctx.session.flush()
    if start_value or station or procedure is not None:  # moved or longer: booked again, flagged like a new order
        book(ctx.session, step, rp.procedure_code, ClashPolicy.FLAG)
        safety_check(step, "book", SafetyPolicy.HOLD)
        clash = _booking_warning(ctx, step, fam)
    else:
        clash = ""
    moved = (step.start_datetime, step.station_aet) != booked_at
    if edited:
        record_edit(ctx.session, step, "edit", SOURCE, "order update from the EHR (ORC-1 XO)")
    if moved:
        what = room_change(booked_at[1], step.station_aet)
        record_edit(ctx.session, step, "move", SOURCE, what, start_before=booked_at[0])
    step_changed(step, appointment=("rescheduled", SOURCE) if moved else None)
    return f"order {order.accession_number} changed{clash}"


def _move(step: ScheduledProcedureStep, action: str) -> None:
    try:
        apply_action(step, action, source=SOURCE)
    except DomainError as exc:
        raise content_error(
            DOMAIN_ERROR_CODES.get(exc.code, APPLICATION_INTERNAL_ERROR), exc.message, "ORC-1"
        ) from None


def order_cancel(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    order = find_existing_order(ctx, g, fam)
    step = primary_step(order)
    if step.status in (SPSStatus.CANCELED, SPSStatus.DISCONTINUED, SPSStatus.NO_SHOW):
        return f"order {order.accession_number} was already {step.status.lower()}"
    if step.status in (SPSStatus.STARTED, SPSStatus.DEPARTED):
        raise content_error(APPLICATION_INTERNAL_ERROR, "the exam has started: discontinue (DC) instead", "ORC-1")
    _move(step, "cancel")
    return f"order {order.accession_number} canceled"


def order_discontinue(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    order = find_existing_order(ctx, g, fam)
    step = primary_step(order)
    if step.status in (SPSStatus.CANCELED, SPSStatus.DISCONTINUED, SPSStatus.NO_SHOW):
        return f"order {order.accession_number} was already {step.status.lower()}"
    _move(step, "discontinue" if step.status in (SPSStatus.STARTED, SPSStatus.DEPARTED) else "cancel")
    return f"order {order.accession_number} {step.status.lower()}"


ORDER_CONTROLS: dict[str, Callable[[Context, Message, dict[str, Segment], str], str]] = {
    "NW": order_new,
    "XO": order_change,
    "CA": order_cancel,
    "DC": order_discontinue,
}


def order_message(ctx: Context, msg: Message) -> str:
    fam = family_of(msg)
    results = []
    for g in order_groups(msg):
        control = g["ORC"].get(1).upper()
        handler = ORDER_CONTROLS.get(control)
        if handler is None:
            raise content_error(
                TABLE_VALUE_NOT_FOUND,
                f"order control {control or '(empty)'} is not supported (NW, XO, CA, DC)",
                "ORC-1",
            )
        results.append(handler(ctx, msg, g, fam))
    return "; ".join(results)
