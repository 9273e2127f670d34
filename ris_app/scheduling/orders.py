"""Patients, orders and scheduled steps: the write paths shared by the API, the pages,
HL7 and the worklist import.

Every function works inside the caller's transaction. Whatever changes a step, its order,
its requested procedure or its patient tells `step_changed` (or `patient_changed`), the
one place that rebuilds the step's worklist item, when the status moved queues the HL7
status messages, plans the patient's messages (ris_app/reminders/plan.py) and captures
the charges of a performed exam (ris_app/billing/capture.py): the next C-FIND, the EHR,
the patient and billing see the new state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from pydicom.uid import generate_uid
from sqlalchemy import Sequence, select
from sqlalchemy.orm import Session, object_session

from ris_app.billing.capture import capture as capture_charges
from ris_app.clock import utcnow
from ris_app.db import begin_write, is_sqlite, lock_key, lock_row
from ris_app.errors import Conflict, NotFound, StaleVersion
from ris_app.frontdesk.booking import ClashPolicy, book, primary_aet
from ris_app.hl7.appointments import on_appointment
from ris_app.hl7.appointments import on_status as on_appointment_status
from ris_app.hl7.outbound import on_step_status
from ris_app.model import (
    SEQUENCES,
    IdSequence,
    Order,
    Patient,
    ProcedureCode,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
)
from ris_app.registration.safety import SafetyPolicy
from ris_app.registration.safety import check as safety_check
from ris_app.registration.search import mrn_clause, mrn_folded
from ris_app.reminders.plan import plan as plan_messages
from ris_app.scheduling.fields import check_order, check_patient
from ris_app.scheduling.history import record_change, record_edit, room_change
from ris_app.scheduling.states import STARTABLE, IllegalTransition, SPSStatus, next_status
from ris_app.worklist.items import refresh_worklist_item

log = logging.getLogger(__name__)


def next_id(session: Session, name: str) -> int:
    """Next value of a named counter, never handed out twice: a PostgreSQL sequence, or on
    SQLite the counter row read and written under the writer's BEGIN IMMEDIATE."""
    if not is_sqlite(session):
        return session.execute(Sequence(SEQUENCES[name]).next_value()).scalar_one()
    begin_write(session)
    seq = session.execute(select(IdSequence).where(IdSequence.name == name)).scalar_one_or_none()
    if seq is None:
        seq = IdSequence(name=name, next_value=1)
        session.add(seq)
        session.flush()
    value = seq.next_value
    seq.next_value = value + 1
    return value


@dataclass
class PatientData:
    mrn: str
    family_name: str
    given_name: str = ""
    middle_name: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    issuer: str = ""
    birth_date: date | None = None
    sex: str = "U"
    phone: str = ""
    email: str = ""
    address: str = ""
    insurance: str = ""
    language: str = ""  # of the patient's messages; "" is the site's
    notify_email: bool = True  # False: opted out of e-mail messages
    notify_sms: bool = True


def find_patient(session: Session, mrn: str, issuer: str | None = None) -> Patient | None:
    """The patient with this MRN (and issuer, when given): the one lookup by MRN of pages,
    API, HL7, the worklist import and merges, comparing MRNs as the site says
    (ORTHANC_RIS_MRN_CASE_INSENSITIVE, registration.search.mrn_clause)."""
    stmt = select(Patient).where(mrn_clause(mrn))
    if issuer is not None:
        stmt = stmt.where(Patient.issuer == issuer)
    return session.scalars(stmt.order_by(Patient.id)).first()


def create_patient(session: Session, data: PatientData) -> Patient:
    check_patient(data.__dict__)
    # Two registrations of one MRN at once (p2001 and P2001 on a site that ignores case,
    # which the exact-case unique constraint cannot see) take turns: the second finds the first.
    lock_key(session, "patient-mrn", mrn_folded(data.mrn))
    if find_patient(session, data.mrn, data.issuer) is not None:
        raise Conflict("a patient with this MRN and issuer exists", field="mrn")
    patient = Patient(**data.__dict__)
    session.add(patient)
    session.flush()
    log.info("patient registered (id %d)", patient.id)
    return patient


