"""Reports in the REST API (read only, bearer token): for integrators and the EHR side
that wants the text or the PDF of a signed report. Writing stays on the pages, where a
radiologist signs in person."""

from __future__ import annotations

from flask import Blueprint, Response, url_for
from sqlalchemy import select

from ris_app.model import CriticalResult, Report, ReportVersion, Study, User
from ris_app.reporting.lifecycle import report_of, report_of_order
from ris_app.reporting.outbox import task_json, tasks_of
from ris_app.scheduling.orders import find_order
from ris_app.web import db
from ris_app.web.access import INTEGRATOR, api_roles
from ris_app.web.errors import ApiError

bp = Blueprint("report_api", __name__, url_prefix="/api")


def _iso(dt) -> str | None:
    return dt.isoformat() if dt else None


def _who(user: User | None) -> dict | None:
    return {"username": user.username, "full_name": user.full_name} if user is not None else None


def version_json(v: ReportVersion) -> dict:
    return {
        "version": v.version,
        "kind": v.kind,
        "status": v.status,
        "indication": v.indication,
        "technique": v.technique,
        "findings": v.findings,
        "impression": v.impression,
        "addendum": v.addendum,
        "author": _who(v.author),
        "created_at": _iso(v.created_at),
        "updated_at": _iso(v.updated_at),
        "preliminary_by": _who(v.preliminary_by),
        "preliminary_at": _iso(v.preliminary_at),
        "signed_by": _who(v.signed_by),
        "signed_at": _iso(v.signed_at),
        "sop_instance_uid": v.sop_instance_uid or None,
        "sr_instance_uid": v.sr_instance_uid or None,
        "pacs_status": v.pacs_status or None,
        "result_status": v.result_status or None,
        # What the signature queued (PDF, PDF and SR into Orthanc, ORU per destination) and where each stands.
        "tasks": [task_json(t) for t in tasks_of(db(), v)],
        "pdf": url_for("report_api.version_pdf", report_id=v.report_id, version=v.version) if v.pdf else None,
    }


def critical_json(c: CriticalResult) -> dict:
    return {
        "communicated_to": c.communicated_to,
        "method": c.method,
        "communicated_at": _iso(c.communicated_at),
        "note": c.note,
        "recorded_by": _who(c.recorded_by),
        "recorded_at": _iso(c.recorded_at),
    }


def report_json(r: Report) -> dict:
    return {
        "id": r.id,
        "status": r.status,
        "critical": r.critical,
        "study_instance_uid": r.study.study_instance_uid,
        "accession_number": r.study.order.accession_number if r.study.order else r.study.accession_number,
        "author": _who(r.author),
        "created_at": _iso(r.created_at),
        "finalized_at": _iso(r.finalized_at),
        "versions": [version_json(v) for v in r.versions],
        "critical_results": [critical_json(c) for c in r.critical_results],
    }


@bp.get("/studies/<study_instance_uid>/report")
@api_roles(*INTEGRATOR)
def study_report(study_instance_uid: str):
    """The report of a study.

    ---
    get:
      tags: [reports]
      responses:
        200: {description: The report, content: {application/json: {schema: {type: object}}}}
    """
    study = db().scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))
    report = report_of(db(), study) if study is not None else None
    if report is None:
        raise ApiError(404, "no report for this study")
    return report_json(report)


@bp.get("/orders/<accession>/report")
@api_roles(*INTEGRATOR)
def order_report(accession: str):
    """The report of an order.

    ---
    get:
      tags: [reports]
      responses:
        200: {description: The report, content: {application/json: {schema: {type: object}}}}
    """
    report = report_of_order(db(), find_order(db(), accession))
    if report is None:
        raise ApiError(404, "no report for this order")
    return report_json(report)


@bp.get("/reports/<int:report_id>/versions/<int:version>/pdf")
@api_roles(*INTEGRATOR)
def version_pdf(report_id: int, version: int):
    """One signed version of a report as PDF.

    ---
    get:
      tags: [reports]
      responses:
        200: {description: The PDF, content: {application/pdf: {schema: {type: string, format: binary}}}}
    """
    v = db().scalar(select(ReportVersion).where(ReportVersion.report_id == report_id, ReportVersion.version == version))
    if v is None or v.pdf is None:
        raise ApiError(404, "no signed PDF for this report version")
    return Response(v.pdf, mimetype="application/pdf")
