"""Reports: templates per procedure, the report of a study, its versions (the original
and its addenda) and the critical results communicated (SQLAlchemy 2.0 typed models).

A signed version is never edited: a correction after FINAL is a new version of kind
ADDENDUM, and every version keeps the outputs made from it (PDF, the DICOM instance
stored into the study, the result message to the EHR).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.model.tracking import Study
from ris_app.model.users import User

DRAFT, PRELIMINARY, FINAL = "DRAFT", "PRELIMINARY", "FINAL"
REPORT_STATUSES = (DRAFT, PRELIMINARY, FINAL)
ORIGINAL, ADDENDUM = "ORIGINAL", "ADDENDUM"
SECTIONS = ("indication", "technique", "findings", "impression")
COMMUNICATION_METHODS = ("phone", "in person", "secure message", "page")


class ReportTemplate(Base):
    """The starting text of a report for one procedure code (or, with procedure_code
    empty, for every procedure of a modality without its own)."""

    __tablename__ = "report_template"
    __table_args__ = (UniqueConstraint("procedure_code", "modality", name="uq_report_template_procedure_modality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(16), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    name: Mapped[str] = mapped_column(String(64))
    indication: Mapped[str] = mapped_column(Text, default="")
    technique: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")


class Report(Base):
    """The report of one study; its text lives in its versions."""

    __tablename__ = "report"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=DRAFT, index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("report_template.id"))
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    study: Mapped[Study] = relationship()
    author: Mapped[User | None] = relationship()
    versions: Mapped[list[ReportVersion]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="ReportVersion.version"
    )
    critical_results: Mapped[list[CriticalResult]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="CriticalResult.id"
    )


class ReportVersion(Base):
    """Version 1 is the original report; each addendum is the next version. The text of a
    version is frozen once it is FINAL."""

    __tablename__ = "report_version"
    __table_args__ = (UniqueConstraint("report_id", "version", name="uq_report_version_report_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default=ORIGINAL)  # ORIGINAL ADDENDUM
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    indication: Mapped[str] = mapped_column(Text, default="")
    technique: Mapped[str] = mapped_column(Text, default="")
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    addendum: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    preliminary_by_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"))
    preliminary_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"))
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Outputs made when the version is signed.
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")  # the Encapsulated PDF
    sr_instance_uid: Mapped[str] = mapped_column(String(64), default="")  # the Basic Text SR
    orthanc_instance_id: Mapped[str] = mapped_column(String(64), default="")
    pacs_status: Mapped[str] = mapped_column(String(255), default="")  # "", stored, error: ...
    result_status: Mapped[str] = mapped_column(String(255), default="")  # the EHR message
    # Optimistic locking: two readers saving or signing the same version at once cannot
    # both win; the later one gets StaleDataError instead of overwriting the signature.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    changed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")  # page:alice
    __mapper_args__ = {"version_id_col": lock_version}  # noqa: RUF012  (SQLAlchemy reads it once)

    report: Mapped[Report] = relationship(back_populates="versions")
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    preliminary_by: Mapped[User | None] = relationship(foreign_keys=[preliminary_by_id])
    signed_by: Mapped[User | None] = relationship(foreign_keys=[signed_by_id])


class CriticalResult(Base):
    """A critical finding communicated: who was told, how, when, and who told them."""

    __tablename__ = "critical_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id"), index=True)
    communicated_to: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(32))
    communicated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    report: Mapped[Report] = relationship(back_populates="critical_results")
    recorded_by: Mapped[User | None] = relationship()


__all__ = [
    "ADDENDUM",
    "COMMUNICATION_METHODS",
    "DRAFT",
    "FINAL",
    "ORIGINAL",
    "PRELIMINARY",
    "REPORT_STATUSES",
    "SECTIONS",
    "CriticalResult",
    "Report",
    "ReportTemplate",
    "ReportVersion",
]
