"""The audit trail: one row per access to or change of patient data, append-only and
hash-chained (ris_app/audit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime

# Outcomes, as IHE ATNA's EventOutcomeIndicator groups them (0, 4, 8).
SUCCESS, REFUSED, FAILED = "success", "refused", "failed"
OUTCOMES = (SUCCESS, REFUSED, FAILED)
# Who acted: a page user, an API token, a DICOM AE, an HL7 peer, the RIS itself, an
# outside colleague holding a share link.
ACTOR_KINDS = ("user", "token", "ae", "hl7", "system", "share")


class AuditEvent(Base):
    """One audited event. Written in the transaction of the change it records (reads: in
    one of their own); never updated or deleted by the application (database triggers
    refuse it). `seq`, `prev_hash` and `hash` are set once, by the sealer, which chains
    the rows in the order it finds them committed: `orthanc-ris audit verify` recomputes
    the chain."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), default="")  # user name, token name, AE title
    actor_kind: Mapped[str] = mapped_column(String(16), default="system")
    address: Mapped[str] = mapped_column(String(64), default="")  # the caller's IP address
    action: Mapped[str] = mapped_column(String(48), index=True)  # e.g. patient.read, order.create
    resource: Mapped[str] = mapped_column(String(255), default="")  # what: a route, a study UID
    patient_mrn: Mapped[str] = mapped_column(String(64), default="", index=True)
    accession: Mapped[str] = mapped_column(String(16), default="")
    outcome: Mapped[str] = mapped_column(String(16), default=SUCCESS)
    detail: Mapped[str] = mapped_column(String(512), default="")
    # The chain, set once by the sealer (ris_app.audit.chain).
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")


Index("ix_audit_event_actor_at", AuditEvent.actor, AuditEvent.at)
Index("ix_audit_event_unsealed", AuditEvent.seq, AuditEvent.id)
