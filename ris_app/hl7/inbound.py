"""What each inbound message does to patients and orders, through the RIS's own write
paths (ris_app.scheduling.orders), so every change rebuilds the worklist items it touches.

ADT^A01/A04 register (or update a known patient), A08 updates, A40 merges, A03/A11 update
demographics only (the RIS keeps no visits). ORM^O01 (2.3.1) and OMI^O23 (2.5.1) carry one
order group per ORC: NW creates, XO changes, CA cancels, DC discontinues (or cancels a step
that has not started). Content problems raise Hl7Error AE naming the field; messages we do
not handle raise AR.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import from_site, utcnow
from ris_app.errors import DomainError
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
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    Message,
    Segment,
    content_error,
    reject,
)
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.stations import pick_station
from ris_app.hl7.text import xpn_components
from ris_app.model import Order, Patient, ProcedureCode, ScheduledProcedureStep
from ris_app.scheduling.names import dicom_pn
from ris_app.scheduling.orders import (
    OrderData,
    PatientData,
    apply_action,
    create_order,
    create_patient,
    find_patient,
    patient_changed,
    primary_step,
    step_changed,
)
from ris_app.scheduling.states import FINAL_STATES, SPSStatus
from ris_app.tracking.corrections import sync_patient_studies, update_patient_everywhere

log = logging.getLogger(__name__)
SOURCE = "hl7"


@dataclass
class Context:
    session: Session
    settings: Hl7Settings
    accession_prefix: str = "RIS"
    uid_root: str = ""


# ----------------------------------------------------------------------------- reading
def family_of(msg: Message) -> str:
    """Which column of the mapping table applies: OMI/OMG and v2.5+ read the 2.5.1 one."""
    if msg.message_code in ("OMI", "OMG") or msg.version >= "2.5":
        return "2.5.1"
    return "2.3.1"


def _text(segs: dict[str, Segment], key: str, fam: str, max_len: int, *, forbid: str = "\\") -> tuple[str, str]:
    value, loc = m.read(segs, key, fam)
    assert isinstance(value, str)
    if value == '""':
        return '""', loc
    if len(value) > max_len:
        raise content_error(DATA_TYPE_ERROR, f"{loc} is longer than {max_len} characters", loc)
    if any(ch in value for ch in forbid) or any(ord(ch) < 32 for ch in value):
        raise content_error(DATA_TYPE_ERROR, f"{loc} holds a character that is not allowed", loc)
    return value, loc


def _date(value: str, loc: str) -> date | None:
    if not value or value == '""':
        return None
    digits = value[:8]
    try:
        if len(digits) == 8 and digits.isdigit():
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        pass
    raise content_error(DATA_TYPE_ERROR, f"{loc} is not a date (YYYYMMDD)", loc)


_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?(?:([+-])(\d{2})(\d{2}))?$")


def _datetime(value: str, loc: str) -> datetime | None:
    """HL7 DTM (YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZZZ]) as aware UTC: with an offset it is that
    instant; without one it is the department's wall-clock time (the site zone)."""
    if not value:
        return None
    match = _DTM.match(value)
    if match:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
        sign, oh, om = match.groups()[6:]
        try:
            if sign:
                offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
                return datetime(y, mo, d, h, mi, s, tzinfo=timezone(offset)).astimezone(UTC)
            return from_site(datetime(y, mo, d, h, mi, s))
        except (ValueError, OverflowError):  # a day or offset that does not exist
            pass
    raise content_error(DATA_TYPE_ERROR, f"{loc} is not a date and time (YYYYMMDDHHMMSS)", loc)


NAME_FORBID = "\\^="


