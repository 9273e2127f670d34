"""MLLP (Minimal Lower Layer Protocol): framing, a threaded listener with bounded buffers
and read timeouts, and a client for outbound messages.

A frame is <VT> message <FS><CR>. The listener serves many connections (one thread each),
several messages per connection, answers each frame before reading the next (interface
engines wait for the ACK), and refuses what it cannot frame: a frame larger than the limit
or one left unfinished (peer closed, or read timeout) gets an AR and the connection is
closed, since the byte stream cannot be resynchronised reliably.

Two optional locks on the listener: a peer allowlist (addresses or networks), checked when
the connection is accepted, before any byte is read; and TLS, whose handshake runs in the
connection's own thread and is bounded by the read timeout, so a silent peer holds no more
than its own thread. Clients may speak TLS to a peer too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from typing import Self

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\r"


def frame(payload: bytes) -> bytes:
    return START + payload + END


class FrameError(Exception):
    """A frame that cannot be completed: `partial` holds what was received of it."""

    def __init__(self, reason: str, partial: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


class FrameReader:
    """Incremental deframer with a size bound. feed() returns complete payloads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.in_frame = False

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self.buf += data
        while True:
            if not self.in_frame:
                start = self.buf.find(START)
                if start < 0:
                    self.buf.clear()  # bytes outside any frame (keep-alive newlines, noise)
                    return out
                del self.buf[: start + 1]
                self.in_frame = True
            end = self.buf.find(END)
            if end < 0:
                if len(self.buf) > self.max_bytes:
                    raise FrameError(f"message exceeds {self.max_bytes} bytes", bytes(self.buf[: self.max_bytes]))
                return out
            if end > self.max_bytes:
                raise FrameError(f"message exceeds {self.max_bytes} bytes", bytes(self.buf[: self.max_bytes]))
            out.append(bytes(self.buf[:end]))
            del self.buf[: end + len(END)]
            self.in_frame = False

    @property
    def partial(self) -> bytes:
        return bytes(self.buf) if self.in_frame else b""


# handle_message(payload, peer) -> reply payload (unframed); on_broken(partial, reason, peer) -> reply
MessageHandler = Callable[[bytes, str], bytes]
BrokenHandler = Callable[[bytes, str, str], bytes]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """The listener's TLS context; with `client_ca`, peers must show a certificate signed
    by it (mutual TLS, as IHE ATNA secure nodes do)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(peer_ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client's TLS context: the peer checked against `peer_ca` (else the system's
    CAs) and its host name; our certificate shown when the peer asks for one."""
    ctx = ssl.create_default_context(cafile=peer_ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


def peer_allowed(address: str, allow: tuple[Network, ...]) -> bool:
    """True when `allow` is empty or holds `address` (IPv4-mapped IPv6 read as IPv4)."""
    if not allow:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip.version == net.version and ip in net for net in allow)


class MLLPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handle_message: MessageHandler,
        on_broken: BrokenHandler,
        *,
        max_bytes: int = 1_048_576,
        read_timeout: float = 30.0,
        idle_timeout: float = 600.0,
        max_connections: int = 64,
        allow: tuple[Network, ...] = (),
        ssl_context: ssl.SSLContext | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.handle_message = handle_message
        self.allow = allow
        self.on_refused = on_refused  # told the address of each peer the allowlist refuses
        self.ssl_context = ssl_context
        self.on_broken = on_broken
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.active = 0
        self._active_lock = threading.Lock()
        super().__init__(address, _Connection)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def verify_request(self, request, client_address) -> bool:
        """The allowlist, in the accepting thread: a refused peer is closed unread."""
        if peer_allowed(client_address[0], self.allow):
            return True
        log.warning("MLLP connection from %s refused: not in ORTHANC_RIS_HL7_ALLOW", client_address[0])
        if self.on_refused is not None:
            try:
                self.on_refused(client_address[0])
            except Exception:  # the refusal stands whatever recording it does
                log.exception("MLLP refusal could not be recorded")
        return False


class _Connection(socketserver.BaseRequestHandler):
    server: MLLPServer

    def handle(self) -> None:
        srv = self.server
        with srv._active_lock:
            srv.active += 1
            too_many = srv.active > srv.max_connections
        try:
            if too_many:
                log.warning(
                    "MLLP: more than %d connections; closing one from %s", srv.max_connections, self.client_address[0]
                )
                return
            if srv.ssl_context is not None and not self._start_tls():
                return
            self._serve()
        finally:
            if isinstance(self.request, ssl.SSLSocket):  # socketserver closes only the raw socket
                with contextlib.suppress(OSError):
                    self.request.close()
            with srv._active_lock:
                srv.active -= 1

    def _start_tls(self) -> bool:
        """The TLS handshake, bounded by the read timeout; False (logged) when it fails."""
        raw: socket.socket = self.request
        raw.settimeout(self.server.read_timeout)
        try:
            self.request = self.server.ssl_context.wrap_socket(raw, server_side=True)
        except ssl.SSLEOFError:
            # Closed before or during the hello: a port probe or health check, not an attack.
            log.debug("MLLP TLS peer %s closed before the handshake", self.client_address[0])
            return False
        except (ssl.SSLError, OSError) as exc:
            log.warning("MLLP TLS handshake with %s failed: %s", self.client_address[0], exc.__class__.__name__)
            return False
        return True

    def _reply(self, payload: bytes) -> bool:
        try:
            self.request.sendall(frame(payload))
            return True
        except OSError:
            return False

    def _serve(self) -> None:
        srv = self.server
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        reader = FrameReader(srv.max_bytes)
        frame_deadline = 0.0
        while True:
            # The read timeout bounds a whole frame, not each recv: a peer trickling a byte
            # at a time cannot hold a connection thread forever.
            if reader.in_frame:
                timeout = frame_deadline - time.monotonic()
                if timeout <= 0:
                    self._reply(srv.on_broken(reader.partial, "truncated frame (read timeout)", peer))
                    return
            else:
                timeout = srv.idle_timeout
            sock.settimeout(timeout)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if reader.in_frame:
                    self._reply(srv.on_broken(reader.partial, "truncated frame (read timeout)", peer))
                return
            except OSError:
                return
            if not data:
                if reader.in_frame and reader.partial:
                    # The peer half-closed inside a frame: answer what we can, then close.
                    self._reply(srv.on_broken(reader.partial, "truncated frame (connection closed)", peer))
                return
            was_in_frame = reader.in_frame
            try:
                payloads = reader.feed(data)
            except FrameError as exc:
                self._reply(srv.on_broken(exc.partial, exc.reason, peer))
                return
            if reader.in_frame and (payloads or not was_in_frame):
                frame_deadline = time.monotonic() + srv.read_timeout
            for payload in payloads:
                if not self._reply(srv.handle_message(payload, peer)):
                    return


def serve_in_thread(server: MLLPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="mllp-listener", daemon=True
    )
    thread.start()
    return thread


class MLLPClient:
    """One connection to a peer; send() waits for the framed reply."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 10.0,
        max_bytes: int = 1_048_576,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
            except OSError:
                self.sock.close()
                raise
        self.sock.settimeout(timeout)
        self.reader = FrameReader(max_bytes)
        self.pending: list[bytes] = []

    def send(self, payload: bytes) -> bytes:
        self.sock.sendall(frame(payload))
        return self.receive()

    def receive(self) -> bytes:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("peer closed the connection before replying")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def send_message(
    host: str, port: int, payload: bytes, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
) -> bytes:
    """Send one message on a fresh connection and return the peer's reply payload."""
    with MLLPClient(host, port, timeout, ssl_context=ssl_context) as client:
        return client.send(payload)
