"""Tables of the HL7 interface: every inbound message as received, and the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime


class InboundStatus:
    RECEIVED = "received"  # stored, not (yet) processed
    PROCESSED = "processed"  # applied, answered AA
    DUPLICATE = "duplicate"  # same sending facility + control ID as a processed one: AA, not applied
    ERROR = "error"  # content error, answered AE: fix the data and reprocess
    REJECTED = "rejected"  # answered AR: unsupported type or broken structure
    # Not applied: the only states an operator may reprocess (after fixing the data).
    FAILED = frozenset({ERROR, REJECTED})


class Hl7Message(Base):
    """An inbound HL7 message, stored raw before it is processed."""

    __tablename__ = "hl7_message"
    __table_args__ = (Index("ix_hl7_message_sender_control_id", "sending_facility", "control_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    peer: Mapped[str] = mapped_column(String(64), default="")
    sending_application: Mapped[str] = mapped_column(String(180), default="")
    sending_facility: Mapped[str] = mapped_column(String(180), default="")
    control_id: Mapped[str] = mapped_column(String(199), default="")
    message_type: Mapped[str] = mapped_column(String(20), default="")  # ORM^O01
    version: Mapped[str] = mapped_column(String(20), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=InboundStatus.RECEIVED, index=True)
    ack_code: Mapped[str] = mapped_column(String(2), default="")
    error: Mapped[str] = mapped_column(String(1024), default="")
    error_location: Mapped[str] = mapped_column(String(32), default="")
    summary: Mapped[str] = mapped_column(String(255), default="")
    duplicate_of: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # "facility|control ID" once applied: unique, so two connections (or listeners) applying
    # the same message at once cannot both commit; the loser retries and finds a duplicate.
    applied_key: Mapped[str | None] = mapped_column(String(384), unique=True)


class OutboxStatus:
    PENDING = "pending"  # waiting to be sent or re-sent
    SENT = "sent"  # acknowledged (AA/CA) with our control ID in MSA-2
    ERROR = "error"  # the peer answered AE: not retried until an operator asks
    DISCARDED = "discarded"  # given up by an operator: never sent, holds nothing back
    # Not delivered yet: holds back the later messages with the same destination and reference.
    UNSENT = frozenset({PENDING, ERROR})


class Hl7Outbox(Base):
    """An outbound HL7 message: written in the same transaction as the change it reports,
    sent by the listener's outbox worker until the peer acknowledges it, in order per
    destination and reference."""

    __tablename__ = "hl7_outbox"
    __table_args__ = (Index("ix_hl7_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    destination: Mapped[str] = mapped_column(String(64))
    message_type: Mapped[str] = mapped_column(String(20))
    control_id: Mapped[str] = mapped_column(String(20), unique=True)
    # The ordering key, filled when queued: the accession number of an order's messages (a
    # patient-level message would carry the patient's). Messages to one destination with one
    # reference are delivered in id order; see ris_app.hl7.sender.
    reference: Mapped[str] = mapped_column(String(64), default="", index=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(String(1024), default="")
    ack_code: Mapped[str] = mapped_column(String(2), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