def step_changed(
    step: ScheduledProcedureStep, *, status_source: str | None = None, appointment: tuple[str, str] | None = None
) -> None:
    """Told that a step, its order, its requested procedure or its patient changed: the one
    caller of the worklist item rebuild and of the HL7 status outbox. `status_source` is
    given when the step's status moved (who moved it: api, page, hl7, mpps, images, ...);
    `appointment` = (event, source) when it was booked or moved ("booked", "rescheduled":
    hl7.appointments.EVENTS)."""
    refresh_worklist_item(step)
    if status_source is not None:
        on_step_status(step, step.status, status_source)  # queued in this transaction
        on_appointment_status(step, status_source)  # SIU^S15 / S26 where the peers want them
        capture_charges(step)  # completed (or discontinued, per the rule): its charges
    if appointment is not None:
        on_appointment(step, *appointment)
    plan_messages(step)  # the patient's confirmation, reminders, reschedule or cancel message


def patient_changed(patient: Patient) -> None:
    """Told that a patient's demographics or record changed, or that orders moved to this
    patient. Each step is locked first: another writer moving one of them meanwhile is
    waited for, not overwritten (nor answered with a stale-version error). Exams not yet
    started are checked against the safety rules again: a new low eGFR or allergy holds a
    booked contrast exam (kept out of the worklist) at once, not only at check-in; a
    better result releases it."""
    for order in patient.orders:
        for rp in order.requested_procedures:
            for step in rp.steps:
                lock_step(step)
                if step.status in STARTABLE:
                    safety_check(step, "record", SafetyPolicy.HOLD)
                step_changed(step)


def update_patient(session: Session, patient: Patient, changes: dict) -> Patient:
    check_patient(changes, partial=True)
    for key, value in changes.items():
        setattr(patient, key, value)
    session.flush()
    patient_changed(patient)
    return patient


@dataclass
class OrderData:
    patient: Patient
    procedure: ProcedureCode | None
    modality: str
    scheduled_start: datetime
    station_aet: str = ""
    station_name: str = ""
    location: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    priority: str = "ROUTINE"
    referring_physician: str = ""
    reason_for_exam: str = ""
    diagnosis_codes: str = ""  # ICD codes, "~"-separated
    description: str = ""
    performing_physician: str = ""
    extra_attributes: dict | None = field(default=None)


def create_order(
    session: Session,
    data: OrderData,
    *,
    accession_prefix: str = "RIS",
    uid_root: str = "",
    source: str = "api",
    clash_policy: ClashPolicy = ClashPolicy.REFUSE,
    safety_policy: SafetyPolicy = SafetyPolicy.REFUSE,
) -> Order:
    """Create order, requested procedure and scheduled step in one go. Time already taken
    on the station is refused (SlotTaken, 409), flagged or overbooked by `clash_policy`
    (frontdesk.booking.book, the one booking rule); a safety rule's block is refused
    (Unsafe, 422) or holds the step by `safety_policy` (registration.safety)."""
    check_order(data.__dict__)
    accession = data.accession_number
    if accession:
        if session.scalar(select(Order.id).where(Order.accession_number == accession)) is not None:
            raise Conflict("an order with this accession number exists", field="accession_number")
    else:
        while True:
            accession = f"{accession_prefix}{next_id(session, 'accession'):08d}"
            if session.scalar(select(Order.id).where(Order.accession_number == accession)) is None:
                break
    suid = data.study_instance_uid or generate_uid(prefix=f"{uid_root.rstrip('.')}." if uid_root else None)
    if session.scalar(select(RequestedProcedure.id).where(RequestedProcedure.study_instance_uid == suid)) is not None:
        raise Conflict("a requested procedure with this StudyInstanceUID exists", field="study_instance_uid")

    # Draw every generated identifier before building objects: attaching the order to the
    # patient would otherwise be autoflushed half-built by the counter queries.
    sps_id = f"SPS{next_id(session, 'sps'):08d}"
    station = None
    if data.station_aet:
        station = session.scalar(select(Station).where(Station.aet == primary_aet(data.station_aet)))
    description = data.description or (data.procedure.description if data.procedure else "")
    order = Order(
        accession_number=accession,
        placer_order_number=data.placer_order_number,
        filler_order_number=data.filler_order_number or accession,
        patient=data.patient,
        priority=data.priority,
        referring_physician=data.referring_physician,
        reason_for_exam=data.reason_for_exam,
        diagnosis_codes=data.diagnosis_codes,
    )
    rp = RequestedProcedure(
        requested_procedure_id=accession,
        procedure_code=data.procedure,
        description=description,
        study_instance_uid=suid,
    )
    step = ScheduledProcedureStep(
        sps_id=sps_id,
        modality=data.modality,
        station_aet=data.station_aet,
        station_name=data.station_name or (station.name if station else ""),
        location=data.location or (station.location if station else ""),
        description=description,
        start_datetime=data.scheduled_start,
        performing_physician=data.performing_physician,
        status=SPSStatus.SCHEDULED,
        extra_attributes=data.extra_attributes,
    )
    record_change(session, step, None, SPSStatus.SCHEDULED, source)
    rp.steps.append(step)
    order.requested_procedures.append(rp)
    session.add(order)
    session.flush()
    book(session, step, data.procedure, clash_policy)
    safety_check(step, "order", safety_policy)
    step_changed(step, appointment=("booked", source))
    log.info("order %s placed (step %s, %s)", order.accession_number, step.sps_id, step.modality)
    return order