def read_patient(segs: dict[str, Segment], fam: str) -> tuple[dict, str]:
    """The PID's demographics as model attributes: only what the message fills in (an empty
    field means 'no information', the HL7 null "" means 'clear it'). Returns (fields, mrn loc)."""
    out: dict = {}
    mrn, mrn_loc = _text(segs, "mrn", fam, 64)
    if not mrn or mrn == '""':
        raise content_error(REQUIRED_FIELD_MISSING, "patient ID (PID-3) is required", "PID-3")
    out["mrn"] = mrn
    issuer, _ = _text(segs, "issuer", fam, 64)
    out["issuer"] = "" if issuer == '""' else issuer
    comps, loc = m.read(segs, "name", fam)
    if comps:
        name = xpn_components(list(comps))
        for attr, value in (("family_name", name.family), ("given_name", name.given), ("middle_name", name.middle),
                            ("name_suffix", name.suffix), ("name_prefix", name.prefix)):
            if any(ch in value for ch in NAME_FORBID) or any(ord(ch) < 32 for ch in value):
                raise content_error(DATA_TYPE_ERROR, "a patient name part holds ^, \\ or =", loc)
            if len(value) > 64:
                raise content_error(DATA_TYPE_ERROR, "a patient name part is longer than 64 characters", loc)
            out[attr] = "" if value == '""' else value
    bd, loc = _text(segs, "birth_date", fam, 26)
    if bd:
        out["birth_date"] = _date(bd, loc)
    sex, loc = _text(segs, "sex", fam, 1)
    if sex:
        if sex.upper() not in m.SEX_IN:
            raise content_error(TABLE_VALUE_NOT_FOUND, f"{loc}: sex must be one of M F O U A N", loc)
        out["sex"] = m.SEX_IN[sex.upper()]
    addr, loc = m.read(segs, "address", fam)
    if addr:
        out["address"] = ", ".join(p for p in addr if p and p != '""')[:512]
    phone, _ = _text(segs, "phone", fam, 64)
    if phone:
        out["phone"] = "" if phone == '""' else phone
    return out, mrn_loc


def lookup_patient(session: Session, mrn: str, issuer: str) -> Patient | None:
    """By MRN and issuer; a patient registered without an issuer matches any issuer."""
    if not issuer:
        return find_patient(session, mrn, None)
    return find_patient(session, mrn, issuer) or find_patient(session, mrn, "")


def upsert_patient(ctx: Context, fields: dict, *, create: bool = True) -> Patient | None:
    patient = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", ""))
    if patient is None:
        if not create:
            return None
        if not fields.get("family_name"):
            raise content_error(REQUIRED_FIELD_MISSING, "patient name (PID-5) is required to register", "PID-5")
        return create_patient(ctx.session, PatientData(**fields))
    changes = {k: v for k, v in fields.items() if k != "mrn" and (k != "issuer" or v)}
    changes = {k: v for k, v in changes.items() if getattr(patient, k) != v}
    if changes:  # also queues the correction of the patient's studies in Orthanc
        update_patient_everywhere(ctx.session, patient, changes, user="hl7")
    return patient


# ----------------------------------------------------------------------------- ADT
def _segs(msg: Message, *names: str) -> dict[str, Segment]:
    return {n: s for n in names if (s := msg.segment(n)) is not None}


def _require(msg: Message, name: str) -> Segment:
    seg = msg.segment(name)
    if seg is None:
        raise reject(SEGMENT_SEQUENCE_ERROR, f"required segment {name} is missing", name)
    return seg


def adt_register(ctx: Context, msg: Message) -> str:
    _require(msg, "PID")
    fields, _ = read_patient(_segs(msg, "PID"), family_of(msg))
    existed = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", "")) is not None
    upsert_patient(ctx, fields)
    return "patient updated" if existed else "patient registered"


def adt_update(ctx: Context, msg: Message) -> str:
    return adt_register(ctx, msg)


def adt_demographics_only(ctx: Context, msg: Message) -> str:
    """A03 (discharge) / A11 (cancel admit): the RIS keeps no visits; demographics of a
    known patient are refreshed, nothing else changes."""
    _require(msg, "PID")
    fields, _ = read_patient(_segs(msg, "PID"), family_of(msg))
    patient = upsert_patient(ctx, fields, create=False)
    return "acknowledged; no visit kept" if patient is None else "acknowledged; demographics refreshed"


