"""The `orthanc-ris hl7-listener` process: the MLLP listener and the outbox sender."""

from __future__ import annotations

import logging
import signal
import threading
import time

from ris_app import clock
from ris_app.audit.trail import Who, record_read
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker
from ris_app.hl7.mllp import MLLPServer, serve_in_thread, server_context
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.sender import OutboxSender
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.store import InboundProcessor
from ris_app.model.audit import REFUSED

log = logging.getLogger("ris_app.hl7.listener")
REFUSAL_EVERY = 60.0  # seconds: at most one audit event per refused address in this time


class Hl7Service:
    """Listener + outbox sender over one database; start() returns once accepting."""

    def __init__(self, config: Config, settings: Hl7Settings, *, outbox_poll: float = 0.5) -> None:
        self.engine = make_engine(config.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.settings = settings
        set_settings(settings)
        clock.set_site_zone(clock.site_zone(config))
        self.processor = InboundProcessor(self.sessions, settings, config)
        self.server = MLLPServer(
            (settings.host, settings.port),
            lambda raw, peer: self.processor.receive(raw, peer).ack,
            lambda partial, reason, peer: self.processor.receive_broken(partial, reason, peer).ack,
            max_bytes=settings.max_message_bytes,
            read_timeout=settings.read_timeout,
            idle_timeout=settings.idle_timeout,
            max_connections=settings.max_connections,
            allow=settings.allow,
            ssl_context=server_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            if settings.tls_cert
            else None,
            on_refused=self._record_refusal,
        )
        self.sender = OutboxSender(self.sessions, settings, poll=outbox_poll)
        self._refusals_noted: dict[str, float] = {}
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def _record_refusal(self, address: str) -> None:
        """An audit event for a peer the allowlist refused: one per address per minute, so a
        flood of connections cannot flood the trail."""
        now = time.monotonic()
        if now - self._refusals_noted.get(address, -REFUSAL_EVERY) < REFUSAL_EVERY:
            return
        self._refusals_noted[address] = now
        record_read(
            self.sessions,
            "hl7.connect",
            Who(address, "hl7", address),
            outcome=REFUSED,
            detail="not in ORTHANC_RIS_HL7_ALLOW",
        )

    def start(self) -> Hl7Service:
        self.thread = serve_in_thread(self.server)
        self.sender.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sender.stop()
        self.sender.join(5)
        self.engine.dispose()


def run(config: Config) -> int:
    """Serve until SIGTERM/SIGINT."""
    settings = Hl7Settings.from_env()
    service = Hl7Service(config, settings).start()
    log.info(
        "HL7 MLLP listener on %s:%d (%s%s); %d outbound destination(s)",
        settings.host,
        service.port,
        "TLS" + (", client certificates required" if settings.tls_client_ca else "")
        if settings.tls_cert
        else "plain TCP",
        f", {len(settings.allow)} allowed network(s)" if settings.allow else ", any peer",
        len(settings.all_destinations),
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    log.info("HL7 listener stopping")
    service.stop()
    return 0