def find_order(session: Session, accession: str) -> Order:
    order = session.scalar(select(Order).where(Order.accession_number == accession))
    if order is None:
        raise NotFound("no order with this accession number", field="accession_number")
    return order


def primary_step(order: Order) -> ScheduledProcedureStep:
    return order.requested_procedures[0].steps[0]


def set_step_status(
    step: ScheduledProcedureStep, target: SPSStatus, source: str, *, only_from: frozenset[SPSStatus] | None = None
) -> bool:
    """Record a status change (no-op when already there, or when `only_from` is given and
    the step is in none of those states). Returns whether it changed. The step is locked
    and re-read first, so the check sees what other writers committed."""
    lock_step(step)
    if step.status == target or (only_from is not None and step.status not in only_from):
        return False
    _move(step, target, source)
    return True


def _move(step: ScheduledProcedureStep, target: SPSStatus, source: str, reason: str = "") -> None:
    """The move itself, on a step the caller has locked and checked."""
    session = object_session(step)
    assert session is not None
    record_change(session, step, step.status, target, source, reason)
    step.status = target
    step.status_changed_at = utcnow()
    step_changed(step, status_source=source)


def lock_step(step: ScheduledProcedureStep, expected_version: int | None = None) -> ScheduledProcedureStep:
    """Hold the step for this transaction, up to date (db.lock_row). `expected_version`:
    the lock_version the caller's page or client read; another writer's change since then
    is a StaleVersion (409) naming who made it."""
    session = object_session(step)
    if session is not None:
        lock_row(session, step)
    if expected_version is not None and expected_version != step.lock_version:
        raise StaleVersion("step", step.changed_by)
    return step


def put_on_station(session: Session, step: ScheduledProcedureStep, station_aet: str) -> Station | None:
    """Point the step at another station (its name and room follow); the caller books it."""
    station = session.scalar(select(Station).where(Station.aet == primary_aet(station_aet)))
    step.station_aet = station_aet
    step.station_name = station.name if station else ""
    step.location = station.location if station else ""
    return station


def reschedule_step(
    step: ScheduledProcedureStep,
    start: datetime,
    station_aet: str = "",
    *,
    source: str = "api",
    clash_policy: ClashPolicy = ClashPolicy.REFUSE,
    expected_version: int | None = None,
    safety_policy: SafetyPolicy = SafetyPolicy.REFUSE,
) -> ScheduledProcedureStep:
    """Move a waiting step to `start`, on `station_aet` when given (else its own), under
    the booking rule; its worklist item follows. A step already started or finished stays."""
    lock_step(step, expected_version)
    if step.status not in STARTABLE:
        raise IllegalTransition("reschedule", step.status)
    session = object_session(step)
    assert session is not None
    before, room = step.start_datetime, step.station_aet
    if station_aet and station_aet != step.station_aet:
        put_on_station(session, step, station_aet)
    step.start_datetime = start
    if (before, room) != (start, step.station_aet):
        record_edit(session, step, "move", source, room_change(room, step.station_aet), start_before=before)
    book(session, step, step.requested_procedure.procedure_code, clash_policy)
    safety_check(step, "book", safety_policy)
    step_changed(step, appointment=("rescheduled", source))
    log.info("step %s rescheduled (%s)", step.sps_id, source)
    return step


def apply_action(
    step: ScheduledProcedureStep,
    action: str,
    source: str = "api",
    *,
    expected_version: int | None = None,
    reason: str = "",
) -> SPSStatus:
    """Move a step by a named action (arrive, start, complete, cancel, discontinue, ...);
    `reason` (a cancel's) goes to the history and the EHR's status message (ORC-16)."""
    lock_step(step, expected_version)
    target = next_status(step.status, action)
    if action == "arrive" and step.status != target:  # check-in: the rules again, on today's record
        safety_check(step, "arrive", SafetyPolicy.REFUSE)
    if step.status != target:
        _move(step, target, source, reason)  # locked and checked above: no second lock
    log.info("step %s -> %s (%s)", step.sps_id, target, source)
    return target