def adt_merge(ctx: Context, msg: Message) -> str:
    """A40: each PID/MRG pair merges MRG-1 (prior) into PID-3 (surviving). The prior
    patient's orders move to the surviving one (their worklist items say so) and the
    prior record is removed; if only the prior exists it simply takes the new ID."""
    fam = family_of(msg)
    pids, mrgs = msg.all("PID"), msg.all("MRG")
    if not pids or not mrgs:
        raise reject(SEGMENT_SEQUENCE_ERROR, "A40 needs PID and MRG segments", "MRG" if pids else "PID")
    done = []
    for pid, mrg in zip(pids, mrgs):
        segs = {"PID": pid, "MRG": mrg}
        fields, _ = read_patient(segs, fam)
        prior_mrn, _ = _text(segs, "prior_mrn", fam, 64)
        if not prior_mrn:
            raise content_error(REQUIRED_FIELD_MISSING, "prior patient ID (MRG-1) is required", "MRG-1")
        prior_issuer, _ = _text(segs, "prior_issuer", fam, 64)
        prior = lookup_patient(ctx.session, prior_mrn, prior_issuer)
        surviving = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", ""))
        if prior is None:
            if surviving is None and fields.get("family_name"):
                upsert_patient(ctx, fields)
            done.append("prior patient unknown")
        elif surviving is None:
            update_patient_everywhere(ctx.session, prior, {k: v for k, v in fields.items() if v or k == "issuer"},
                                      user="hl7")
            done.append("patient ID changed")
        elif prior.id == surviving.id:
            done.append("already merged")
        else:
            for order in list(prior.orders):
                order.patient = surviving
            ctx.session.flush()
            upsert_patient(ctx, fields)
            patient_changed(surviving)  # the moved orders now carry the surviving patient
            sync_patient_studies(ctx.session, surviving, "merge", {"merged_mrn": prior.mrn}, user="hl7")
            ctx.session.delete(prior)
            ctx.session.flush()
            done.append("patients merged")
    return "; ".join(done)


# ----------------------------------------------------------------------------- orders
def order_groups(msg: Message) -> list[dict[str, Segment]]:
    """One dict per ORC: the ORC and the OBR/TQ1/IPC/ZDS after it (first of each wins),
    plus the message's PID and PV1."""
    common = _segs(msg, "PID", "PV1")
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
    accession, _ = _text(g, "accession_number", fam, 64)
    if accession:
        order = ctx.session.scalar(select(Order).where(Order.accession_number == accession))
        if order is not None:
            return order
    placer, _ = _text(g, "placer_order_number", fam, 64)
    if placer:
        order = ctx.session.scalars(select(Order).where(Order.placer_order_number == placer).order_by(Order.id)).first()
        if order is not None:
            return order
    filler, _ = _text(g, "filler_order_number", fam, 64)
    if filler:
        order = ctx.session.scalars(select(Order).where(Order.filler_order_number == filler).order_by(Order.id)).first()
        if order is not None:
            return order
    loc = m.locations("accession_number", fam)[0] if accession else "ORC-2"
    raise content_error(UNKNOWN_KEY_IDENTIFIER, "no order with this accession or order number", loc)


def _modality(g: dict[str, Segment], fam: str, procedure: ProcedureCode | None) -> str:
    modality, loc = _text(g, "modality", fam, 16)
    modality = modality.upper() or (procedure.modality if procedure else "")
    if not modality:
        raise content_error(REQUIRED_FIELD_MISSING, "modality is required (or a catalog procedure code)", loc)
    if not modality.isalnum():
        raise content_error(DATA_TYPE_ERROR, f"{loc} must be a DICOM modality code such as CT", loc)
    return modality


def _procedure(ctx: Context, g: dict[str, Segment], fam: str) -> tuple[ProcedureCode | None, str, str]:
    code, loc = _text(g, "procedure_code", fam, 16)
    text, _ = _text(g, "procedure_text", fam, 64)
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
    uid, loc = _text(g, key, fam, 64)
    if uid and not all(part.isdigit() for part in uid.split(".")):
        raise content_error(DATA_TYPE_ERROR, f"{loc} must be a DICOM UID (digits and dots)", loc)
    return uid


