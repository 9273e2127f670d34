"""MLLP (Minimal Lower Layer Protocol): framing, a threaded listener with bounded buffers
and read timeouts, and a client for outbound messages.

A frame is <VT> message <FS><CR>. The listener serves many connections (one thread each),
several messages per connection, answers each frame before reading the next (interface
engines wait for the ACK), and refuses what it cannot frame: a frame larger than the limit
or one left unfinished (peer closed, or read timeout) gets an AR and the connection is
closed, since the byte stream cannot be resynchronised reliably.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
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
    ) -> None:
        self.handle_message = handle_message
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
            self._serve()
        finally:
            with srv._active_lock:
                srv.active -= 1

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

    def __init__(self, host: str, port: int, timeout: float = 10.0, max_bytes: int = 1_048_576) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


def send_message(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send one message on a fresh connection and return the peer's reply payload."""
    with MLLPClient(host, port, timeout) as client:
        return client.send(payload)
