"""Syslog for audit messages: the RFC 5424 message around a PS3.15 AuditMessage, and the two
transports IHE ATNA [ITI-20] allows: UDP (RFC 5426, one message per datagram, no delivery
guarantee) and TLS (RFC 5425, "MSG-LEN SP SYSLOG-MSG" octet-counted frames on a TLS
connection, the server's certificate checked; ours shown when the server asks for it).

A sender's `send(message)` returns once the message is delivered as far as its transport
can tell, or raises OSError: UDP, handed to the network; TLS, written and flushed on a
connection the server has not closed. Every network call has a timeout.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from ris_app.hl7.mllp import client_context

# PRI: facility 10 (security/authorization), severity 5 (notice), as DICOM PS3.15 A.6/A.7
# and ITI TF-2 3.20 ask: <85>. MSGID as ITI-20 names it.
FACILITY_AUTHPRIV, SEVERITY_NOTICE = 10, 5
PRI = FACILITY_AUTHPRIV * 8 + SEVERITY_NOTICE
MSGID = "IHE+RFC-3881"
NILVALUE = "-"
TIMEOUT = 5.0


def _printable(value: str, limit: int) -> str:
    """A header field: PRINTUSASCII (33..126), at most `limit`, NILVALUE when empty."""
    kept = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return kept or NILVALUE


def syslog_message(msg: bytes, *, at: datetime, hostname: str, app_name: str, procid: str = "") -> bytes:
    """One RFC 5424 SYSLOG-MSG: HEADER SP STRUCTURED-DATA(nil) SP MSG."""
    stamp = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    header = " ".join(
        (
            f"<{PRI}>1",
            stamp,
            _printable(hostname, 255),
            _printable(app_name, 48),
            _printable(procid or str(os.getpid()), 128),
            MSGID,
            NILVALUE,
        )
    )
    return header.encode("ascii") + b" " + msg


def octet_frame(message: bytes) -> bytes:
    """RFC 5425 4.3: MSG-LEN SP SYSLOG-MSG."""
    return str(len(message)).encode("ascii") + b" " + message


class Sender(Protocol):
    def send(self, message: bytes) -> None: ...

    def close(self) -> None: ...


class UdpSender:
    """RFC 5426: one message per datagram. The socket is connected, so an address that
    does not resolve, or a port the peer's host refused (ICMP), raises and the message
    is retried; a datagram lost on the way is not seen (use tls:// where that matters)."""

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None

    def send(self, message: bytes) -> None:
        if self.sock is None:
            family, kind, proto, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.settimeout(self.timeout)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
            self.sock = sock
        try:
            self.sock.send(message)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class TlsSender:
    """RFC 5425: one long-lived TLS connection, octet-counted frames. Before each message
    the connection is checked: a syslog server sends no data, so what there is to read is
    TLS housekeeping (TLS 1.3 session tickets, read and dropped) or the end of the
    connection, and then we connect again rather than write into a dead one. The tickets
    must be read: a socket closed with unread data sends a reset, and a reset makes the
    server drop what it had received but not yet read."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float = TIMEOUT) -> None:
        self.host, self.port, self.context, self.timeout = host, port, context, timeout
        self.sock: ssl.SSLSocket | None = None

    def _alive(self) -> bool:
        sock = self.sock
        if sock is None:
            return False
        while sock.pending() or select.select([sock], [], [], 0)[0]:
            sock.setblocking(False)
            try:
                if not sock.recv(4096):
                    return False  # closed by the server
            except ssl.SSLWantReadError:
                return True  # only housekeeping was there
            except OSError:
                return False
            finally:
                sock.settimeout(self.timeout)
        return True

    def send(self, message: bytes) -> None:
        if not self._alive():
            self.close()
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            try:
                self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
            except OSError:  # ssl.SSLError is one
                raw.close()
                raise
        try:
            self.sock.sendall(octet_frame(message))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            try:
                self._alive()  # read what is pending, so closing sends no reset
                self.sock.close()
            finally:
                self.sock = None


def sender_for(target: str, *, ca: str = "", cert: str = "", key: str = "", timeout: float = TIMEOUT) -> Sender:
    """A sender for `udp://host:port` or `tls://host:port` (ORTHANC_RIS_AUDIT_SYSLOG)."""
    url = urlsplit(target)
    if url.scheme not in ("udp", "tls") or not url.hostname or not url.port:
        raise ValueError(f"audit syslog target must be udp://host:port or tls://host:port, not {target!r}")
    if url.scheme == "udp":
        return UdpSender(url.hostname, url.port, timeout)
    return TlsSender(url.hostname, url.port, client_context(ca, cert, key), timeout)
