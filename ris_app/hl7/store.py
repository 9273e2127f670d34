"""Store, then process: every inbound message is written raw (its own commit) before it is
parsed; it is applied in one transaction that also marks it processed, so a crash leaves it
'received' (never half-applied) and a repeat with the same sending facility and control ID
is answered AA without being applied twice. One lock serialises processing in the listener:
messages apply in arrival order and two copies of one message cannot race.

Reprocessing (an operator, after fixing the data) takes the same path as a live message,
duplicate check and handlers included, and only for a message that failed: the move out of
'error'/'rejected' is a conditional UPDATE in the transaction that applies the message, so
two operators (or two processes: the web app and the listener each hold a processor) cannot
apply one message twice; the second is refused with Conflict.

Across listeners and the RIS's other writers, each message is applied in a writer
transaction (db.begin_write) and marked with its unique applied_key, so two copies applied
at once cannot both commit: the loser is tried again, finds the first and is answered as a
duplicate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit import subject
from ris_app.audit.trail import Who, record
from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import begin_write, retrying, set_actor
from ris_app.errors import Conflict, NotFound
from ris_app.hl7.ack import build_ack
from ris_app.hl7.inbound import Context, handle
from ris_app.hl7.parse import (
    APPLICATION_INTERNAL_ERROR,
    SEGMENT_SEQUENCE_ERROR,
    Envelope,
    Hl7Error,
    Message,
    parse,
    read_envelope,
    reject,
)
from ris_app.hl7.settings import Hl7Settings
from ris_app.model import Hl7Message, InboundStatus
from ris_app.model.audit import FAILED, REFUSED, SUCCESS

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    message_id: int
    ack_code: str
    ack: bytes
    status: str
    text: str


# Attempts at applying one message when other writers got in first (db.is_retryable).
WRITE_ATTEMPTS = 5


def applied_key(env: Envelope) -> str | None:
    """What makes two messages the same message (MSH-4 and MSH-10); None without a
    control ID (then nothing can be recognised as a duplicate)."""
    if not env.control_id:
        return None
    return f"{env.sending_facility[:180]}|{env.control_id[:199]}"


class InboundProcessor:
    """Turns raw inbound bytes into a stored message, applied changes and an ACK."""

    def __init__(self, sessions: sessionmaker[Session], settings: Hl7Settings, config: Config | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.accession_prefix = config.accession_prefix if config else "RIS"
        self.uid_root = config.uid_root if config else ""
        self.lock = threading.Lock()
        subject.watch(sessions)  # the audit event names the patient and order a message touched

    # -------------------------------------------------------------- entry points
    def receive(self, raw: bytes, peer: str = "") -> Outcome:
        """A complete frame from a peer: store it, process it, return the ACK."""
        env = read_envelope(raw)
        with self.lock:
            message_id = self._store(raw, env, peer)
            return self._process(message_id, raw, env)

    def receive_broken(self, partial: bytes, reason: str, peer: str = "") -> Outcome:
        """A frame that could not be completed (oversized, truncated): stored and refused."""
        env = read_envelope(partial)
        with self.lock:
            message_id = self._store(partial, env, peer)
            error = reject(SEGMENT_SEQUENCE_ERROR, reason, "")
            return self._finish_error(message_id, env, None, error)

    def reprocess(self, message_id: int) -> Outcome:
        """Apply a failed message again (after an operator fixed the data), exactly as a live
        message is applied. Raises NotFound, or Conflict when the message did not fail (it
        was applied, is a duplicate, or is being processed now)."""
        with self.lock:
            with self.sessions() as s:
                row = s.get(Hl7Message, message_id)
                if row is None:
                    raise NotFound("no HL7 message with this id", field="id")
                _check_failed(row.status)
                raw = row.raw
            return self._process(message_id, raw, read_envelope(raw), claim=True)

    # -------------------------------------------------------------- steps
    def _store(self, raw: bytes, env: Envelope, peer: str) -> int:
        with self.sessions() as s:
            row = Hl7Message(
                raw=raw,
                peer=peer[:64],
                sending_application=env.sending_application[:180],
                sending_facility=env.sending_facility[:180],
                control_id=env.control_id[:199],
                message_type=env.message_type[:20],
                version=env.version[:20],
                status=InboundStatus.RECEIVED,
            )
            s.add(row)
            s.commit()
            return row.id

    def _ack(
        self,
        source: Message | Envelope,
        code: str,
        text: str,
        error: Hl7Error | None,
        codec: str,
        warnings: Sequence[Hl7Error] = (),
    ) -> bytes:
        ack = build_ack(
            source,
            code,
            text,
            error,
            warnings=warnings,
            application=self.settings.application,
            facility=self.settings.facility,
        )
        try:
            return ack.encode(codec or "utf-8")
        except (UnicodeEncodeError, LookupError):
            return ack.encode("utf-8", errors="replace")

    def _claim(self, s: Session, message_id: int) -> None:
        """Move a failed message back to 'received' as the first write of the transaction
        that applies it: the row lock (PostgreSQL) or the write lock (SQLite) it takes makes
        a second reprocess wait, then find the message no longer failed."""
        # The transaction began as a writer (SQLite: BEGIN IMMEDIATE); on PostgreSQL the
        # conditional UPDATE takes the row lock.
        claimed = s.execute(
            update(Hl7Message)
            .where(Hl7Message.id == message_id, Hl7Message.status.in_(InboundStatus.FAILED))
            .values(status=InboundStatus.RECEIVED)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            s.rollback()
            _check_failed(s.scalar(select(Hl7Message.status).where(Hl7Message.id == message_id)) or "")
            raise Conflict("this message changed while it was being reprocessed; try again", field="id")

    def _process(self, message_id: int, raw: bytes, env: Envelope, *, claim: bool = False) -> Outcome:
        try:
            msg = parse(raw, self.settings.default_charset)
        except Hl7Error as exc:
            return self._finish_error(message_id, env, None, exc)
        try:
            return retrying(lambda: self._apply(message_id, env, msg, claim=claim), attempts=WRITE_ATTEMPTS, what="HL7")
        except Conflict:
            raise  # a reprocess of a message that is not failed (any more)
        except Exception as exc:  # a bug, or the database still refusing after the retries: AE
            log.exception("HL7 message %d failed", message_id)
            error = Hl7Error("AE", APPLICATION_INTERNAL_ERROR, f"internal error: {exc.__class__.__name__}")
            return self._finish_error(message_id, env, msg, error)

    def _apply(self, message_id: int, env: Envelope, msg: Message, *, claim: bool) -> Outcome:
        """One writer transaction: the claim, the duplicate check, the changes and
        'processed'. Raises what db.is_retryable names when another writer got in first."""
        with self.sessions() as s:
            set_actor(s, f"hl7:{env.sending_application[:56]}" if env.sending_application else "hl7")
            begin_write(s)
            if claim:
                self._claim(s, message_id)
            earlier = s.scalar(
                select(Hl7Message.id)
                .where(
                    Hl7Message.sending_facility == env.sending_facility[:180],
                    Hl7Message.control_id == env.control_id[:199],
                    Hl7Message.status == InboundStatus.PROCESSED,
                    Hl7Message.id != message_id,
                )
                .order_by(Hl7Message.id)
                .limit(1)
            )
            if earlier is not None:
                row = s.get(Hl7Message, message_id)
                assert row is not None
                row.status, row.ack_code, row.duplicate_of = InboundStatus.DUPLICATE, "AA", earlier
                row.summary = f"duplicate of message {earlier}; not applied again"
                row.error, row.error_location = "", ""
                row.processed_at = utcnow()
                _audit(s, row, env, detail=row.summary)
                s.commit()
                log.info("HL7 %s %s: duplicate of message %d", msg.message_type, message_id, earlier)
                return Outcome(
                    message_id, "AA", self._ack(msg, "AA", row.summary, None, msg.charset), row.status, row.summary
                )
            ctx = Context(s, self.settings, self.accession_prefix, self.uid_root)
            try:
                summary = handle(ctx, msg)
                row = s.get(Hl7Message, message_id)
                assert row is not None
                row.status, row.ack_code, row.summary = InboundStatus.PROCESSED, "AA", summary[:255]
                row.error, row.error_location = "", ""
                row.processed_at = utcnow()
                row.attempts += 1
                # Unique: the same message applied by another connection at once loses here.
                row.applied_key = applied_key(env)
                _audit(s, row, env, mrn_accession=subject.touched(s))
                s.commit()  # the changes, 'processed' and the audit event in one transaction
            except Hl7Error as exc:
                s.rollback()
                return self._finish_error(message_id, env, msg, exc)
            except Exception:  # a bug or the database: retried or answered AE by _process
                s.rollback()
                raise
        log.info(
            "HL7 %s %d applied: %s",
            msg.message_type,
            message_id,
            summary if log.isEnabledFor(logging.DEBUG) else summary.split(" ")[0],
        )
        ack = self._ack(msg, "AA", summary, None, msg.charset, ctx.warnings)
        return Outcome(message_id, "AA", ack, InboundStatus.PROCESSED, summary)

    def _finish_error(self, message_id: int, env: Envelope, msg: Message | None, error: Hl7Error) -> Outcome:
        status = InboundStatus.REJECTED if error.ack_code == "AR" else InboundStatus.ERROR
        with self.sessions() as s:
            begin_write(s)
            row = s.get(Hl7Message, message_id)
            if row is not None:
                row.status, row.ack_code = status, error.ack_code
                row.error, row.error_location = error.text[:1024], error.location[:32]
                row.processed_at = utcnow()
                row.attempts += 1
                # The codes only: the error's text may quote the message's (patient) data.
                detail = f"{error.ack_code} {error.error_code} at {error.location or '-'}"
                _audit(s, row, env, outcome=REFUSED if error.ack_code == "AR" else FAILED, detail=detail)
                s.commit()
        log.warning(
            "HL7 message %d refused (%s %d at %s): %s",
            message_id,
            error.ack_code,
            error.error_code,
            error.location or "-",
            error.text,
        )
        codec = msg.charset if msg is not None else "utf-8"
        return Outcome(
            message_id,
            error.ack_code,
            self._ack(msg or env, error.ack_code, error.text, error, codec),
            status,
            error.text,
        )


def _audit(
    s: Session,
    row: Hl7Message,
    env: Envelope,
    *,
    mrn_accession: subject.Subject = subject.NOBODY,
    outcome: str = SUCCESS,
    detail: str = "",
) -> None:
    """The message's hl7.receive event, in the transaction that settles the message."""
    record(
        s,
        "hl7.receive",
        Who(env.sending_application or "(unnamed)", "hl7", row.peer.rpartition(":")[0] or row.peer),
        outcome=outcome,
        resource=f"{env.message_type or '?'} {env.control_id}"[:255],
        mrn=mrn_accession[0],
        accession=mrn_accession[1],
        detail=detail,
    )


def _check_failed(status: str) -> None:
    """Only a message that failed may be reprocessed: anything else is a Conflict."""
    if status in InboundStatus.FAILED:
        return
    if status == InboundStatus.RECEIVED:
        raise Conflict("this message is being processed now", field="id", code="in_progress")
    raise Conflict(
        f"only a message that failed (error or rejected) can be reprocessed; this one is {status or 'gone'}",
        field="id",
        code="not_failed",
    )
