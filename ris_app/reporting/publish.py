"""What signing a report sends out, and the retry of it: the PDF, the two DICOM instances
stored into the study in Orthanc, and the result message to the EHR.

`publish_signed_version` runs after the signature is committed: a PACS or EHR that is down
leaves the signature in place, records the error on the version and can be retried.
"""

from __future__ import annotations

import logging

import requests
from sqlalchemy.orm import Session

from ris_app.config import Config
from ris_app.hl7.outbound import send_report_result
from ris_app.model import FINAL, Report, ReportVersion
from ris_app.orthanc.client import orthanc_request
from ris_app.reporting.documents import basic_text_sr, dicom_bytes, encapsulated_pdf
from ris_app.reporting.header import header_for
from ris_app.reporting.lifecycle import report_text
from ris_app.reporting.pdf import render_pdf
from ris_app.scheduling.names import pn_of_display_name

log = logging.getLogger(__name__)


def store_in_orthanc(cfg: Config, data: bytes, timeout: float = 30) -> str:
    """POST one DICOM instance to Orthanc; returns its Orthanc ID."""
    r = orthanc_request(
        cfg, "POST", "/instances", data=data, timeout=timeout, headers={"Content-Type": "application/dicom"}
    )
    r.raise_for_status()
    return r.json()["ID"]


def orthanc_study(cfg: Config, orthanc_id: str) -> dict | None:
    try:
        r = orthanc_request(cfg, "GET", f"/studies/{orthanc_id}", timeout=10)
        return r.json() if r.status_code == 200 else None
    except requests.RequestException:
        return None


def notify_report_result(session: Session, report_version: ReportVersion) -> str:
    """Send the signed version to the EHR as an ORU^R01 (an addendum sends the amended
    report, result status C). The one place the HL7 interface is called from: it queues
    the message in the HL7 outbox (ris_app.hl7.outbound.send_report_result), which
    delivers it. Records and returns the status: "sent: ..." once queued (a PACS retry then
    does not queue it twice), "pending: ..." when it cannot be yet."""
    report = report_version.report
    order = report.study.order
    if order is None:
        status = "pending: the study has no order to report to"
    else:
        signer = report_version.signed_by
        rows = send_report_result(
            session,
            order,
            report_plain_text(report, report_version),
            amended=report_version.version > 1,
            radiologist=pn_of_display_name(signer.full_name or signer.username) if signer else "",
            signed_at=report_version.signed_at,
            report_id=f"{report.id}.{report_version.version}",
        )
        status = (
            f"sent: ORU^R01 queued for {len(rows)} destination(s)" if rows else "pending: no HL7 destination configured"
        )
    report_version.result_status = status
    log.info("report %d version %d: result message %s", report.id, report_version.version, status)
    return status


def report_plain_text(report: Report, upto: ReportVersion) -> str:
    """The report as the EHR shows it: headed sections, then the signed addenda."""
    return "\n\n".join(
        f"{heading.upper()}:\n{text.strip()}" for heading, text in report_text(report, upto) if text.strip()
    )


# --------------------------------------------------------------------------- all of it
def publish_signed_version(session: Session, version: ReportVersion, cfg: Config) -> ReportVersion:
    """Make the PDF, store it and the SR into the study in Orthanc, send the result to the
    EHR. Failures are recorded on the version (pacs_status, result_status) and do not
    raise; a retry sends the result again only if it was not sent."""
    if version.status != FINAL:
        raise ValueError("only a signed (FINAL) version is published")
    report = version.report
    o_study = orthanc_study(cfg, report.study.orthanc_id) if report.study.orthanc_id else None
    header = header_for(report, o_study)
    header.institution = cfg.institution
    version.pdf = render_pdf(report, version, header, cfg.institution)
    pdf_ds = encapsulated_pdf(version.pdf, header, version)
    version.sop_instance_uid = pdf_ds.SOPInstanceUID
    previous = [v for v in report.versions if v.version < version.version and v.sr_instance_uid]
    sr_ds = basic_text_sr(report, version, header, previous[-1].sr_instance_uid if previous else "")
    version.sr_instance_uid = sr_ds.SOPInstanceUID
    try:
        # Storing the same SOP instance again is harmless (a retry after a partial failure).
        version.orthanc_instance_id = store_in_orthanc(cfg, dicom_bytes(pdf_ds))
        store_in_orthanc(cfg, dicom_bytes(sr_ds))
        version.pacs_status = "stored"
        log.info(
            "report %d version %d stored in Orthanc as %s", report.id, version.version, version.orthanc_instance_id
        )
    except (requests.RequestException, KeyError, ValueError) as exc:
        version.pacs_status = f"error: {type(exc).__name__}: {exc}"[:255]
        log.warning("report %d version %d not stored in Orthanc: %s", report.id, version.version, type(exc).__name__)
    if not version.result_status.startswith("sent"):
        notify_report_result(session, version)
    session.flush()
    return version
