"""The viewer's Orthanc proxy over real sockets: the viewer app served by Werkzeug, a stand-in
Orthanc that records every request it receives, and raw HTTP request lines (no client
library that would normalise the path first)."""

from __future__ import annotations

import json
import re
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.viewer.app import _local_path, create_viewer_app, viewer_login_url
from ris_app.web.auth import create_user
from ris_app.web.login_guard import session_key, start_session

pytestmark = pytest.mark.db

STUDY = "1.2.826.0.1.3680043.2.1125.1"
SERIES = "1.2.826.0.1.3680043.2.1125.2"
SOP = "1.2.826.0.1.3680043.2.1125.3"
ORTHANC_ID = "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"
EXPLORER_HTML = '<html><head><script src="explorer.js"></script></head><body>Explorer</body></html>'


class _Recorder(BaseHTTPRequestHandler):
    """Orthanc as the proxy sees it: answers everything, keeps every request line."""

    def _answer(self):
        self.server.seen.append((self.command, self.path))
        self.server.encodings.append(self.headers.get("Accept-Encoding"))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = EXPLORER_HTML.encode() if self.path.endswith("explorer.html") else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith(".html") else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def orthanc():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    server.encodings = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def viewer(config, orthanc):
    """The viewer app on a real port, its Orthanc the recorder; users of every role."""
    cfg = config.__class__(**{**config.__dict__, "orthanc_url": f"http://127.0.0.1:{orthanc.server_port}"})
    engine = make_engine(cfg.database_url)
    ids = {}
    with transaction(make_sessionmaker(engine)) as s:
        for role in ("radiologist", "technologist", "admin", "clerk"):
            user = create_user(s, role, "password-123", role)
            s.flush()
            # The RIS login the hand-over names: the viewer session lives as long as it.
            secret = start_session(s, user, lifetime=timedelta(hours=1), ip="127.0.0.1", user_agent="test")
            ids[role] = (user.id, session_key(secret))
    engine.dispose()
    server = make_server("127.0.0.1", 0, create_viewer_app(cfg), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield cfg, server.server_port, ids
    server.shutdown()


def _send(port: int, method: str, path: str, cookie: str = "", headers: dict | None = None, body: bytes = b""):
    """One raw HTTP/1.1 request, its path sent byte for byte; (status, body)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1"), rest


def _login(viewer, role: str) -> tuple[str, str]:
    """A viewer session for `role`, through the RIS hand-over: (cookie, CSRF token)."""
    cfg, port, ids = viewer
    user_id, ris_session = ids[role]
    query = urlsplit(viewer_login_url(cfg, "http://127.0.0.1:5000/", user_id, "/viewer", ris_session)).query
    status, head, _ = _send(port, "GET", f"/ris-login?{query}")
    assert status == 302
    cookie = re.search(r"Set-Cookie: ([^;]+);", head).group(1)
    status, _, script = _send(port, "GET", "/viewer-csrf.js", cookie)
    assert status == 200
    return cookie, re.search(r"window.orthancRisCsrf = '([^']+)'", script.decode()).group(1)


TRAVERSALS = [
    "/dicom-web/../system",
    "/dicom-web/./studies",
    "/dicom-web/studies/../../system",
    "/dicom-web/studies/..",
    "/dicom-web/studies/.",
    "/dicom-web/%2e%2e/system",
    "/dicom-web/%2E%2E/system",
    "/dicom-web/%2e./system",
    "/dicom-web/.%2E/system",
    "/dicom-web/%2e/studies",
    "/dicom-web/%252e%252e/system",
    "/dicom-web/%252E%252E/tools/execute-script",
    "/dicom-web/..%2fsystem",
    "/dicom-web/..%2Fsystem",
    "/dicom-web/studies%2f..%2f..%2fsystem",
    "/dicom-web/..%252fsystem",
    "/dicom-web/..\\system",
    "/dicom-web/..%5csystem",
    "/dicom-web/..%5Csystem",
    "/dicom-web/studies\\..\\..\\system",
    "/dicom-web//system",
    "/dicom-web/studies/%00",
    "/orthanc/app/../tools/execute-script",
    "/orthanc/app/%2e%2e/tools/execute-script",
    "/orthanc/%2e%2e/%2e%2e/system",
    "/orthanc/app/..%2f..%2fsystem",
    "/orthanc/app/..\\..\\system",
    "/orthanc//system",
    # An encoded letter in the prefix: the raw path does not start with it, the decoded one does.
    "/%64icom-web/../system",
    "/%6frthanc/app/../tools/execute-script",
    "/%6Frthanc/app/%2e%2e/system",
    "/%2fdicom-web/studies",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_forms_never_reach_orthanc(viewer, orthanc, path):
    cookie, csrf = _login(viewer, "admin")
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
        status, _, _ = _send(viewer[1], method, path, cookie, {"X-CSRF-Token": csrf})
        assert status == 400, (method, path, status)
    assert _send(viewer[1], "GET", path)[0] == 400  # without a session too
    assert orthanc.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/dicom-web/studies?PatientID=X&limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060",
        f"/dicom-web/studies?StudyInstanceUID={STUDY}",
        f"/dicom-web/studies/{STUDY}/series",
        f"/dicom-web/studies/{STUDY}/metadata",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/metadata",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1,2/rendered",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/rendered",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/thumbnail",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulk/7fe00010",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulk/00540016/0/00181072",
        f"/wado?requestType=WADO&studyUID={STUDY}&seriesUID={SERIES}&objectUID={SOP}",
    ],
)
def test_ohif_requests_go_through_as_sent(viewer, orthanc, path):
    for role in ("radiologist", "technologist"):
        cookie, _ = _login(viewer, role)
        assert _send(viewer[1], "GET", path, cookie)[0] == 200
    assert orthanc.seen == [("GET", path)] * 2


def test_dicomweb_is_read_only(viewer, orthanc):
    cookie, csrf = _login(viewer, "admin")
    for method in ("POST", "PUT", "DELETE"):  # STOW-RS and anything else that writes
        status, _, _ = _send(viewer[1], method, "/dicom-web/studies", cookie, {"X-CSRF-Token": csrf})
        assert status == 405
    assert _send(viewer[1], "GET", "/dicom-web/tools/execute-script", cookie)[0] == 404
    assert orthanc.seen == []


@pytest.mark.parametrize(
    "role, path, status",
    [
        ("radiologist", "/orthanc/system", 200),
        ("radiologist", f"/orthanc/studies/{ORTHANC_ID}", 200),
        ("radiologist", f"/orthanc/instances/{ORTHANC_ID}/preview", 200),
        ("radiologist", "/orthanc/jobs", 403),  # the admin's pages of Explorer
        ("technologist", "/orthanc/system", 403),
        ("clerk", "/dicom-web/studies", 403),
        ("admin", "/orthanc/jobs", 200),
        ("admin", "/orthanc/tools/execute-script", 404),
        ("admin", "/orthanc/modalities/x/store", 404),
        ("admin", "/orthanc/dicom-web/studies", 404),
    ],
)
def test_explorer_routes_per_role(viewer, orthanc, role, path, status):
    cookie, _ = _login(viewer, role)
    assert _send(viewer[1], "GET", path, cookie)[0] == status
    assert orthanc.seen == ([("GET", path.removeprefix("/orthanc"))] if status == 200 else [])


def test_writes_need_the_sessions_csrf_header(viewer, orthanc):
    cookie, csrf = _login(viewer, "admin")
    _, other = _login(viewer, "radiologist")
    path = f"/orthanc/studies/{ORTHANC_ID}"
    assert _send(viewer[1], "DELETE", path, cookie)[0] == 403
    assert _send(viewer[1], "DELETE", path, cookie, {"X-CSRF-Token": other})[0] == 403
    assert _send(viewer[1], "POST", "/orthanc/tools/execute-script", cookie, {"X-CSRF-Token": csrf})[0] == 404
    assert orthanc.seen == []
    assert _send(viewer[1], "DELETE", path, cookie, {"X-CSRF-Token": csrf})[0] == 200
    assert orthanc.seen == [("DELETE", path.removeprefix("/orthanc"))]


def test_a_radiologist_may_look_up_but_not_delete(viewer, orthanc):
    cookie, csrf = _login(viewer, "radiologist")
    find = json.dumps({"Level": "Study", "Query": {}}).encode()
    assert _send(viewer[1], "POST", "/orthanc/tools/find", cookie, body=find)[0] == 403  # no CSRF header
    assert _send(viewer[1], "POST", "/orthanc/tools/find", cookie, {"X-CSRF-Token": csrf}, find)[0] == 200
    assert _send(viewer[1], "DELETE", f"/orthanc/studies/{ORTHANC_ID}", cookie, {"X-CSRF-Token": csrf})[0] == 403
    assert orthanc.seen == [("POST", "/tools/find")]


def test_explorer_page_carries_the_csrf_script(viewer, orthanc):
    cookie, _ = _login(viewer, "radiologist")
    status, _, page = _send(viewer[1], "GET", "/orthanc/app/explorer.html", cookie)
    assert status == 200
    assert b'<script src="explorer.js"></script><script src="/viewer-csrf.js"></script>' in page
    assert _send(viewer[1], "GET", "/viewer-csrf.js")[0] == 401


@pytest.mark.parametrize(
    "target",
    ["/\t/evil.example", "/\n/x", "/\r/x", "\t//evil", "//evil", "/\\evil", "https://evil", "/ /evil", "/\x7f/x"],
)
def test_local_path_refuses_other_hosts(target):
    assert _local_path(target) == "/"


def test_local_path_keeps_the_viewers_own_pages():
    assert _local_path("/viewer?StudyInstanceUIDs=1.2") == "/viewer?StudyInstanceUIDs=1.2"
    assert _local_path("/orthanc/app/explorer.html#study?uuid=x") == "/orthanc/app/explorer.html#study?uuid=x"


def test_hand_over_with_a_tab_lands_on_the_viewer(viewer):
    """The redirect Werkzeug would have turned into "//evil.example/x"."""
    cfg, port, ids = viewer
    query = urlsplit(
        viewer_login_url(
            cfg, "http://127.0.0.1:5000/", *ids["radiologist"][:1], "/\t/evil.example/x", ids["radiologist"][1]
        )
    ).query
    status, head, _ = _send(port, "GET", f"/ris-login?{query}")
    assert status == 302 and re.search(r"Location: (\S+)", head).group(1) in ("/", f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("path", ["app/../system", "app/./explorer.html", "app//explorer.html", "app/..%2fsystem"])
def test_the_table_never_matches_a_path_that_is_not_plain(path):
    from ris_app.viewer.routes import allowed_roles

    assert allowed_roles("orthanc", path, "GET") is None
    assert allowed_roles("orthanc", "app/explorer.html", "GET") == {"radiologist", "admin"}


def test_orthanc_is_asked_only_for_encodings_the_client_takes(viewer, orthanc):
    cookie, _ = _login(viewer, "radiologist")
    assert _send(viewer[1], "GET", "/dicom-web/studies", cookie)[0] == 200
    assert _send(viewer[1], "GET", "/dicom-web/studies", cookie, {"Accept-Encoding": "gzip"})[0] == 200
    assert orthanc.encodings == ["identity", "gzip"]
