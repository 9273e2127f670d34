"""Billing: the catalog's billable rows and their prices, and the charges captured when an
exam is performed (ris_app/billing). Money is kept in whole cents (integers): exact on
SQLite and PostgreSQL alike, with no float rounding and no Decimal dialect warnings."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.model.scheduling import ProcedureCode, ScheduledProcedureStep

# What a catalog row bills: the procedure itself, its professional or technical component,
# or an add-on. ris_app/billing/capture.py reads which kinds a partial (discontinued) bills.
ITEM_KINDS = ("procedure", "professional", "technical", "contrast", "supplies")
# A charge line: a captured or replacing charge, or the credit that cancels one.
CHARGE = "charge"
CREDIT = "credit"


class BillingItem(Base):
    """A billable row of the procedure catalog. `performed_code` empty: billed whenever the
    procedure is performed; set: billed only when the modality reports that code (MPPS
    Performed Protocol or Procedure Code), and for kind "procedure" it then replaces the
    procedure's own row (the performed procedure is billed, not the ordered one)."""

    __tablename__ = "billing_item"
    __table_args__ = (
        UniqueConstraint("procedure_code_id", "kind", "code", "performed_code", name="uq_billing_item_row"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    procedure_code_id: Mapped[int] = mapped_column(ForeignKey("procedure_code.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="procedure")
    code: Mapped[str] = mapped_column(String(16))  # the billed code (CPT, HCPCS, a national schedule)
    code_system: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(128), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    performed_code: Mapped[str] = mapped_column(String(16), default="", server_default="")
    active: Mapped[bool] = mapped_column(default=True)

    procedure_code: Mapped[ProcedureCode] = relationship()
    prices: Mapped[list[BillingPrice]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="BillingPrice.valid_from"
    )


class BillingPrice(Base):
    """The unit price of a catalog row over site days [valid_from, valid_to] (valid_to
    empty: until further notice). The price of the day the exam was performed applies."""

    __tablename__ = "billing_price"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("billing_item.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(64), default="")

    item: Mapped[BillingItem] = relationship(back_populates="prices")


class Charge(Base):
    """One charge line (FT1) of a performed exam. Captured lines carry `capture_key`
    (step, code, kind): unique, so a repeated MPPS COMPLETED or a retried transaction
    charges once. A correction never edits a line: it adds a credit (negative, `corrects_id`
    the original) and a new charge (`corrects_id` too), both with the reason."""

    __tablename__ = "charge"

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("scheduled_procedure_step.id"), index=True)
    accession_number: Mapped[str] = mapped_column(String(16), index=True)
    capture_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    line: Mapped[str] = mapped_column(String(8), default=CHARGE)  # charge | credit
    item_id: Mapped[int | None] = mapped_column(ForeignKey("billing_item.id"))
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(16))
    code_system: Mapped[str] = mapped_column(String(16))
    modifier: Mapped[str] = mapped_column(String(8), default="")  # 53: discontinued procedure
    description: Mapped[str] = mapped_column(String(128), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(Integer)
    performed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    service_day: Mapped[date] = mapped_column(Date, index=True)  # the site day of performed_at
    performing_station: Mapped[str] = mapped_column(String(16), default="")
    performing_physician: Mapped[str] = mapped_column(String(128), default="")
    ordering_physician: Mapped[str] = mapped_column(String(128), default="")
    diagnosis_codes: Mapped[str] = mapped_column(String(255), default="")  # ICD codes, "~"-separated
    insurance: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    status_reason: Mapped[str] = mapped_column(String(512), default="")
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("charge.id"))
    control_id: Mapped[str] = mapped_column(String(20), default="", index=True)  # the DFT^P03 in hl7_outbox
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(64), default="")  # db.set_actor stamps it
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    step: Mapped[ScheduledProcedureStep] = relationship()
    corrects: Mapped[Charge | None] = relationship(remote_side=[id])


Index("ix_charge_day_status", Charge.service_day, Charge.status)
