"""Pages of the audit trail, for admins (the privacy officer is one): the filtered trail
with its CSV export, and a patient's "who accessed this record".

Each of them reads patient data and is recorded: audit.read, export.csv.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, stream_with_context

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


@bp.get("/audit.csv")
@login_required("admin")
def audit_csv():
    try:
        filt = AuditFilter.from_args(request.args)
    except DomainError as err:
        return _page(AuditFilter(), None, error=f"{err.field}: {err.message}"), 400
    session, zone = db(), site_zone()
    cursor = upto_now(session)
    record("export.csv", filt, "/audit.csv")  # before the first line leaves
    return Response(
        stream_with_context(csv_export.csv_lines(every(session, filt, cursor), zone)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{csv_export.filename(site_today())}"'},
    )


@bp.get("/patients/<mrn>/access")
@login_required("admin")
def patient_access_page(mrn: str):
    patient, page = find_patient(db(), mrn), patient_access(db(), mrn, PATIENT_LIST)
    record("audit.read", AuditFilter(mrn=mrn), "/patients/<mrn>/access")
    return render_template("patient_access.html", mrn=mrn, patient=patient, page=page, zone=zone_name(site_zone()))
