"""The ATNA export over real sockets: audit events recorded in the database, sealed, and
received by syslog listeners the test starts (UDP, and TLS with a certificate made for
the run), each a well-formed RFC 5424 message around a DICOM PS3.15 AuditMessage; a
repository that is down at first gets every event, in order, once it is up."""

from __future__ import annotations

import dataclasses
import ssl
import threading
import time

import pytest

from ris_app.audit import atna
from ris_app.audit.chain import seal
from ris_app.audit.export import CURSOR, Exporter, cursor, export_pending, start_export
from ris_app.audit.syslog import MSGID, PRI, TlsSender, UdpSender, sender_for
from ris_app.audit.trail import SYSTEM, Who, record
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.hl7.mllp import client_context
from ris_app.model.audit import FAILED, REFUSED
from ris_app.tracking import state as sync_state
from tests.audit.syslog_server import TlsSyslog, UdpSyslog, parse, self_signed
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.db
SOURCE = atna.AuditSource(source_id="RIS-TEST", hostname="ris.example.org", site_id="Radiology")
ALICE = Who("alice", "user", "10.0.0.7")
STUDY_UID = "1.2.826.0.1.3680043.10.1.42"
# The action names the trail uses (docs/security.md): each has a DICOM event.
ACTIONS = (
    "patient.read", "patient.update", "order.create", "order.read", "step.move", "report.read", "report.sign",
    "study.view", "worklist.query", "hl7.receive", "hl7.send", "mpps.create", "mpps.set", "images.receive",
    "login", "login.failed", "logout", "access.refused", "export.csv", "share.create", "share.open", "share.revoke",
)  # fmt: skip


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("syslog-pki"))


@pytest.fixture
def udp():
    server = UdpSyslog()
    yield server
    server.stop()


@pytest.fixture
def tls(cert):
    server = TlsSyslog(*cert)
    yield server
    server.stop()


def _three_events(sessions) -> None:
    with transaction(sessions) as s:
        record(s, "patient.read", ALICE, mrn="MRN-0042", resource="/patients/<mrn>")
        record(s, "login.failed", Who("mallory", "user", "10.0.0.9"), outcome=REFUSED, detail="wrong password")
        record(s, "images.receive", Who("CT_ROOM1", "ae", "10.0.1.5"), mrn="MRN-0042", accession="ACC123",
               resource=STUDY_UID)  # fmt: skip
    seal(sessions)


def _received(listener, n: int) -> list[bytes]:
    """What the listener has, once it has at least n messages."""
    return wait_for(lambda: len(listener.received()) >= n and listener.received(), timeout=15)


def _code(element, tag: str) -> tuple[str, str]:
    found = element.find(tag)
    return found.get("csd-code"), found.get("codeSystemName")


def _check_three(messages: list[bytes]) -> None:
    got = [parse(m) for m in messages]
    assert len(got) == 3
    for r in got:
        assert (r.pri, r.version, r.msgid, r.hostname, r.app) == (PRI, 1, MSGID, "ris.example.org", "orthanc-ris")
        assert r.xml.tag == "AuditMessage"
        source = r.xml.find("AuditSourceIdentification")
        assert (source.get("AuditSourceID"), source.get("AuditEnterpriseSiteID")) == ("RIS-TEST", "Radiology")
    read, failed, received = (r.xml for r in got)

    ident = read.find("EventIdentification")
    assert _code(ident, "EventID") == ("110110", "DCM")
    assert (ident.get("EventActionCode"), ident.get("EventOutcomeIndicator")) == ("R", "0")
    user = read.find("ActiveParticipant")
    assert (user.get("UserID"), user.get("UserIsRequestor"), user.get("NetworkAccessPointID")) == (
        "alice", "true", "10.0.0.7")  # fmt: skip
    patient = read.find("ParticipantObjectIdentification")
    assert patient.get("ParticipantObjectID") == "MRN-0042"
    assert (patient.get("ParticipantObjectTypeCode"), patient.get("ParticipantObjectTypeCodeRole")) == ("1", "1")
    assert _code(patient, "ParticipantObjectIDTypeCode") == ("2", "RFC-3881")

    ident = failed.find("EventIdentification")
    assert _code(ident, "EventID") == ("110114", "DCM")
    assert ident.get("EventOutcomeIndicator") == "4"
    assert [e.get("csd-code") for e in ident.findall("EventTypeCode")] == ["110122", "login.failed"]
    assert ident.findtext("EventOutcomeDescription") == "wrong password"
    assert failed.find("ActiveParticipant").get("UserID") == "mallory"
    assert failed.find("ParticipantObjectIdentification") is None  # no patient in a login

    assert _code(received.find("EventIdentification"), "EventID") == ("110104", "DCM")
    patient, study = received.findall("ParticipantObjectIdentification")
    assert patient.get("ParticipantObjectID") == "MRN-0042"
    assert (study.get("ParticipantObjectID"), study.get("ParticipantObjectTypeCode")) == (STUDY_UID, "2")
    assert _code(study, "ParticipantObjectIDTypeCode") == ("110180", "DCM")
    assert study.find("Accession").get("Number") == "ACC123"


