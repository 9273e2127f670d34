"""The MLLP listener's peer allowlist and TLS over real sockets: certificates made by
`openssl` for each run (a CA, the listener's certificate, a client certificate), clients
calling from 127.0.0.1 and from 127.0.0.2."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from ris_app.db import transaction
from ris_app.hl7.listener import Hl7Service
from ris_app.hl7.mllp import MLLPClient, MLLPServer, client_context, frame, serve_in_thread, server_context
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.settings import Destination, Hl7Settings, parse_allow, parse_destinations
from ris_app.scheduling.catalog import seed_default_catalog
from tests.conftest import free_port, wait_for
from tests.hl7.test_hl7_listener import _place

MESSAGE = b"MSH|^~\\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ADT^A01|C1|P|2.5.1"


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a listener certificate for 127.0.0.1/localhost and a client certificate."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing: apt-get install openssl")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test HL7 CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    for name, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=test-{name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        ext = d / f"{name}.ext"
        ext.write_text(san + "\n" if san else "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", ext.name, "-out", f"{name}.pem", cwd=d)  # fmt: skip
    # A client certificate from another CA: valid TLS, but not ours.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=stranger",
             "-keyout", "stranger.key", "-out", "stranger.pem", cwd=d)  # fmt: skip
    return d


def _ack(payload: bytes, peer: str) -> bytes:
    control_id = payload.split(b"|")[9]
    return b"MSH|^~\\&|ORTHANC_RIS|RADIOLOGY|EHR|HOSP|20260101120001||ACK|A1|P|2.5.1\rMSA|AA|" + control_id


def _broken(partial: bytes, reason: str, peer: str) -> bytes:
    return b"MSH|^~\\&|ORTHANC_RIS|RADIOLOGY|||20260101120001||ACK|A2|P|2.5.1\rMSA|AR|"


@pytest.fixture
def listen():
    """listen(**kw) -> a started MLLPServer on a free port of 127.0.0.1; all stopped after."""
    servers = []

    def start(**kw) -> MLLPServer:
        server = MLLPServer(("127.0.0.1", 0), _ack, _broken, read_timeout=1.0, idle_timeout=5.0, **kw)
        serve_in_thread(server)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _from(source: str, port: int, payload: bytes = MESSAGE) -> bytes:
    """Send one framed message from source address `source`; the raw bytes answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(frame(payload))
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if data.endswith(b"\x1c\r"):
                    break
        except ConnectionResetError:
            pass
        return data


def test_allowlist_lets_the_listed_address_in_and_refuses_others(listen, caplog):
    server = listen(allow=parse_allow("127.0.0.1, 10.0.0.0/8"))
    assert b"MSA|AA|C1" in _from("127.0.0.1", server.port)
    with caplog.at_level(logging.WARNING, logger="ris_app.hl7.mllp"):
        assert _from("127.0.0.2", server.port) == b""
        wait_for(lambda: "MLLP connection from 127.0.0.2 refused" in caplog.text, timeout=5)


def test_a_network_in_the_allowlist_covers_its_addresses(listen):
    server = listen(allow=parse_allow("127.0.0.0/30"))
    assert b"MSA|AA|C1" in _from("127.0.0.2", server.port)
    assert _from("127.0.0.5", server.port) == b""


def test_no_allowlist_lets_everyone_in(listen):
    server = listen()
    assert b"MSA|AA|C1" in _from("127.0.0.2", server.port)


