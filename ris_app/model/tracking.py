"""Tables of image tracking: studies as Orthanc holds them, performed steps (MPPS), corrections made to studies, the queue
of changes to apply to Orthanc, and the sync state reported by the plugin."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime

if TYPE_CHECKING:
    from ris_app.model.scheduling import Order


class Study(Base):
    """A study as Orthanc holds it, linked to its order or recorded as unmatched."""

    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    orthanc_id: Mapped[str] = mapped_column(String(64), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("imaging_order.id"), index=True)
    link_method: Mapped[str] = mapped_column(String(32), default="")  # accession, study_uid, sps_id
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    patient_mrn: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(255), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    modalities: Mapped[str] = mapped_column(String(64), default="")
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    stable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_change_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Kept to score candidate orders for unmatched studies (the inbox).
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    station_aet: Mapped[str] = mapped_column(String(16), default="")  # AE title that sent it

    order: Mapped[Order | None] = relationship()


class PerformedProcedureStep(Base):
    """A Modality Performed Procedure Step (MPPS) as the modality reported it."""

    __tablename__ = "performed_procedure_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)  # the MPPS instance
    step_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_procedure_step.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # IN PROGRESS, COMPLETED, DISCONTINUED
    performed_station_aet: Mapped[str] = mapped_column(String(16), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Performed Series Sequence: [{"series_instance_uid", "instances": [sop uids]}]
    performed_series: Mapped[list | None] = mapped_column(JSON)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    # Code values the modality reported as performed (Performed Protocol Code Sequence,
    # Procedure Code Sequence): billing charges the performed procedure by them.
    performed_codes: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    step = relationship("ScheduledProcedureStep")


class StudyCorrection(Base):
    """Audit of every correction of a study or patient (link, undo, rename, merge):
    who, when, what it was before and after, so it can be shown and undone."""

    __tablename__ = "study_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # link, unlink, patient_update, merge
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id", ondelete="SET NULL"), index=True)
    before: Mapped[dict] = mapped_column(JSON)
    after: Mapped[dict] = mapped_column(JSON)
    performed_by: Mapped[str] = mapped_column(String(64), default="api")  # user name or "api"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("study_correction.id"))

    study = relationship("Study")


class OrthancTask(Base):
    """A task of the sync worker, kept in the database so it survives a restart of either
    side and is retried until done: a change to make in Orthanc (kind "modify": a study's
    patient or accession), or one of the things a report signature causes (the kinds of
    ris_app/reporting/outbox.py: render the PDF, store the Encapsulated PDF and the SR into
    Orthanc, queue the ORU for one HL7 destination), queued in the signing transaction."""

    __tablename__ = "orthanc_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="modify")
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    replace: Mapped[dict] = mapped_column(JSON)  # DICOM keyword -> new value
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending done failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("study_correction.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Report tasks: the signed version, the HL7 destination (ORU), and the back-off (None: due now).
    report_version_id: Mapped[int | None] = mapped_column(ForeignKey("report_version.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64), default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    study = relationship("Study")
    report_version = relationship("ReportVersion")


class SyncState(Base):
    """Named facts about synchronisation (plugin cursor, last reconciliation), one row each."""

    __tablename__ = "sync_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
