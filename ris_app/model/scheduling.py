"""The RIS data model, named as radiology names it (SQLAlchemy 2.0 typed models)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    event,
    func,
)
from sqlalchemy import (
    true as sa_true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.scheduling.states import SPSStatus


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("mrn", "issuer", name="uq_patient_mrn_issuer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64), index=True)  # DICOM PatientID (LO)
    issuer: Mapped[str] = mapped_column(String(64), default="")  # IssuerOfPatientID
    family_name: Mapped[str] = mapped_column(String(128))
    given_name: Mapped[str] = mapped_column(String(128), default="")
    middle_name: Mapped[str] = mapped_column(String(128), default="")
    name_prefix: Mapped[str] = mapped_column(String(64), default="")
    name_suffix: Mapped[str] = mapped_column(String(64), default="")
    birth_date: Mapped[date | None] = mapped_column(Date, index=True)
    sex: Mapped[str] = mapped_column(String(1), default="U")  # M F O U
    phone: Mapped[str] = mapped_column(String(64), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    address: Mapped[str] = mapped_column(String(512), default="")
    insurance: Mapped[str] = mapped_column(String(255), default="")
    # Messages about appointments (ris_app/reminders): the language of their templates
    # ("" is the site's default) and the patient's choice per channel (opt-out).
    language: Mapped[str] = mapped_column(String(8), default="", server_default="")
    notify_email: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    notify_sms: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Set when this record was merged into another (the survivor keeps orders and studies).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="SET NULL"))
    # Search keys (ris_app/registration/keys.py), set before every write by _fill_keys:
    # the names folded without accents or case, the MRN as compared, the phone's digits.
    name_key: Mapped[str] = mapped_column(String(400), default="", server_default="", index=True)
    mrn_key: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    phone_digits: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)

    orders: Mapped[list[Order]] = relationship(back_populates="patient")
    merged_into: Mapped[Patient | None] = relationship(remote_side=[id])


@event.listens_for(Patient, "before_insert")
@event.listens_for(Patient, "before_update")
def _fill_keys(_mapper, _connection, patient: Patient) -> None:
    """Every write of a patient (pages, API, HL7 ADT, import, merge) refreshes its search
    keys: one place, so no path can leave them stale."""
    from ris_app.registration.keys import fill  # a plain module; imported late to keep the model first

    fill(patient)


class ProcedureCode(Base):
    """The procedure catalog: what can be ordered."""

    __tablename__ = "procedure_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # CodeValue (SH)
    coding_scheme: Mapped[str] = mapped_column(String(16), default="99ORIS")
    description: Mapped[str] = mapped_column(String(64))  # CodeMeaning (LO)
    modality: Mapped[str] = mapped_column(String(16))
    default_duration_minutes: Mapped[int] = mapped_column(Integer, default=15)
    # What the patient must do before the exam (fasting, a full bladder, no metal...).
    preparation: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    # The contrast agent class the procedure gives ("" none; iodinated, gadolinium): the
    # safety checks (registration.safety) read it.
    contrast: Mapped[str] = mapped_column(String(16), default="", server_default="")


class Station(Base):
    """A modality (scanner) as the RIS schedules it: one AE title, one room."""

    __tablename__ = "station"

    id: Mapped[int] = mapped_column(primary_key=True)
    aet: Mapped[str] = mapped_column(String(16), unique=True)  # ScheduledStationAETitle
    name: Mapped[str] = mapped_column(String(16), default="")  # ScheduledStationName
    modality: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(String(16), default="")  # ScheduledProcedureStepLocation
    # When this station's worklist query names no ScheduledStationAETitle, answer only the
    # steps scheduled on its own AE title (the calling AE).
    worklist_own_steps_only: Mapped[bool] = mapped_column(default=False)
    # Where the AE may call from (an IP literal: Orthanc and the MPPS SCP compare the peer
    # address as text) and the port Orthanc reaches it on. Empty: the AE title alone is checked.
    host: Mapped[str] = mapped_column(String(45), default="", server_default="")
    port: Mapped[int | None] = mapped_column(Integer)


class Order(Base):
    """An imaging service request, identified by its accession number."""

    __tablename__ = "imaging_order"  # "order" is an SQL keyword

    id: Mapped[int] = mapped_column(primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(16), unique=True)
    placer_order_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    filler_order_number: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="ROUTINE")  # STAT HIGH ROUTINE MEDIUM LOW
    referring_physician: Mapped[str] = mapped_column(String(128), default="")
    reason_for_exam: Mapped[str] = mapped_column(String(255), default="")
    # Reason-for-exam diagnosis codes (ICD), "~"-separated as HL7 repeats them (DG1-3,
    # OBR-31.1): billed with the exam's charges.
    diagnosis_codes: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # The desk's notes for the exam (transport, interpreter, ...): edited on the order page.
    notes: Mapped[str] = mapped_column(String(1024), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="orders")
    requested_procedures: Mapped[list[RequestedProcedure]] = relationship(
        back_populates="order", cascade="all, delete-orphan"
    )


class RequestedProcedure(Base):
    __tablename__ = "requested_procedure"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("imaging_order.id"), index=True)
    requested_procedure_id: Mapped[str] = mapped_column(String(16))  # (0040,1001) SH
    procedure_code_id: Mapped[int | None] = mapped_column(ForeignKey("procedure_code.id"))
    description: Mapped[str] = mapped_column(String(64), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)

    order: Mapped[Order] = relationship(back_populates="requested_procedures")
    procedure_code: Mapped[ProcedureCode | None] = relationship()
    steps: Mapped[list[ScheduledProcedureStep]] = relationship(
        back_populates="requested_procedure", cascade="all, delete-orphan"
    )


class ScheduledProcedureStep(Base):
    __tablename__ = "scheduled_procedure_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    requested_procedure_id: Mapped[int] = mapped_column(ForeignKey("requested_procedure.id"), index=True)
    sps_id: Mapped[str] = mapped_column(String(16), unique=True)  # (0040,0009) SH
    modality: Mapped[str] = mapped_column(String(16), index=True)
    # One or more AE titles, DICOM-style backslash-separated (AE is multi-valued in MWL).
    station_aet: Mapped[str] = mapped_column(String(128), default="", index=True)
    station_name: Mapped[str] = mapped_column(String(16), default="")
    location: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    start_datetime: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Where the booked time ends: start plus the procedure's duration on that station
    # (frontdesk.booking.step_minutes). The station is taken over [start, end).
    end_datetime: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # "" booked normally; "clash": accepted while it overlaps another booking (HL7, an
    # imported worklist), for the front desk to resolve; "overbook": placed on taken time
    # on purpose by a role allowed to (changed_by says who). booking_clash_with: the
    # accession number it overlaps.
    booking_flag: Mapped[str] = mapped_column(String(16), default="", server_default="")
    booking_clash_with: Mapped[str] = mapped_column(String(16), default="", server_default="")
    performing_physician: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default=SPSStatus.SCHEDULED, index=True)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The worklist answer (DICOM Part 10 bytes), rebuilt whenever the step, its order or
    # its patient changes, so a C-FIND never builds DICOM on the hot path.
    worklist_item: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Attributes the RIS does not model (imported worklists keep every attribute).
    extra_attributes: Mapped[dict | None] = mapped_column(JSON)
    # Optimistic locking: every UPDATE checks and bumps lock_version, so a writer that read
    # an older state fails (StaleDataError, a 409) instead of overwriting; changed_by names
    # who made the last change (page:alice, api:token, hl7:EHR, mpps:CT1, images) for the
    # message the loser sees.
    lock_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    changed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # When the patient answered "I will come" through a reminder's confirm link.
    patient_confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    __mapper_args__ = {"version_id_col": lock_version}  # noqa: RUF012  (SQLAlchemy reads it once)

    requested_procedure: Mapped[RequestedProcedure] = relationship(back_populates="steps")
    history: Mapped[list[StepStatusChange]] = relationship(
        back_populates="step", cascade="all, delete-orphan", order_by="StepStatusChange.id"
    )
    changes: Mapped[list[StepChange]] = relationship(
        back_populates="step", cascade="all, delete-orphan", order_by="StepChange.id"
    )


class StepStatusChange(Base):
    """Every status change of a step, with its time and cause."""

    __tablename__ = "step_status_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("scheduled_procedure_step.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="api")  # api, page, images, hl7, mpps
    # Who: a user name, "api:<token>", or a part of the system ("plugin", "hl7:<sending
    # application>", "mpps:<AE>", "no-show sweep"): scheduling.history.record_change.
    actor: Mapped[str] = mapped_column(String(64), default="", server_default="")
    reason: Mapped[str] = mapped_column(String(255), default="", server_default="")  # why (a cancel's)

    step: Mapped[ScheduledProcedureStep] = relationship(back_populates="history")


class StepChange(Base):
    """Every change to a waiting exam other than its status: an edit of its order (which
    fields, codes before and after; free text only named) or a move in time or room.
    Written by scheduling.history.record_edit."""

    __tablename__ = "step_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("scheduled_procedure_step.id"), index=True)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # edit, move
    source: Mapped[str] = mapped_column(String(32), default="api")  # api, page, hl7, import
    actor: Mapped[str] = mapped_column(String(64), default="")  # as StepStatusChange.actor
    what: Mapped[str] = mapped_column(String(255), default="")  # "priority ROUTINE → STAT; notes"
    # A move: the start before and after (UTC; shown in the site's zone).
    start_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_after: Mapped[datetime | None] = mapped_column(UtcDateTime)

    step: Mapped[ScheduledProcedureStep] = relationship(back_populates="changes")


class IdSequence(Base):
    """Counters for generated identifiers (accession numbers, SPS IDs) on SQLite, where the
    writer's BEGIN IMMEDIATE serialises them. PostgreSQL draws from real sequences
    (SEQUENCES, created by migration 0008), which never hand out a value twice."""

    __tablename__ = "id_sequence"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer, default=1)


# Counter name -> the PostgreSQL sequence that backs it (scheduling.orders.next_id).
SEQUENCES = {"accession": "ris_accession_seq", "sps": "ris_sps_seq"}

# Worklist queries: steps by start within the answered statuses, patients by family name
# whatever its case (PatientName matching ignores case).
Index("ix_scheduled_procedure_step_start_status", ScheduledProcedureStep.start_datetime, ScheduledProcedureStep.status)
# Free slots and clashes: the steps of some stations over a time range.
Index(
    "ix_scheduled_procedure_step_station_start",
    ScheduledProcedureStep.station_aet,
    ScheduledProcedureStep.start_datetime,
)
Index("ix_patient_family_name_lower", func.lower(Patient.family_name))
PRIORITIES = ("STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW")
SEXES = ("M", "F", "O", "U")