def test_tls_listener_answers_a_tls_client(listen, pki):
    server = listen(ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key")))
    with MLLPClient("127.0.0.1", server.port, 5, ssl_context=client_context(str(pki / "ca.pem"))) as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert b"MSA|AA|C1" in client.send(MESSAGE)
        assert b"MSA|AA|C1" in client.send(MESSAGE)  # several messages per connection, as in plain TCP


def test_tls_listener_gives_plain_tcp_nothing(listen, pki, caplog):
    server = listen(ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key")))
    with caplog.at_level(logging.WARNING, logger="ris_app.hl7.mllp"):
        assert _from("127.0.0.1", server.port) == b""  # the frame is no TLS hello: closed, no ACK
        wait_for(lambda: "MLLP TLS handshake with 127.0.0.1 failed" in caplog.text, timeout=5)


def test_a_silent_peer_cannot_hold_the_handshake(listen, pki):
    server = listen(ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key")))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # closed after the read timeout (1 s), not the idle timeout
        assert time.monotonic() - started < 4


def test_mutual_tls_needs_a_client_certificate_from_the_ca(listen, pki):
    server = listen(
        ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key"), client_ca=str(pki / "ca.pem"))
    )
    ca = str(pki / "ca.pem")
    good = client_context(ca, str(pki / "client.pem"), str(pki / "client.key"))
    with MLLPClient("127.0.0.1", server.port, 5, ssl_context=good) as client:
        assert b"MSA|AA|C1" in client.send(MESSAGE)
    for ctx in (client_context(ca), client_context(ca, str(pki / "stranger.pem"), str(pki / "stranger.key"))):
        # TLS 1.3: the server's refusal of the client certificate may arrive after the
        # handshake, at the first read. ssl.SSLError and ConnectionError are both OSErrors.
        with pytest.raises(OSError), MLLPClient("127.0.0.1", server.port, 5, ssl_context=ctx) as client:
            client.send(MESSAGE)


def test_a_client_refuses_a_listener_it_cannot_verify(listen, pki):
    server = listen(ssl_context=server_context(str(pki / "stranger.pem"), str(pki / "stranger.key")))
    with pytest.raises(ssl.SSLCertVerificationError):
        MLLPClient("127.0.0.1", server.port, 5, ssl_context=client_context(str(pki / "ca.pem")))


def test_allowlist_and_tls_together(listen, pki):
    server = listen(
        allow=parse_allow("127.0.0.1"), ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key"))
    )
    with MLLPClient("127.0.0.1", server.port, 5, ssl_context=client_context(str(pki / "ca.pem"))) as client:
        assert b"MSA|AA|C1" in client.send(MESSAGE)
    assert _from("127.0.0.2", server.port) == b""


def test_settings_read_the_allowlist_tls_files_and_tls_destinations():
    s = Hl7Settings.from_env(
        {
            "ORTHANC_RIS_HL7_ALLOW": "10.1.2.3, 10.20.0.0/16 ,::1",
            "ORTHANC_RIS_HL7_TLS_CERT": "/etc/ris/hl7.pem",
            "ORTHANC_RIS_HL7_TLS_KEY": "/etc/ris/hl7.key",
            "ORTHANC_RIS_HL7_DESTINATIONS": "EHR=tls://ehr.example.org:2576;LIS=10.0.0.7:6661",
        }
    )
    assert [str(n) for n in s.allow] == ["10.1.2.3/32", "10.20.0.0/16", "::1/128"]
    assert (s.tls_cert, s.tls_key, s.tls_client_ca) == ("/etc/ris/hl7.pem", "/etc/ris/hl7.key", "")
    assert s.destinations == (
        Destination("EHR", "ehr.example.org", 2576, tls=True),
        Destination("LIS", "10.0.0.7", 6661, tls=False),
    )
    assert Hl7Settings.from_env({}).allow == ()


@pytest.mark.parametrize(
    "env",
    [
        {"ORTHANC_RIS_HL7_ALLOW": "10.1.2.300"},
        {"ORTHANC_RIS_HL7_ALLOW": "ehr.example.org"},
        {"ORTHANC_RIS_HL7_TLS_CERT": "/etc/ris/hl7.pem"},
        {"ORTHANC_RIS_HL7_TLS_CLIENT_CA": "/etc/ris/ca.pem"},
    ],
)
def test_bad_security_settings_refuse_to_start(env):
    with pytest.raises(ValueError, match="ORTHANC_RIS_HL7_"):
        Hl7Settings.from_env(env)


def test_destination_without_port_is_refused():
    with pytest.raises(ValueError, match="tls://host:port"):
        parse_destinations("EHR=tls://ehr.example.org")


@pytest.mark.db
def test_outbound_status_reaches_a_tls_destination_that_wants_our_certificate(config, client, auth, listen, pki):
    """The EHR end listens with mutual TLS; our outbox sender trusts its CA and shows our
    certificate; the listener of our own side speaks TLS too."""
    received = []
    ehr = listen(
        ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key"), client_ca=str(pki / "ca.pem"))
    )
    ehr.handle_message = lambda payload, peer: received.append(payload) or _ack(payload, peer)
    settings = Hl7Settings(
        port=free_port(),
        read_timeout=1.0,
        destinations=(Destination("EHR", "127.0.0.1", ehr.port, tls=True),),
        retry_seconds=0.2,
        retry_max_seconds=0.5,
        send_timeout=2,
        tls_cert=str(pki / "client.pem"),
        tls_key=str(pki / "client.key"),
        tls_peer_ca=str(pki / "ca.pem"),
    )
    service = Hl7Service(config, settings, outbox_poll=0.1).start()
    try:
        with transaction(service.sessions) as s:
            seed_default_catalog(s)
        acc = _place(client, auth, "TLS-OUT-1")
        assert client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth).status_code == 200
        wait_for(lambda: any(acc.encode() in m for m in received), timeout=10)
    finally:
        service.stop()
        set_settings(None)


def test_a_port_probe_is_not_logged_as_a_failed_handshake(listen, pki, caplog):
    """`orthanc-ris up` and the compose health check connect and close."""
    server = listen(ssl_context=server_context(str(pki / "server.pem"), str(pki / "server.key")))
    with caplog.at_level(logging.DEBUG, logger="ris_app.hl7.mllp"):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
        wait_for(lambda: "closed before the handshake" in caplog.text, timeout=5)
    assert "failed" not in caplog.text


def test_a_peer_the_allowlist_refuses_is_an_audit_event_once_a_minute(config):
    """The refusal is in the trail (who: the address; outcome refused), once per address per
    minute however many times it knocks."""
    from tests.fixtures.audit import events

    settings = Hl7Settings(port=free_port(), read_timeout=1.0, allow=parse_allow("127.0.0.1"))
    service = Hl7Service(config, settings, outbox_poll=0.1).start()
    try:
        for _ in range(3):
            assert _from("127.0.0.3", service.port) == b""
        found = wait_for(lambda: events(service.sessions, action="hl7.connect"), timeout=5)
        time.sleep(0.3)  # a second event, were there one, would be written by now
        (event,) = events(service.sessions, action="hl7.connect")
        assert (event.actor, event.actor_kind, event.address, event.outcome) == (
            "127.0.0.3",
            "hl7",
            "127.0.0.3",
            "refused",
        )
        assert found
    finally:
        service.stop()
        set_settings(None)
