"""A small audit record repository for tests: syslog listeners on real sockets (UDP, RFC
5426; TLS with octet-counted frames, RFC 5425), a self-signed certificate made with
`openssl`, and a parser of what they receive (the RFC 5424 header and the XML)."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S+) "
    rb"(?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|\[.*?\]) (?P<msg>.*)$",
    re.DOTALL,
)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")


@dataclass
class Received:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app: str
    procid: str
    msgid: str
    xml: ET.Element


def parse(message: bytes) -> Received:
    """Check one SYSLOG-MSG against RFC 5424's header grammar and read its XML."""
    m = HEADER.match(message)
    assert m, f"not an RFC 5424 message: {message[:120]!r}"
    assert TIMESTAMP.match(m["timestamp"].decode()), m["timestamp"]
    assert not m["msg"].startswith(b"\xef\xbb\xbf"), "no byte-order mark (ITI CP-477)"
    return Received(
        pri=int(m["pri"]),
        version=int(m["version"]),
        timestamp=m["timestamp"].decode(),
        hostname=m["hostname"].decode(),
        app=m["app"].decode(),
        procid=m["procid"].decode(),
        msgid=m["msgid"].decode(),
        xml=ET.fromstring(m["msg"]),
    )


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost that is its own CA: (cert.pem, key.pem)."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing: apt-get install openssl")
    cert, key = folder / "syslog.pem", folder / "syslog.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=audit-repository",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _Listener:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def received(self) -> list[bytes]:
        with self.lock:
            return list(self.messages)

    def _keep(self, message: bytes) -> None:
        with self.lock:
            self.messages.append(message)


class UdpSyslog(_Listener):
    """RFC 5426: each datagram is one message."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self._keep(data)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


class TlsSyslog(_Listener):
    """RFC 5425: TLS connections carrying "MSG-LEN SP SYSLOG-MSG" frames."""

    def __init__(self, cert: Path, key: Path, port: int = 0) -> None:
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.handshake_errors: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            raw.close()
            return
        with self.lock:
            self.connections.append(conn)
        buffer = b""
        try:
            while not self.stopping.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b" " in buffer:
                    length, rest = buffer.split(b" ", 1)
                    assert length.isdigit(), f"not an octet-counted frame: {buffer[:40]!r}"
                    if len(rest) < int(length):
                        break
                    self._keep(rest[: int(length)])
                    buffer = rest[int(length) :]
        except OSError:
            return
        finally:
            conn.close()

    def drop_connections(self) -> None:
        """Close every open connection from our side (a repository restarting)."""
        with self.lock:
            connections, self.connections = self.connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        self.drop_connections()
