"""The patient's clinical record for safe imaging (allergies, renal results, pregnancy,
implants, body measures, needs), structured insurance, other identifiers, and per step the
outcome of the safety checks (warnings, hold, a radiologist's override).

Relationships hang on Patient, Order and ScheduledProcedureStep as backrefs, so the
scheduling model stays as it is: `patient.record`, `patient.allergies`,
`patient.lab_results`, `patient.implants`, `patient.identifiers`, `order.preauth`,
`step.safety`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.model.scheduling import Order, Patient, ScheduledProcedureStep

# DICOM PregnancyStatus (0010,21C0) enumerated values, by the RIS's name for them.
PREGNANCY_STATUSES = {"not_pregnant": 1, "possibly_pregnant": 2, "pregnant": 3, "unknown": 4}
# The MR labelling of an implant (ASTM F2503): unknown counts as unsafe.
MR_SAFETY = ("safe", "conditional", "unsafe", "unknown")
# Contrast agent classes: of an allergy's agent and of a procedure of the catalog.
CONTRAST_CLASSES = ("iodinated", "gadolinium")
SEVERITIES = ("mild", "moderate", "severe", "unknown")
LAB_TESTS = ("creatinine", "egfr")
PREAUTH_STATUSES = ("", "requested", "approved", "denied", "not_required")


class PatientRecord(Base):
    """One row per patient: what is known once (latest value wins)."""

    __tablename__ = "patient_record"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
    pregnancy_status: Mapped[str] = mapped_column(String(20), default="")  # a key of PREGNANCY_STATUSES or ""
    pregnancy_recorded_on: Mapped[date | None] = mapped_column(Date)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    height_m: Mapped[float | None] = mapped_column(Float)
    measured_on: Mapped[date | None] = mapped_column(Date)
    mobility: Mapped[str] = mapped_column(String(64), default="")  # e.g. wheelchair, stretcher
    interpreter: Mapped[str] = mapped_column(String(64), default="")  # the language needed, "" none
    # Insurance as data (registration.insurance_of reads it).
    payer: Mapped[str] = mapped_column(String(128), default="")
    plan: Mapped[str] = mapped_column(String(128), default="")
    member_number: Mapped[str] = mapped_column(String(64), default="")
    group_number: Mapped[str] = mapped_column(String(64), default="")
    subscriber: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(backref=backref("record", uselist=False, cascade="all, delete-orphan"))


class Allergy(Base):
    __tablename__ = "patient_allergy"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    agent: Mapped[str] = mapped_column(String(128))
    agent_class: Mapped[str] = mapped_column(String(32), default="")  # a CONTRAST_CLASSES value, "contrast", or ""
    reaction: Mapped[str] = mapped_column(String(128), default="")
    severity: Mapped[str] = mapped_column(String(16), default="unknown")
    source: Mapped[str] = mapped_column(String(64), default="")  # api, page, hl7:<application>
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(
        backref=backref("allergies", order_by="Allergy.id", cascade="all, delete-orphan")
    )


class LabResult(Base):
    """A renal function result (creatinine or eGFR) with the time it was observed."""

    __tablename__ = "lab_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    test: Mapped[str] = mapped_column(String(16))  # a LAB_TESTS value
    code: Mapped[str] = mapped_column(String(32), default="")  # LOINC code as sent
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32), default="")
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(64), default="")
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(
        backref=backref("lab_results", order_by="LabResult.observed_at.desc()", cascade="all, delete-orphan")
    )


class Implant(Base):
    __tablename__ = "patient_implant"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(128))
    mr_safety: Mapped[str] = mapped_column(String(16), default="unknown")  # a MR_SAFETY value
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(
        backref=backref("implants", order_by="Implant.id", cascade="all, delete-orphan")
    )


class PatientIdentifier(Base):
    """An identifier of the patient other than the MRN (national, insurance, another
    site's MRN): searchable, and sent in the worklist as OtherPatientIDsSequence."""

    __tablename__ = "patient_identifier"
    __table_args__ = (UniqueConstraint("patient_id", "value", "type_code", "authority", name="uq_patient_identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    value: Mapped[str] = mapped_column(String(64), index=True)
    type_code: Mapped[str] = mapped_column(String(16), default="")  # HL7 table 0203: SS, NI, PI, MR...
    authority: Mapped[str] = mapped_column(String(64), default="")

    patient: Mapped[Patient] = relationship(
        backref=backref("identifiers", order_by="PatientIdentifier.id", cascade="all, delete-orphan")
    )


class OrderPreauth(Base):
    """The payer's pre-authorisation of one order."""

    __tablename__ = "order_preauth"

    order_id: Mapped[int] = mapped_column(ForeignKey("imaging_order.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="")  # a PREAUTH_STATUSES value

    order: Mapped[Order] = relationship(backref=backref("preauth", uselist=False, cascade="all, delete-orphan"))


class StepSafety(Base):
    """The last safety check of a step (registration.safety): what it found, whether the
    step waits on hold for the desk, and a radiologist's override of its blocks."""

    __tablename__ = "step_safety"

    step_id: Mapped[int] = mapped_column(
        ForeignKey("scheduled_procedure_step.id", ondelete="CASCADE"), primary_key=True
    )
    findings: Mapped[list] = mapped_column(JSON, default=list)  # [{rule, action, message}]
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    checked_on: Mapped[str] = mapped_column(String(16), default="")  # order, book, arrive, record, override
    hold: Mapped[bool] = mapped_column(default=False, index=True)
    hold_reason: Mapped[str] = mapped_column(String(512), default="")
    override_rules: Mapped[str] = mapped_column(String(255), default="")  # rule ids, comma-separated
    override_by: Mapped[str] = mapped_column(String(64), default="")
    override_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    override_reason: Mapped[str] = mapped_column(String(512), default="")

    step: Mapped[ScheduledProcedureStep] = relationship(
        backref=backref("safety", uselist=False, cascade="all, delete-orphan")
    )
