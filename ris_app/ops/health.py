"""The health check operators and load balancers probe: the database, Orthanc, the sync."""

from __future__ import annotations

import requests
from flask import Blueprint, jsonify
from sqlalchemy import select
from sqlalchemy import text as sql_text

from ris_app.model import Study
from ris_app.orthanc.client import orthanc_request
from ris_app.web import db, settings
from ris_app.web.access import open_route

bp = Blueprint("health", __name__, url_prefix="/api")


@bp.get("/health")
@open_route
def health():
    """Liveness and readiness of the RIS and its view of Orthanc (no token needed).

    ---
    get:
      tags: [meta]
      responses:
        200: {description: Healthy, content: {application/json: {schema: {type: object}}}}
        503: {description: The database is unreachable, content: {application/json: {schema: {type: object}}}}
    """
    status = {"status": "ok", "database": "ok", "orthanc": "unknown"}
    code = 200
    try:
        db().execute(sql_text("SELECT 1"))
    except Exception as exc:  # report, do not crash the probe
        status.update(status="error", database=f"error: {exc.__class__.__name__}")
        code = 503
    try:
        r = orthanc_request(settings(), "GET", "/system", timeout=1)
        status["orthanc"] = "ok" if r.ok else f"http {r.status_code}"
    except requests.RequestException:
        status["orthanc"] = "unreachable"
    last = (
        db().scalar(select(Study.last_received_at).order_by(Study.last_received_at.desc()).limit(1))
        if code == 200
        else None
    )
    status["last_study_event"] = last.isoformat() if last else None
    if code == 200:
        from ris_app.tracking.api import sync_summary

        status["sync"] = sync_summary()
    return jsonify(status), code