def test_every_action_is_a_dicom_audit_event():
    assert set(ACTIONS) <= set(atna.EVENTS)  # each one said explicitly, not left to the fallback
    for action in atna.EVENTS:
        kind = atna.kind_of(action)
        assert kind.event_id[1] == "DCM" and kind.event_id[0].startswith("1101"), action
        assert kind.action_code in "CRUDE", action
    assert atna.kind_of("patient.delete") == atna.Kind(atna.PATIENT_RECORD, "D")  # not in the table: thing + verb
    assert atna.kind_of("backup.run").event_id == atna.APPLICATION_ACTIVITY


def test_udp_repository_receives_one_well_formed_message_per_event(sessions, udp):
    _three_events(sessions)
    sender = UdpSender("127.0.0.1", udp.port)
    assert export_pending(sessions, sender, SOURCE) == 3
    _check_three(_received(udp, 3))
    assert cursor(sessions) == 3
    assert export_pending(sessions, sender, SOURCE) == 0  # the cursor moved: nothing twice
    sender.close()


def test_tls_repository_receives_octet_counted_messages(sessions, tls, cert):
    _three_events(sessions)
    sender = TlsSender("127.0.0.1", tls.port, client_context(str(cert[0])))
    assert export_pending(sessions, sender, SOURCE) == 3
    _check_three(_received(tls, 3))
    # The repository restarts (closes our connection): the next event goes on a new one.
    tls.drop_connections()
    with transaction(sessions) as s:
        record(s, "logout", ALICE)
    seal(sessions)
    assert export_pending(sessions, sender, SOURCE) == 1
    last = _received(tls, 4)[-1]
    assert parse(last).xml.find("EventIdentification/EventTypeCode").get("csd-code") == "110123"
    sender.close()


def test_one_tls_connection_carries_message_after_message(tls, cert):
    """TLS 1.3 servers send session tickets after the handshake: the sender reads them and
    keeps its connection (it once took them for a closed connection, reconnected, and its
    close with unread data reset the old connection, losing what the server had not read)."""
    sender = TlsSender("127.0.0.1", tls.port, client_context(str(cert[0])))
    for i in range(3):
        sender.send(f"message {i}".encode())
        time.sleep(0.2)  # the tickets arrive
    sender.close()
    assert _received(tls, 3) == [b"message 0", b"message 1", b"message 2"]
    assert tls.accepted == 1


def test_the_repository_certificate_is_checked(sessions, tls):
    _three_events(sessions)
    sender = sender_for(f"tls://127.0.0.1:{tls.port}")  # the system's CAs do not know the test's certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        export_pending(sessions, sender, SOURCE)
    assert cursor(sessions) == 0 and tls.received() == []
    with transaction(sessions, write=False) as s:
        assert "certificate verify failed" in sync_state.get(s, CURSOR)[0]["error"]


def test_a_repository_down_at_first_gets_every_event_in_order_once_up(sessions, cert):
    port = free_port()  # nothing listens there yet
    stop = threading.Event()
    sender = TlsSender("127.0.0.1", port, client_context(str(cert[0])), timeout=2)
    exporter = Exporter(sessions, sender, SOURCE, poll=0.1, backoff=0.1, backoff_max=0.4)
    thread = exporter.start(stop)
    try:
        with transaction(sessions) as s:
            for i in range(5):
                record(s, "patient.read", ALICE, mrn=f"MRN-{i}")
        seal(sessions)

        def failed_once():
            with transaction(sessions, write=False) as s:
                return "refused" in sync_state.get(s, CURSOR)[0].get("error", "")

        wait_for(failed_once, timeout=10)
        server = TlsSyslog(*cert, port=port)
        try:
            with transaction(sessions) as s:
                record(s, "order.create", SYSTEM, mrn="MRN-5", accession="ACC5", outcome=FAILED)
            seal(sessions)
            got = _received(server, 6)
        finally:
            server.stop()
    finally:
        stop.set()
        thread.join(10)
    mrns = [parse(m).xml.find("ParticipantObjectIdentification").get("ParticipantObjectID") for m in got]
    assert mrns == [f"MRN-{i}" for i in range(6)]  # every one, in the order of the chain, once
    last = parse(got[-1]).xml
    assert last.find("EventIdentification").get("EventOutcomeIndicator") == "8"
    system = last.findall("ActiveParticipant")
    assert [(p.get("UserID"), p.get("UserIsRequestor")) for p in system] == [("orthanc-ris", "true")]
    assert cursor(sessions) == 6


def test_the_sync_worker_thread_exports_when_the_setting_is_set(sessions, config, udp):
    assert start_export(config, sessions, threading.Event()) is None  # unset: export off
    stop = threading.Event()
    cfg = dataclasses.replace(config, audit_syslog=f"udp://127.0.0.1:{udp.port}", audit_source_id="RIS-1")
    thread = start_export(cfg, sessions, stop)
    try:
        with transaction(sessions) as s:
            record(s, "patient.read", ALICE, mrn="MRN-77")
        seal(sessions)
        got = parse(_received(udp, 1)[0])
    finally:
        stop.set()
        thread.join(10)
    assert got.xml.find("AuditSourceIdentification").get("AuditSourceID") == "RIS-1"
    assert got.xml.find("ParticipantObjectIdentification").get("ParticipantObjectID") == "MRN-77"


@pytest.mark.parametrize("value", ["syslog.example.org:514", "tcp://host:514", "udp://host", "tls://:6514"])
def test_a_malformed_target_stops_the_start(value):
    with pytest.raises(ValueError, match="ORTHANC_RIS_AUDIT_SYSLOG"):
        Config.from_env({"ORTHANC_RIS_AUDIT_SYSLOG": value}, create_secrets=False)
