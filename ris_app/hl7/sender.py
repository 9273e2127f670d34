"""The outbox sender: the listener's thread that delivers `hl7_outbox` rows to their
destinations and re-sends until the peer's ACK echoes our control ID in MSA-2.

Order: messages to one destination about one order (the same `reference`, its accession
number) are delivered in the order they were queued. A message not yet delivered, whether
waiting for its next try or refused with AE and waiting for an operator, holds back the
later ones with the same destination and reference ("held behind message N"); other orders
flow meanwhile. A destination that cannot be reached is left alone for the rest of a pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from ris_app.audit import subject
from ris_app.audit.trail import Who, record
from ris_app.billing.charges import on_answer
from ris_app.clock import utcnow
from ris_app.hl7.ack import read_ack
from ris_app.hl7.mllp import MLLPClient, client_context
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.model import Hl7Outbox, Order, OutboxStatus, Patient
from ris_app.model.audit import FAILED, SUCCESS

log = logging.getLogger(__name__)

# Messages whose AR is an answer about their content (the billing system refused the
# charge): final like AE, not re-sent unchanged; the billing clerk corrects the charge.
REJECT_IS_FINAL = frozenset({"DFT^P03"})
# At most this many messages a pass; a pass repeats its query while it delivers, so a burst
# for one order goes out in one pass, one message of each order per round.
PASS_LIMIT = 500


def _earlier_unsent():
    """Join condition: `earlier` is an undelivered message queued before Hl7Outbox to the
    same destination about the same reference."""
    earlier = aliased(Hl7Outbox)
    return earlier, and_(
        earlier.destination == Hl7Outbox.destination,
        earlier.reference == Hl7Outbox.reference,
        earlier.id < Hl7Outbox.id,
        earlier.status.in_(OutboxStatus.UNSENT),
    )


def due_heads(now: datetime, limit: int = PASS_LIMIT) -> Select[tuple[Hl7Outbox]]:
    """The messages to send now, in one query: pending, due, and first in line for their
    destination and reference (nothing undelivered queued before them)."""
    _, condition = _earlier_unsent()
    return (
        select(Hl7Outbox)
        .where(
            Hl7Outbox.status == OutboxStatus.PENDING,
            Hl7Outbox.next_attempt_at <= now,
            ~exists().where(condition).correlate(Hl7Outbox),
        )
        .order_by(Hl7Outbox.id)
        .limit(limit)
    )


def held_behind(session: Session, ids: Iterable[int]) -> dict[int, int]:
    """For each of these pending messages that is held back, the first undelivered message
    it waits for (same destination and reference), in one query."""
    ids = list(ids)
    if not ids:
        return {}
    earlier, condition = _earlier_unsent()
    rows = session.execute(
        select(Hl7Outbox.id, func.min(earlier.id))
        .join(earlier, condition)
        .where(Hl7Outbox.id.in_(ids), Hl7Outbox.status == OutboxStatus.PENDING)
        .group_by(Hl7Outbox.id)
    )
    return {row_id: first for row_id, first in rows}


class OutboxSender(threading.Thread):
    """Sends due outbox rows, oldest first and in order per destination and reference: a
    row not yet delivered holds back the later rows with its destination and reference."""

    def __init__(self, sessions: sessionmaker[Session], settings: Hl7Settings, poll: float = 0.5) -> None:
        super().__init__(name="hl7-outbox", daemon=True)
        self.sessions = sessions
        self.settings = settings
        self.poll = poll
        self.stopping = threading.Event()
        self.clients: dict[str, MLLPClient] = {}
        self.tls = (
            client_context(settings.tls_peer_ca, settings.tls_cert, settings.tls_key)
            if any(d.tls for d in settings.all_destinations)
            else None
        )

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.send_due()
            except Exception:  # keep the worker alive; the rows stay pending
                log.exception("HL7 outbox pass failed")
            self.stopping.wait(self.poll)
        for client in self.clients.values():
            client.close()

    def stop(self) -> None:
        self.stopping.set()

    def _drop(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            client.close()

    def send_due(self) -> int:
        """One pass over the outbox. Returns how many messages were acknowledged."""
        destinations = {d.name: d for d in self.settings.all_destinations}
        sent = 0
        unreachable: set[str] = set()  # no connection, no answer: leave it for this pass
        with self.sessions() as s:
            while sent < PASS_LIMIT:
                delivered = 0
                rows = s.scalars(due_heads(utcnow(), PASS_LIMIT - sent)).all()
                # End the read: each row's outcome is then written in a transaction of its
                # own, which waits for other writers instead of failing on a stale snapshot.
                s.commit()
                for row in rows:
                    if row.destination in unreachable:
                        continue
                    ok = self._send(row, destinations.get(row.destination))
                    s.commit()
                    if ok:
                        delivered += 1
                    elif row.status == OutboxStatus.PENDING:
                        unreachable.add(row.destination)
                if not delivered:
                    break
                sent += delivered
        return sent

    def _retry_later(self, row: Hl7Outbox, error: str) -> bool:
        row.attempts += 1
        delay = min(self.settings.retry_max_seconds, self.settings.retry_seconds * 2 ** (row.attempts - 1))
        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
        row.last_error = error[:1024]
        log.warning(
            "HL7 outbox %d to %s: %s (attempt %d, next in %.0f s)", row.id, row.destination, error, row.attempts, delay
        )
        return False

    def _send(self, row: Hl7Outbox, dest: Destination | None) -> bool:
        if dest is None:
            return self._retry_later(row, "destination is not configured")
        try:
            client = self.clients.get(dest.name)
            if client is None:
                client = self.clients[dest.name] = MLLPClient(
                    dest.host, dest.port, self.settings.send_timeout, ssl_context=self.tls if dest.tls else None
                )
            reply = client.send(row.payload.encode("utf-8"))
        except (OSError, ConnectionError) as exc:
            self._drop(dest.name)
            return self._retry_later(row, f"cannot deliver: {exc.__class__.__name__}: {exc}")
        code, acked_id, text = read_ack(reply)
        if acked_id != row.control_id:
            self._drop(dest.name)  # the stream is out of step with us: start afresh
            return self._retry_later(row, f"ACK MSA-2 {acked_id!r} does not match control ID {row.control_id}")
        row.ack_code = code
        if code in ("AA", "CA"):
            row.attempts += 1
            row.status, row.sent_at, row.last_error = OutboxStatus.SENT, utcnow(), ""
            _audit(row, dest, SUCCESS)
            _answered(row, code, text)
            return True
        if code in ("AE", "CE") or (code in ("AR", "CR") and row.message_type in REJECT_IS_FINAL):
            row.attempts += 1
            row.status, row.last_error = OutboxStatus.ERROR, f"peer answered {code}: {text}"[:1024]
            _audit(row, dest, FAILED, f"peer answered {code}")
            _answered(row, code, text)
            log.warning("HL7 outbox %d: %s answered %s; not retried", row.id, row.destination, code)
            return False
        return self._retry_later(row, f"peer answered {code or 'no MSA'}: {text}")


def _answered(row: Hl7Outbox, code: str, text: str) -> None:
    """Tell what the message reported that the peer answered (a charge: acknowledged or
    rejected), in the transaction that records the answer."""
    if row.message_type == "DFT^P03":
        s = Session.object_session(row)
        assert s is not None
        on_answer(s, row.control_id, code, text)


def _audit(row: Hl7Outbox, dest: Destination, outcome: str, detail: str = "") -> None:
    """The hl7.send event, in the transaction that records the peer's answer. The row's
    reference is the order's accession number, or the patient's MRN for a patient message."""
    s = Session.object_session(row)
    assert s is not None
    found = subject.by_id(s, Order, row.reference, "accession_number") if row.reference else subject.NOBODY
    if found == subject.NOBODY and row.reference:
        found = subject.by_id(s, Patient, row.reference, "mrn")
    record(
        s,
        "hl7.send",
        Who(dest.name, "hl7", dest.host),
        outcome=outcome,
        resource=f"{row.message_type} {row.control_id}",
        mrn=found[0],
        accession=found[1],
        detail=detail,
    )