def order_new(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    if "PID" not in g:
        raise reject(SEGMENT_SEQUENCE_ERROR, "required segment PID is missing", "PID")
    fields, _ = read_patient(g, fam)
    # A known patient's demographics are ADT's business: an order only registers the unknown.
    patient = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", "")) or upsert_patient(ctx, fields)
    assert patient is not None
    accession, acc_loc = _text(g, "accession_number", fam, 16)
    if accession and ctx.session.scalar(select(Order.id).where(Order.accession_number == accession)) is not None:
        raise content_error(DUPLICATE_KEY_IDENTIFIER, "an order with this accession number exists", acc_loc)
    procedure, proc_text, proc_loc = _procedure(ctx, g, fam)
    modality = _modality(g, fam, procedure)
    if procedure is None and not proc_text:
        raise content_error(TABLE_VALUE_NOT_FOUND, "procedure code not in the catalog and no procedure text", proc_loc)
    start_value, start_loc = _text(g, "scheduled_start", fam, 26)
    start = _datetime(start_value, start_loc) or utcnow().replace(second=0, microsecond=0)
    station, _ = _text(g, "station_aet", fam, 128, forbid="")
    station = station.replace("~", "\\")
    if not station:
        station = pick_station(ctx.session, ctx.settings.station_rules, modality=modality,
                               procedure_code=procedure.code if procedure else "")
    priority, _ = _text(g, "priority", fam, 8)
    suid = _uid(g, "study_instance_uid", fam)
    sps_id, sps_loc = _text(g, "sps_id", fam, 16)
    if sps_id and ctx.session.scalar(select(ScheduledProcedureStep.id).where(ScheduledProcedureStep.sps_id == sps_id)):
        raise content_error(DUPLICATE_KEY_IDENTIFIER, "a scheduled step with this SPS ID exists", sps_loc)
    rp_id, _ = _text(g, "requested_procedure_id", fam, 16)
    data = OrderData(
        patient=patient, procedure=procedure, modality=modality, scheduled_start=start,
        station_aet=station,
        station_name=_text(g, "station_name", fam, 16)[0],
        location=_text(g, "location", fam, 16)[0],
        accession_number=accession, study_instance_uid=suid,
        placer_order_number=_text(g, "placer_order_number", fam, 64)[0],
        filler_order_number=_text(g, "filler_order_number", fam, 64)[0],
        priority=m.PRIORITY_IN.get(priority.upper(), "ROUTINE"),
        referring_physician=_physician(g, fam),
        reason_for_exam=_text(g, "reason_for_exam", fam, 64)[0],
        description=proc_text if procedure is None else "",
    )
    try:
        order = create_order(ctx.session, data, accession_prefix=ctx.accession_prefix, uid_root=ctx.uid_root,
                             source=SOURCE)
    except DomainError as exc:
        raise content_error(DOMAIN_ERROR_CODES.get(exc.code, DATA_TYPE_ERROR), exc.message,
                            {"study_instance_uid": m.locations("study_instance_uid", fam)[0]}.get(exc.field or "", "")) from None
    step = primary_step(order)
    if sps_id or rp_id:
        step.sps_id = sps_id or step.sps_id
        step.requested_procedure.requested_procedure_id = rp_id or step.requested_procedure.requested_procedure_id
        step_changed(step)
    return f"order {order.accession_number} created"


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
    modality, _ = _text(g, "modality", fam, 16)
    if modality:
        step.modality = _modality(g, fam, procedure)
    start_value, start_loc = _text(g, "scheduled_start", fam, 26)
    if start_value:
        step.start_datetime = _datetime(start_value, start_loc)  # type: ignore[assignment]
    station, _ = _text(g, "station_aet", fam, 128, forbid="")
    if station:
        step.station_aet = station.replace("~", "\\")
    for key, attr, max_len in (("station_name", "station_name", 16), ("location", "location", 16)):
        value, _ = _text(g, key, fam, max_len)
        if value:
            setattr(step, attr, value)
    priority, _ = _text(g, "priority", fam, 8)
    if priority:
        order.priority = m.PRIORITY_IN.get(priority.upper(), order.priority)
    physician = _physician(g, fam)
    if physician:
        order.referring_physician = physician
    reason, _ = _text(g, "reason_for_exam", fam, 64)
    if reason:
        order.reason_for_exam = reason
    ctx.session.flush()
    step_changed(step)
    return f"order {order.accession_number} changed"


def _move(step: ScheduledProcedureStep, action: str) -> None:
    try:
        apply_action(step, action, source=SOURCE)
    except DomainError as exc:
        raise content_error(DOMAIN_ERROR_CODES.get(exc.code, APPLICATION_INTERNAL_ERROR), exc.message, "ORC-1") from None


def order_cancel(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    order = find_existing_order(ctx, g, fam)
    step = primary_step(order)
    if step.status in (SPSStatus.CANCELED, SPSStatus.DISCONTINUED):
        return f"order {order.accession_number} was already {step.status.lower()}"
    if step.status in (SPSStatus.STARTED, SPSStatus.DEPARTED):
        raise content_error(APPLICATION_INTERNAL_ERROR, "the exam has started: discontinue (DC) instead", "ORC-1")
    _move(step, "cancel")
    return f"order {order.accession_number} canceled"


def order_discontinue(ctx: Context, msg: Message, g: dict[str, Segment], fam: str) -> str:
    order = find_existing_order(ctx, g, fam)
    step = primary_step(order)
    if step.status in (SPSStatus.CANCELED, SPSStatus.DISCONTINUED):
        return f"order {order.accession_number} was already {step.status.lower()}"
    _move(step, "discontinue" if step.status in (SPSStatus.STARTED, SPSStatus.DEPARTED) else "cancel")
    return f"order {order.accession_number} {step.status.lower()}"


ORDER_CONTROLS: dict[str, Callable[[Context, Message, dict[str, Segment], str], str]] = {
    "NW": order_new, "XO": order_change, "CA": order_cancel, "DC": order_discontinue,
}


def order_message(ctx: Context, msg: Message) -> str:
    fam = family_of(msg)
    results = []
    for g in order_groups(msg):
        control = g["ORC"].get(1).upper()
        handler = ORDER_CONTROLS.get(control)
        if handler is None:
            raise content_error(TABLE_VALUE_NOT_FOUND, f"order control {control or '(empty)'} is not supported "
                                "(NW, XO, CA, DC)", "ORC-1")
        results.append(handler(ctx, msg, g, fam))
    return "; ".join(results)


# ----------------------------------------------------------------------------- dispatch
HANDLERS: dict[tuple[str, str], Callable[[Context, Message], str]] = {
    ("ADT", "A01"): adt_register,
    ("ADT", "A04"): adt_register,
    ("ADT", "A08"): adt_update,
    ("ADT", "A40"): adt_merge,
    ("ADT", "A03"): adt_demographics_only,
    ("ADT", "A11"): adt_demographics_only,
    ("ORM", "O01"): order_message,
    ("OMI", "O23"): order_message,
}
SUPPORTED_TYPES = sorted(f"{c}^{t}" for c, t in HANDLERS)


def handle(ctx: Context, msg: Message) -> str:
    """Apply one parsed message inside the caller's transaction. Returns a summary for the
    ACK text; raises Hl7Error when the message is refused."""
    handler = HANDLERS.get((msg.message_code, msg.trigger))
    if handler is None:
        if any(code == msg.message_code for code, _ in HANDLERS):
            raise reject(UNSUPPORTED_EVENT_CODE, f"{msg.message_type} is not supported", "MSH-9.2")
        raise reject(UNSUPPORTED_MESSAGE_TYPE, f"{msg.message_type or 'this message type'} is not supported", "MSH-9")
    return handler(ctx, msg)
