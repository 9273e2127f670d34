"""The image viewer part: OHIF's prebuilt viewer served at the root of its own port, with
Orthanc's DICOMweb (/dicom-web/) and Orthanc Explorer (/orthanc/) reverse-proxied behind
the RIS login. Orthanc itself stays bound to localhost, without a password of its own.

A RIS page hands the browser over with a short-lived signed token (`viewer_login_url`);
the viewer keeps its own session cookie (its own name: cookies ignore ports, and the RIS's
cookie on the same host must not be overwritten). Every proxied request re-checks that
the user still exists, is active, and has a role allowed to see images. An outside
colleague holding a second-opinion share link gets a session of another kind, limited to
one study (viewer/share.py, routes.share_query).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import requests
from flask import Flask, Response, abort, g, redirect, request, send_from_directory, session
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker
from ris_app.viewer.audit import StudyViews
from ris_app.viewer.routes import (
    READ,
    PathRefused,
    ShareRefused,
    allowed_roles,
    hide_report,
    plain_path,
    share_answer_filtered,
    share_query,
)
from ris_app.viewer.share import install_share
from ris_app.web import login_guard
from ris_app.web.auth import safe_next

log = logging.getLogger(__name__)

TOKEN_SALT = "orthanc-ris-viewer-login"
TOKEN_MAX_AGE = 120  # seconds between the click in the RIS and the viewer's answer
SESSION_MAX_AGE = 12 * 3600  # a viewer session outlives no working day; the RIS hands over again
COOKIE_NAME = "orthanc_ris_viewer"
# Response headers worth passing back from Orthanc; hop-by-hop ones are not.
PASS_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "ETag",
    "Last-Modified",
    "Cache-Control",
    "Content-Encoding",
    "Location",
)
CHUNK = 256 * 1024
# A share session without the report gets its JSON answers (searches, metadata) filtered,
# so read whole first: a study's metadata is about 10-20 kB per instance, so this holds a
# study of several thousand instances; a larger answer is refused rather than passed on.
FILTERED_MAX = 128 * 1024 * 1024
CSRF_HEADER = "X-CSRF-Token"
PROXY_PREFIXES = ("/dicom-web", "/orthanc", "/wado")
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# Explorer's page gets the session's CSRF header on its own ajax calls through this script,
# loaded right after explorer.js (which set up jQuery's defaults).
EXPLORER_PAGE = "app/explorer.html"
EXPLORER_MARKER = '<script src="explorer.js"></script>'
CSRF_SCRIPT_TAG = '<script src="/viewer-csrf.js"></script>'

# Appended to OHIF's own app-config.js: one data source, Orthanc's DICOMweb, same origin.
CONFIG_OVERRIDE = """
;(function () {
  var root = window.location.origin + '/dicom-web';
  window.config.dataSources = [{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {
      friendlyName: 'Orthanc (through orthanc-ris)',
      name: 'orthanc',
      wadoUriRoot: root, qidoRoot: root, wadoRoot: root,
      qidoSupportsIncludeField: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: false,
      supportsWildcard: true,
      dicomUploadEnabled: false,
      omitQuotationForMultipartRequest: true,
      bulkDataURI: { enabled: true }
    }
  }];
  window.config.defaultDataSourceName = 'orthanc';
  window.config.showWarningMessageForCrossOrigin = false;
  window.config.showCPUFallbackMessage = false;
  window.config.investigationalUseDialog = { option: 'never' };
})();
"""
# A share session sees one study: no study list to wander to.
SHARE_CONFIG_OVERRIDE = "\nwindow.config.showStudyList = false;\n"


def _local_path(target: str) -> str:
    """`target` when it is a path on this host, else "/" (no open redirect: the same rule
    as the RIS's login, web/auth.py safe_next)."""
    return safe_next(target, "/")


def _raw_path() -> str:
    """The request path as the client sent it, before any percent-decoding (gunicorn and
    Werkzeug keep it in RAW_URI / REQUEST_URI)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw is None:
        return quote(request.environ.get("PATH_INFO", ""), safe="/,")
    return raw.split("?", 1)[0]


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def viewer_base_url(cfg: Config, ris_host_url: str) -> str:
    """Where browsers reach the viewer: the setting, else the RIS page's host name on the
    viewer port."""
    if cfg.viewer_url:
        return cfg.viewer_url
    parts = urlsplit(ris_host_url)
    return f"{parts.scheme or 'http'}://{parts.hostname or '127.0.0.1'}:{cfg.viewer_port}"


def viewer_login_url(cfg: Config, ris_host_url: str, user_id: int, next_path: str, ris_session: str = "") -> str:
    """A one-click hand-over from a RIS page to the viewer, landing on `next_path`.
    `ris_session` names the RIS login (its row key): the viewer session ends with it."""
    token = _serializer(cfg.secret_key).dumps({"uid": user_id, "rs": ris_session})
    return f"{viewer_base_url(cfg, ris_host_url)}/ris-login?token={token}&next={quote(next_path, safe='')}"


def ohif_study_path(study_instance_uid: str) -> str:
    return f"/viewer?StudyInstanceUIDs={quote(study_instance_uid)}"


def explorer_study_path(orthanc_id: str) -> str:
    return f"/orthanc/app/explorer.html#study?uuid={quote(orthanc_id)}"


def create_viewer_app(config: Config | None = None) -> Flask:
    """The viewer part's WSGI app."""
    cfg = config or Config.from_env()
    app = Flask(__name__, static_folder=None, template_folder="../templates")
    # "//" must reach the proxy's path check (refused), not be redirected to a merged path.
    app.url_map.merge_slashes = False
    app.config.update(
        SECRET_KEY=cfg.secret_key,
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    orthanc = requests.Session()
    if cfg.orthanc_username:  # the service account: the proxy logs in to Orthanc, users never do
        orthanc.auth = (cfg.orthanc_username, cfg.orthanc_password)
    ohif_dir = Path(cfg.ohif_dir)
    current_share = install_share(app, sessions, ohif_study_path)
    views = StudyViews(sessions)  # the audit trail's study.view events

    def user_role() -> str | None:
        uid = session.get("uid")
        if not uid or time.time() - session.get("since", 0) > SESSION_MAX_AGE:
            return None
        with sessions() as s:
            # The RIS login it came from must still be alive: a logout or a password
            # reset in the RIS ends image access too.
            user = login_guard.session_alive(s, session.get("rs", ""))
            if user is None or user.id != uid:
                return None
            g.viewer_user = user.username
            return user.role

    def gate(prefix: str, path: str) -> None:
        """Refuse, before anything reaches Orthanc, a user without a session, a route or
        method outside the table or the user's role, and a write without the session's
        CSRF header. (Paths that are not plain were refused before routing.) A share
        session reaches DICOMweb only, through share_gate."""
        g.proxied = (prefix, path)
        if current_share() is not None:
            log.warning("viewer proxy refused a share session's %s outside DICOMweb", request.method)
            abort(403)
        role = user_role()
        if role is None:
            abort(401)
        roles = allowed_roles(prefix, path, request.method)
        if roles is None:
            abort(405 if any(allowed_roles(prefix, path, m) for m in PROXY_METHODS) else 404)
        if role not in roles:
            abort(403)
        if request.method not in READ:
            expected = session.get("csrf", "")
            sent = request.headers.get(CSRF_HEADER, "")
            if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                log.warning("viewer proxy refused a %s without a valid CSRF header", request.method)
                abort(403)

    def ris_login_redirect():
        host = urlsplit(request.host_url).hostname or "127.0.0.1"
        return redirect(f"http://{host}:{cfg.http_port}/login?next=/reading")

    def share_gate(share, path: str) -> list[tuple[str, str]]:
        """A share session's DICOMweb request: the query to forward, or 403."""
        try:
            query = parse_qsl(request.query_string.decode())
            return share_query(path, request.method, query, share.study_uid, share.hiding)
        except (ShareRefused, UnicodeDecodeError) as exc:
            log.warning("viewer proxy refused a share session's %s: %s", request.method, exc)
            abort(403)

    def proxy(url: str, params: list[tuple[str, str]] | None = None, hiding=None) -> Response:
        """Forward the request; with `hiding` (a share session without the report, on a
        path whose answer is a DICOM JSON list) the answer is read whole and filtered."""
        passed = ("accept", "if-none-match", "if-modified-since", "range", "content-type") if hiding is None else ()
        headers = {k: v for k, v in request.headers.items() if k.lower() in passed}
        # The body is passed through as Orthanc encoded it: only in an encoding the client
        # asked for (requests would otherwise ask for gzip on every client's behalf).
        headers["Accept-Encoding"] = request.headers.get("Accept-Encoding", "identity")
        if hiding is not None:  # JSON (not XML), whole and plain: what hide_report reads
            headers.update({"Accept": "application/dicom+json", "Accept-Encoding": "identity"})
        # orthanc-dicomweb writes BulkDataURIs for the host the browser asked (RFC 7239).
        headers["Forwarded"] = f"host={request.host};proto={request.scheme}"
        try:
            upstream = orthanc.request(
                request.method,
                url,
                params=request.query_string.decode() or None if params is None else params,
                data=request.get_data() if request.method in ("POST", "PUT") else None,
                headers=headers,
                stream=True,
                timeout=(5, 300),
            )
        except requests.RequestException as exc:
            log.warning("Orthanc unreachable from the viewer: %s", type(exc).__name__)
            return Response("Orthanc is unreachable\n", status=502, mimetype="text/plain")
        if hiding is not None:
            return filtered(upstream, hiding)
        out = {k: v for k, v in upstream.headers.items() if k in PASS_HEADERS}
        return Response(
            upstream.raw.stream(CHUNK, decode_content=False),
            status=upstream.status_code,
            headers=out,
            direct_passthrough=True,
        )

    def filtered(upstream: requests.Response, hiding) -> Response:
        """Orthanc's JSON answer without the report's objects (routes.hide_report); an
        error passes as it is, anything that cannot be filtered is refused (502)."""
        with upstream:
            if upstream.status_code != 200 or request.method == "HEAD":
                out = {k: v for k, v in upstream.headers.items() if k in ("Content-Type", "Content-Length")}
                return Response(upstream.content, status=upstream.status_code, headers=out)
            if int(upstream.headers.get("Content-Length") or 0) > FILTERED_MAX:
                return too_large()
            body = bytearray()
            for chunk in upstream.iter_content(CHUNK):
                body += chunk
                if len(body) > FILTERED_MAX:
                    return too_large()
        try:
            answer = hide_report(bytes(body), hiding)
        except ValueError:  # also json's and UnicodeDecodeError
            log.warning("viewer proxy refused a share session's answer it could not filter")
            return Response("Orthanc's answer could not be filtered\n", status=502, mimetype="text/plain")
        return Response(answer, mimetype="application/dicom+json", headers={"Cache-Control": "no-store"})

    def too_large() -> Response:
        log.warning("viewer proxy refused a share session's answer over %d bytes", FILTERED_MAX)
        return Response("The answer is too large for a shared study\n", status=502, mimetype="text/plain")

    @app.before_request
    def _plain_proxy_paths():
        """Proxy paths are checked before routing picks a view: "/dicom-web//x" would
        otherwise fall through to OHIF's catch-all route instead of being refused."""
        raw = _raw_path()
        # Both forms: "/%6frthanc/app/../x" routes to the proxy once decoded.
        if raw.startswith(PROXY_PREFIXES) or request.path.startswith(PROXY_PREFIXES):
            try:
                plain_path(raw)
                plain_path(request.path)
            except PathRefused as exc:
                log.warning("viewer proxy refused a %s request: %s", request.method, exc)
                abort(400)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "ohif": (ohif_dir / "index.html").exists()}

    @app.get("/ris-login")
    def ris_login():
        try:
            data = _serializer(cfg.secret_key).loads(request.args.get("token", ""), max_age=TOKEN_MAX_AGE)
        except BadSignature:
            return ris_login_redirect()
        session.clear()
        session["uid"] = int(data["uid"])
        session["rs"] = str(data.get("rs", ""))
        session["since"] = int(time.time())
        session["csrf"] = secrets.token_urlsafe(32)
        return redirect(_local_path(request.args.get("next", "/")))

    @app.route("/dicom-web/<path:path>", methods=PROXY_METHODS, provide_automatic_options=False)
    def dicom_web(path: str):
        share = current_share()
        if share is not None:
            hiding = share.hiding if share_answer_filtered(path) else None
            return proxy(f"{cfg.orthanc_url}/dicom-web/{path}", share_gate(share, path), hiding)
        gate("dicom-web", path)
        return proxy(f"{cfg.orthanc_url}/dicom-web/{path}")

    @app.route("/wado", methods=PROXY_METHODS, provide_automatic_options=False)
    def wado_uri():
        gate("wado", "")
        return proxy(f"{cfg.orthanc_url}/wado")

    @app.route("/orthanc/", defaults={"path": ""}, methods=["GET"])
    @app.route("/orthanc/<path:path>", methods=PROXY_METHODS, provide_automatic_options=False)
    def explorer(path: str):
        if not path:
            gate("orthanc", "app/explorer.html")
            return redirect("/orthanc/app/explorer.html")
        gate("orthanc", path)
        if path == EXPLORER_PAGE and request.method == "GET":
            return explorer_page()
        return proxy(f"{cfg.orthanc_url}/{path}")

    def explorer_page() -> Response:
        """Explorer's page with the script that adds the CSRF header to its writes."""
        try:
            upstream = orthanc.get(f"{cfg.orthanc_url}/{EXPLORER_PAGE}", timeout=(5, 30))
        except requests.RequestException as exc:
            log.warning("Orthanc unreachable from the viewer: %s", type(exc).__name__)
            return Response("Orthanc is unreachable\n", status=502, mimetype="text/plain")
        html = upstream.text
        if EXPLORER_MARKER in html:
            html = html.replace(EXPLORER_MARKER, EXPLORER_MARKER + CSRF_SCRIPT_TAG, 1)
        else:
            html = html.replace("</body>", CSRF_SCRIPT_TAG + "</body>", 1)
        return Response(html, status=upstream.status_code, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/viewer-csrf.js")
    def csrf_script():
        if user_role() is None:
            abort(401)
        token = session.get("csrf", "")
        script = (
            f"window.orthancRisCsrf = {token!r};\n"
            "if (window.jQuery) { jQuery.ajaxPrefilter(function (o, orig, xhr) {\n"
            f"  xhr.setRequestHeader('{CSRF_HEADER}', window.orthancRisCsrf); }}); }}\n"
        )
        return Response(script, mimetype="application/javascript", headers={"Cache-Control": "no-store"})

    @app.get("/app-config.js")
    def app_config():
        share = current_share()
        if share is None and user_role() is None:
            abort(401)
        shipped = (
            (ohif_dir / "app-config.js").read_text() if (ohif_dir / "app-config.js").exists() else "window.config={};"
        )
        return Response(
            shipped + CONFIG_OVERRIDE + (SHARE_CONFIG_OVERRIDE if share else ""),
            mimetype="application/javascript",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/", defaults={"path": ""})
    @app.get("/<path:path>")
    def ohif(path: str):
        share = current_share()
        if share is None and user_role() is None:
            return ris_login_redirect()
        if share is not None and not path:  # the study list: the one study instead
            return redirect(ohif_study_path(share.study_uid))
        if not (ohif_dir / "index.html").exists():
            return Response("The OHIF viewer is not installed: run `make setup`.\n", status=503, mimetype="text/plain")
        if path and (ohif_dir / path).is_file():
            return send_from_directory(ohif_dir, path)
        # OHIF routes (/viewer, /local, ...) are client-side: every one gets index.html.
        return send_from_directory(ohif_dir, "index.html", max_age=0)

    @app.after_request
    def _log(response):
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        log.debug("%s %s %d", request.method, rule, response.status_code)
        if "proxied" in g:
            views.after(response, *g.proxied, g.get("viewer_user", ""), session.get("rs", ""))
        return response

    return app
