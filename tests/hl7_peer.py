"""HL7 peers for tests over real sockets: a client that sends framed messages, and a
receiver standing in for the EHR that records what it gets and answers with ACKs."""
from __future__ import annotations

import socket
import socketserver
import threading

from ris_app.hl7.mllp import END, START, MLLPClient
from tests.hl7_messages import ACK_TEMPLATE, control_id


def fields(payload: bytes, segment: str) -> list[str]:
    """The fields of the first `segment` in a message (MSH: fields[n] is MSH-n)."""
    for seg in payload.decode("utf-8", errors="replace").split("\r"):
        if seg.startswith(segment):
            parts = seg.split("|")
            return ["MSH", "|", *parts[1:]] if segment == "MSH" else parts
    return []


def msa(ack: bytes) -> tuple[str, str]:
    f = fields(ack, "MSA") + ["", "", ""]
    return f[1], f[2]


def send(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    with MLLPClient("127.0.0.1", port, timeout) as c:
        return c.send(payload)


def send_raw(port: int, data: bytes, *, half_close: bool = False, timeout: float = 10.0) -> bytes:
    """Send bytes as they are (broken frames included); return everything the listener
    answers until it closes the connection or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"".join(chunks).endswith(END):
                    break
        except TimeoutError:
            pass
        data = b"".join(chunks)
    return data[data.find(START) + 1: -len(END)] if data.startswith(START) else data


class Receiver:
    """A test EHR: listens on a port, records each message, answers AA echoing MSH-10 (or
    what `answer` says: 'AA', 'AE', 'AR', 'WRONG_ID')."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[bytes] = []
        self.answer = "AA"
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                buf = b""
                self.request.settimeout(10)
                while True:
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    while END in buf:
                        frame, buf = buf.split(END, 1)
                        payload = frame[frame.find(START) + 1:]
                        with outer.lock:
                            outer.received.append(payload)
                        ctl = fields(payload, "MSH")[10]
                        code = outer.answer
                        if code == "WRONG_ID":
                            code, ctl = "AA", "SOMETHING-ELSE"
                        ack = ACK_TEMPLATE.format(own=control_id("E"), code=code, ctl=ctl).encode()
                        self.request.sendall(START + ack + END)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def messages(self, message_type: str = "") -> list[bytes]:
        with self.lock:
            return [m for m in self.received if not message_type or fields(m, "MSH")[9].startswith(message_type)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
