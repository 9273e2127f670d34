"""HTTP client from the plugin to the RIS: keep-alive, bearer token, clear errors."""

from __future__ import annotations

import http.client
import json
import struct
import threading
import urllib.parse


class RisUnavailable(RuntimeError):
    """The RIS could not be reached or answered with a server error: retry later."""


class RisRejected(RuntimeError):
    """The RIS refused the request (4xx): retrying the same request cannot help."""


class RisClient:
    """One keep-alive connection per thread (worklist and change-feed threads differ)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._https else 80)
        self._prefix = parsed.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def request(
        self, method: str, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Authorization": f"Bearer {self._token}", "Content-Type": content_type}
        hdrs.update(headers or {})
        for attempt in (1, 2):  # a kept-alive connection the server closed: retry once
            try:
                conn = self._conn()
                conn.request(method, self._prefix + path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                resp_headers = {k.lower(): v for k, v in resp.getheaders()}
                if resp_headers.get("connection", "").lower() == "close":
                    self._drop()
                break
            except (http.client.HTTPException, OSError) as exc:
                self._drop()
                if attempt == 2:
                    raise RisUnavailable(f"RIS unreachable: {exc.__class__.__name__}: {exc}") from None
        if status >= 500:
            raise RisUnavailable(f"RIS answered HTTP {status}")
        if status in (401, 403):
            # A configuration error an operator will fix: retry rather than skip events.
            raise RisUnavailable(f"RIS refused the plugin's token (HTTP {status}): check OrthancRIS.ApiToken")
        if status >= 400:
            raise RisRejected(f"RIS refused the request: HTTP {status} {data[:300]!r}")
        return status, resp_headers, data

    def post_json(self, path: str, payload: dict) -> dict:
        _, _, data = self.request("POST", path, json.dumps(payload).encode(), "application/json")
        return json.loads(data or b"{}")

    def find_worklist(self, query: bytes, calling_aet: str, called_aet: str) -> tuple[list[bytes], bool]:
        """Send a DICOM MWL query; returns the answer items and whether more were cut."""
        _, headers, data = self.request(
            "POST",
            "/api/internal/worklist/find",
            query,
            "application/dicom",
            {"X-Calling-AET": calling_aet.strip(), "X-Called-AET": called_aet.strip()},
        )
        return split_frames(data), headers.get("x-worklist-incomplete") == "1"


def split_frames(data: bytes) -> list[bytes]:
    """Undo the RIS's framing: each item preceded by its 4-byte big-endian length."""
    items, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise RisUnavailable("truncated worklist answer from the RIS")
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        if pos + size > len(data):
            raise RisUnavailable("truncated worklist answer from the RIS")
        items.append(data[pos : pos + size])
        pos += size
    return items
