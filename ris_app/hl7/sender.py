"""The outbox sender: the listener's thread that delivers `hl7_outbox` rows to their
destinations and re-sends until the peer's ACK echoes our control ID in MSA-2."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.clock import utcnow
from ris_app.hl7.ack import read_ack
from ris_app.hl7.mllp import MLLPClient, client_context
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.model import Hl7Outbox, OutboxStatus

log = logging.getLogger(__name__)


class OutboxSender(threading.Thread):
    """Sends due outbox rows, oldest first and in order per destination: a row that fails
    holds back the later rows for its destination until it is acknowledged."""

    def __init__(self, sessions: sessionmaker[Session], settings: Hl7Settings, poll: float = 0.5) -> None:
        super().__init__(name="hl7-outbox", daemon=True)
        self.sessions = sessions
        self.settings = settings
        self.poll = poll
        self.stopping = threading.Event()
        self.clients: dict[str, MLLPClient] = {}
        self.tls = (
            client_context(settings.tls_peer_ca, settings.tls_cert, settings.tls_key)
            if any(d.tls for d in settings.destinations)
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
        destinations = {d.name: d for d in self.settings.destinations}
        sent = 0
        blocked: set[str] = set()
        now = utcnow()
        with self.sessions() as s:
            rows = s.scalars(
                select(Hl7Outbox).where(Hl7Outbox.status == OutboxStatus.PENDING).order_by(Hl7Outbox.id).limit(500)
            ).all()
            for row in rows:
                if row.destination in blocked:
                    continue
                if row.next_attempt_at > now:
                    blocked.add(row.destination)
                    continue
                ok = self._send(row, destinations.get(row.destination))
                s.commit()
                if ok:
                    sent += 1
                elif row.status == OutboxStatus.PENDING:
                    blocked.add(row.destination)
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
            return True
        if code in ("AE", "CE"):
            row.attempts += 1
            row.status, row.last_error = OutboxStatus.ERROR, f"peer answered {code}: {text}"[:1024]
            log.warning("HL7 outbox %d: %s answered %s; not retried", row.id, row.destination, code)
            return False
        return self._retry_later(row, f"peer answered {code or 'no MSA'}: {text}")
