"""Pages of the audit trail, for admins (the privacy officer is one): the filtered trail
with its CSV export, and a patient's "who accessed this record".

Each of them reads patient data and is recorded: audit.read, export.csv.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context

from ris_app.audit import csv_export
from ris_app.audit.api import record
from ris_app.audit.query import AuditFilter, every, patient_access, read_cursor, search, upto_now
from ris_app.clock import site_today, site_zone, zone_name
from ris_app.errors import DomainError
from ris_app.scheduling.orders import find_patient
from ris_app.web import db
from ris_app.web.auth import check_csrf, login_required

bp = Blueprint("audit", __name__)
bp.before_request(check_csrf)
PAGE_SIZE = 100
PATIENT_LIST = 50


@bp.get("/audit")
@login_required("admin")
def audit_page():
    try:
        filt = AuditFilter.from_args(request.args)
        cursor = read_cursor(request.args.get("cursor"))
    except DomainError as err:
        return _page(AuditFilter(), None, error=f"{err.field}: {err.message}"), 400
    page = search(db(), filt, limit=PAGE_SIZE, cursor=cursor)
    record("audit.read", filt, "/audit")
    return _page(filt, page)


def _page(filt: AuditFilter, page, error: str = ""):
    return render_template(
        "audit.html",
        filt=filt,
        args=request.args,
        page=page,
        error=error,
        zone=zone_name(site_zone()),
        first_page=not request.args.get("cursor"),
    )


def _every(filt: AuditFilter, cursor: int):
    """The matching events for the CSV stream, read with a session that is closed when the
    stream ends, whether it was read to the end or the client went away (generator close):
    an abandoned download holds no transaction (on PostgreSQL it would block DDL)."""
    with current_app.extensions["ris_sessions"]() as session:
        yield from every(session, filt, cursor)


@bp.get("/audit.csv")
@login_required("admin")
def audit_csv():
    try:
        filt = AuditFilter.from_args(request.args)
    except DomainError as err:
        return _page(AuditFilter(), None, error=f"{err.field}: {err.message}"), 400
    zone = site_zone()
    cursor = upto_now(db())
    record("export.csv", filt, "/audit.csv")  # before the first line leaves
    db().close()  # the stream reads with a session of its own: nothing waits on this one
    return Response(
        stream_with_context(csv_export.csv_lines(_every(filt, cursor), zone)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{csv_export.filename(site_today())}"'},
    )


@bp.get("/patients/<mrn>/access")
@login_required("admin")
def patient_access_page(mrn: str):
    patient, page = find_patient(db(), mrn), patient_access(db(), mrn, PATIENT_LIST)
    record("audit.read", AuditFilter(mrn=mrn), "/patients/<mrn>/access")
    return render_template("patient_access.html", mrn=mrn, patient=patient, page=page, zone=zone_name(site_zone()))
