"""The ATNA export: every sealed audit event, in chain order, to the audit record repository
named by ORTHANC_RIS_AUDIT_SYSLOG, at least once.

The outbox is the trail itself plus one cursor: the `seq` of the last event delivered,
kept in the sync_state row "atna" and moved forward only after delivery. Events are taken
by `seq`, not by id: the sealer numbers them in the order they were committed, so an
event committed late with a lower id is never skipped. A crash between sending and
moving the cursor sends a few events twice, never none.

It runs in a thread of the sync worker, beside the sealer: a repository that is down or
slow costs that thread time-outs and back-off (doubling up to a minute), never the
worker's Orthanc tasks.
"""

from __future__ import annotations

import logging
import socket
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit.atna import AuditSource, to_xml
from ris_app.audit.syslog import Sender, sender_for, syslog_message
from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.model.audit import AuditEvent
from ris_app.tracking import state as sync_state

log = logging.getLogger(__name__)
CURSOR = "atna"  # sync_state row: {"seq": last delivered, "error": last failure or ""}
BATCH = 200


def cursor(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions, write=False) as s:
        return int(sync_state.get(s, CURSOR)[0].get("seq", 0))


def _save(sessions: sessionmaker[Session], seq: int, error: str = "") -> None:
    with transaction(sessions) as s:
        sync_state.put(s, CURSOR, {"seq": seq, "error": error, "at": utcnow().isoformat()})


def export_pending(sessions: sessionmaker[Session], sender: Sender, source: AuditSource, limit: int = BATCH) -> int:
    """Send the next sealed events after the cursor, in order; returns how many went.
    On a failure the cursor keeps what was delivered and the error is raised."""
    last = cursor(sessions)
    with transaction(sessions, write=False) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(limit)).all()
        messages = [
            (e.seq, syslog_message(to_xml(e, source), at=e.at, hostname=source.hostname, app_name=source.app_name))
            for e in events
        ]
    delivered = last
    try:
        for seq, message in messages:
            sender.send(message)
            delivered = seq
    except OSError as exc:
        _save(sessions, delivered, str(exc)[:200])
        raise
    if delivered != last:
        _save(sessions, delivered)
    return len(messages)


class Exporter:
    """The export loop: drain what is pending, wait `poll` seconds, again; after a failure
    wait `backoff` seconds, doubling up to `backoff_max`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: Sender,
        source: AuditSource,
        *,
        poll: float = 1.0,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.sessions, self.sender, self.source = sessions, sender, source
        self.poll, self.backoff, self.backoff_max = poll, backoff, backoff_max

    def run(self, stop: threading.Event) -> None:
        delay = 0.0
        while not stop.wait(delay or self.poll):
            try:
                while export_pending(self.sessions, self.sender, self.source) == BATCH and not stop.is_set():
                    pass
                delay = 0.0
            except OSError as exc:
                delay = min(max(delay * 2, self.backoff), self.backoff_max)
                log.warning("audit export failed (%s); next try in %.1f s", exc, delay)
            except Exception:  # the database: keep the thread alive, the supervisor shows the log
                delay = min(max(delay * 2, self.backoff), self.backoff_max)
                log.exception("audit export error")
        self.sender.close()

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="audit-export", daemon=True)
        thread.start()
        return thread


def source_for(cfg: Config) -> AuditSource:
    host = socket.gethostname()
    return AuditSource(source_id=cfg.audit_source_id or host, hostname=host, site_id=cfg.institution)


def start_export(cfg: Config, sessions: sessionmaker[Session], stop: threading.Event) -> threading.Thread | None:
    """Start the export thread when ORTHANC_RIS_AUDIT_SYSLOG is set (else: export off)."""
    if not cfg.audit_syslog:
        return None
    sender = sender_for(cfg.audit_syslog, ca=cfg.audit_syslog_ca, cert=cfg.audit_syslog_cert, key=cfg.audit_syslog_key)
    log.info("audit events go to %s", cfg.audit_syslog)
    return Exporter(sessions, sender, source_for(cfg)).start(stop)
