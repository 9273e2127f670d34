"""What signing a report sends out: the PDF (reportlab); the same report stored into the
study in Orthanc twice, as an Encapsulated PDF (what people read) and as a Basic Text SR
(what systems read); and the result message to the EHR.

`publish_signed_version` runs after the signature is committed: a PACS or EHR that is down
leaves the signature in place, records the error on the version and can be retried.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pydicom
import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy.orm import Session

from ris_app.clock import to_site, utc_offset, utcnow
from ris_app.config import Config
from ris_app.hl7.outbound import send_report_result
from ris_app.model import FINAL, Report, ReportVersion
from ris_app.orthanc.client import orthanc_request
from ris_app.reporting.lifecycle import report_text, study_procedure

log = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
# LOINC "Diagnostic imaging study" names the document (ConceptNameCodeSequence).
DOCUMENT_CONCEPT = ("18748-4", "LN", "Diagnostic imaging study")
REPORT_SERIES_NUMBER = 9901  # keeps the report series after the image series in viewers
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@dataclass
class ReportHeader:
    """The patient and exam a report is about, as printed and as encoded in DICOM."""

    patient_name: str  # DICOM PN: Family^Given
    patient_id: str
    birth_date: str  # YYYYMMDD or ""
    sex: str
    accession_number: str
    study_instance_uid: str
    study_date: str
    study_time: str
    study_id: str
    referring_physician: str
    procedure: str
    modality: str
    institution: str = ""

    @property
    def display_name(self) -> str:
        family, _, given = self.patient_name.partition("^")
        return f"{family}, {given.replace('^', ' ')}".strip(", ")


def header_for(report: Report, orthanc_study: dict | None = None) -> ReportHeader:
    """The header from the RIS (order and patient when linked), overlaid by the values
    Orthanc holds for the study so the new instance matches the images it joins."""
    study = report.study
    order = study.order
    _code, description, modality = study_procedure(study)
    if order is not None:
        p = order.patient
        header = ReportHeader(
            patient_name=f"{p.family_name}^{p.given_name}".rstrip("^"), patient_id=p.mrn,
            birth_date=p.birth_date.strftime("%Y%m%d") if p.birth_date else "", sex=p.sex if p.sex != "U" else "",
            accession_number=order.accession_number, referring_physician=order.referring_physician,
            study_instance_uid=study.study_instance_uid, study_date=study.study_date, study_time="", study_id="",
            procedure=description, modality=modality)
    else:
        header = ReportHeader(
            patient_name=study.patient_name, patient_id=study.patient_mrn, birth_date="", sex="",
            accession_number=study.accession_number, referring_physician="",
            study_instance_uid=study.study_instance_uid, study_date=study.study_date, study_time="", study_id="",
            procedure=description or study.study_description, modality=modality)
    if orthanc_study:
        tags = {**orthanc_study.get("PatientMainDicomTags", {}), **orthanc_study.get("MainDicomTags", {})}
        for attr, keyword in (("patient_name", "PatientName"), ("patient_id", "PatientID"),
                              ("birth_date", "PatientBirthDate"), ("sex", "PatientSex"),
                              ("accession_number", "AccessionNumber"), ("study_date", "StudyDate"),
                              ("study_time", "StudyTime"), ("study_id", "StudyID"),
                              ("referring_physician", "ReferringPhysicianName")):
            if tags.get(keyword):  # an empty tag in the images does not blank the RIS's value
                setattr(header, attr, tags[keyword])
    return header


# --------------------------------------------------------------------------- PDF
def signed_text(when: datetime) -> str:
    """A signing time as a reader of the PDF wants it: the site's time and its zone
    (2026-11-30 14:30 CET; UTC on a site in UTC)."""
    local = to_site(when)
    return f"{local.strftime('%Y-%m-%d %H:%M')} {local.tzname() or utc_offset(local)}"


def _fonts() -> tuple[str, str]:
    """DejaVu (Debian fonts-dejavu-core) prints accented and Cyrillic/Greek names; the
    built-in Helvetica is the fallback."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if all(Path(f).exists() for f in FONT_FILES):
        if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("DejaVuSans", FONT_FILES[0]))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", FONT_FILES[1]))
        return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _para(text: str) -> str:
    return escape(text).replace("\n", "<br/>")


def _fmt_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def render_pdf(report: Report, version: ReportVersion, header: ReportHeader, institution: str = "") -> bytes:
    """The signed report as PDF: patient, exam, the report text, the signature(s)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13)
    h1 = ParagraphStyle("h1", fontName=bold, fontSize=15, leading=19, spaceAfter=4)
    h2 = ParagraphStyle("h2", fontName=bold, fontSize=11, leading=14, spaceBefore=8, spaceAfter=2)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.grey)

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=f"Radiology report {header.accession_number}",
                            author="orthanc-ris", subject=header.procedure)
    amended = version.version > 1
    story = [Paragraph(_para(institution or "Radiology report"), h1)]
    if amended:
        story.append(Paragraph(_para(f"AMENDED: includes addendum {version.version - 1}"), h2))
    rows = [
        ("Patient", header.display_name, "Patient ID", header.patient_id),
        ("Birth date", _fmt_date(header.birth_date) or "—", "Sex", header.sex or "—"),
        ("Exam", header.procedure or "—", "Modality", header.modality or "—"),
        ("Accession", header.accession_number or "—", "Study date", _fmt_date(header.study_date) or "—"),
        ("Referring", (header.referring_physician or "—").replace("^", " "), "Status", FINAL),
    ]
    table = Table([[Paragraph(_para(c), body) for c in r] for r in rows],
                  colWidths=[25 * mm, 60 * mm, 25 * mm, 64 * mm])
    table.setStyle(TableStyle([("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
                               ("BACKGROUND", (2, 0), (2, -1), colors.whitesmoke),
                               ("GRID", (0, 0), (-1, -1), 0.4, colors.lightgrey),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, Spacer(1, 4 * mm)]
    for heading, text in report_text(report, upto=version):
        story.append(Paragraph(_para(heading), h2))
        story.append(Paragraph(_para(text.strip() or "—"), body))
    story.append(Spacer(1, 6 * mm))
    for v in report.versions:
        if v.version > version.version or v.status != FINAL or v.signed_at is None:
            continue
        who = v.signed_by.full_name or v.signed_by.username if v.signed_by else "unknown"
        what = "Report" if v.version == 1 else f"Addendum {v.version - 1}"
        story.append(Paragraph(_para(f"{what} electronically signed by {who} on {signed_text(v.signed_at)}"),
                               body))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(_para(f"Study {header.study_instance_uid}"), small))
    doc.build(story)
    return buf.getvalue()


# --------------------------------------------------------------------------- DICOM
def encapsulated_pdf(pdf: bytes, header: ReportHeader, version: ReportVersion,
                     when: datetime | None = None) -> Dataset:
    """An Encapsulated PDF instance (PS3.3 A.45.1) in the report's study, own series."""
    when = to_site(when or version.signed_at or utcnow())
    ds = _new_instance(ENCAPSULATED_PDF_STORAGE, version.sop_instance_uid, header, when)
    # Encapsulated Document Series, General Equipment, SC Equipment.
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = report_series_uid(header.study_instance_uid, "pdf")
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = "Radiology report (PDF)"
    ds.Manufacturer = "orthanc-ris"
    ds.ConversionType = "WSD"  # workstation: made by software, not scanned
    # Encapsulated Document module.
    ds.InstanceNumber = version.version
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the PDF shows the patient's name and ID
    ds.DocumentTitle = "Radiology report" if version.version == 1 else f"Radiology report, addendum {version.version - 1}"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = DOCUMENT_CONCEPT
    ds.ConceptNameCodeSequence = Sequence([concept])
    ds.VerificationFlag = "VERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"
SR_SERIES_NUMBER = 9902
# TID 2000 (Basic Diagnostic Imaging Report): headings from CID 7001, text items from CID 7002.
SR_TITLE = ("18748-4", "LN", "Diagnostic Imaging Report")
SR_SECTIONS = {
    "indication": (("121109", "DCM", "Indications for Procedure"), ("121109", "DCM", "Indications for Procedure")),
    "technique": (("121064", "DCM", "Current Procedure Descriptions"), ("121065", "DCM", "Procedure Description")),
    "findings": (("121070", "DCM", "Findings"), ("121071", "DCM", "Finding")),
    "impression": (("121072", "DCM", "Impressions"), ("121073", "DCM", "Impression")),
}
SR_ADDENDUM = (("121078", "DCM", "Addendum"), ("121078", "DCM", "Addendum"))


def _code(value: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
    return item


def _text_item(concept: tuple[str, str, str], text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = Sequence([_code(concept)])
    item.TextValue = text
    return item


def _section(heading: tuple[str, str, str], concept: tuple[str, str, str], text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "CONTAINER"
    item.ConceptNameCodeSequence = Sequence([_code(heading)])
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = Sequence([_text_item(concept, text)])
    return item


def report_series_uid(study_instance_uid: str, kind: str) -> str:
    """One series per study for each kind of report instance ("pdf", "sr"): the same UID
    every time, so every version of a report lands in one series."""
    return generate_uid(entropy_srcs=[study_instance_uid, "orthanc-ris", kind])


def basic_text_sr(report: Report, version: ReportVersion, header: ReportHeader,
                  predecessor_sop_uid: str = "") -> Dataset:
    """The signed report as a Basic Text SR (TID 2000 headings), VERIFIED by its signer.
    An addendum's SR holds the whole amended report and names the one it amends."""
    when = to_site(version.signed_at or utcnow())
    ds = _new_instance(BASIC_TEXT_SR_STORAGE, version.sr_instance_uid, header, when)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = report_series_uid(header.study_instance_uid, "sr")
    ds.SeriesNumber = SR_SERIES_NUMBER
    ds.SeriesDescription = "Radiology report (SR)"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.Manufacturer = "orthanc-ris"
    ds.InstanceNumber = version.version
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    signer = version.signed_by
    observer = Dataset()
    observer.VerifyingObserverName = (signer.full_name or signer.username).replace(" ", "^", 1) if signer else "UNKNOWN"
    observer.VerifyingObserverIdentificationCodeSequence = Sequence([])
    observer.VerifyingOrganization = header.institution or "Radiology"
    observer.VerificationDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.VerifyingObserverSequence = Sequence([observer])
    request_item = Dataset()
    request_item.ReferencedStudySequence = Sequence([])
    request_item.StudyInstanceUID = header.study_instance_uid
    request_item.AccessionNumber = header.accession_number
    request_item.RequestedProcedureID = ""
    request_item.RequestedProcedureDescription = header.procedure[:64]
    request_item.RequestedProcedureCodeSequence = Sequence([])
    request_item.PlacerOrderNumberImagingServiceRequest = ""
    request_item.FillerOrderNumberImagingServiceRequest = ""
    ds.ReferencedRequestSequence = Sequence([request_item])
    ds.PerformedProcedureCodeSequence = Sequence([])
    if predecessor_sop_uid:
        sop = Dataset()
        sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = BASIC_TEXT_SR_STORAGE, predecessor_sop_uid
        series = Dataset()
        series.SeriesInstanceUID = ds.SeriesInstanceUID
        series.ReferencedSOPSequence = Sequence([sop])
        study = Dataset()
        study.StudyInstanceUID = header.study_instance_uid
        study.ReferencedSeriesSequence = Sequence([series])
        ds.PredecessorDocumentsSequence = Sequence([study])
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2000"
    ds.ContentTemplateSequence = Sequence([template])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(SR_TITLE)])
    ds.ContinuityOfContent = "SEPARATE"
    original = report.versions[0]
    content = [_section(*SR_SECTIONS[name], getattr(original, name).strip())
               for name in SR_SECTIONS if getattr(original, name).strip()]
    content += [_section(*SR_ADDENDUM, v.addendum.strip()) for v in report.versions[1:]
                if v.version <= version.version and v.status == FINAL and v.addendum.strip()]
    ds.ContentSequence = Sequence(content)
    return ds


def _new_instance(sop_class: str, sop_instance_uid: str, header: ReportHeader, when: datetime) -> Dataset:
    """SOP Common, file meta, and the Patient and General Study modules with the study's own
    values. A version keeps its SOP Instance UID, so a retry stores the same instance.
    `when` is the signing time in the site zone: every DA/TM/DT of the instance is that wall
    time, and TimezoneOffsetFromUTC says which instant it is."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.InstanceCreationDate, ds.InstanceCreationTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.TimezoneOffsetFromUTC = utc_offset(when)
    _patient_and_study(ds, header)
    return ds


def _patient_and_study(ds: Dataset, header: ReportHeader) -> None:
    """Patient and General Study modules: the study's own values."""
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date
    ds.PatientSex = header.sex if header.sex in ("M", "F", "O") else ""
    ds.StudyInstanceUID = header.study_instance_uid
    ds.StudyDate = header.study_date
    ds.StudyTime = header.study_time
    ds.ReferringPhysicianName = header.referring_physician
    ds.StudyID = header.study_id
    ds.AccessionNumber = header.accession_number


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def store_in_orthanc(cfg: Config, data: bytes, timeout: float = 30) -> str:
    """POST one DICOM instance to Orthanc; returns its Orthanc ID."""
    r = orthanc_request(cfg, "POST", "/instances", data=data, timeout=timeout,
                        headers={"Content-Type": "application/dicom"})
    r.raise_for_status()
    return r.json()["ID"]


def orthanc_study(cfg: Config, orthanc_id: str) -> dict | None:
    try:
        r = orthanc_request(cfg, "GET", f"/studies/{orthanc_id}", timeout=10)
        return r.json() if r.status_code == 200 else None
    except requests.RequestException:
        return None


# --------------------------------------------------------------------------- EHR
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
            session, order, report_plain_text(report, report_version), amended=report_version.version > 1,
            radiologist=_person_name(signer.full_name or signer.username) if signer else "",
            signed_at=report_version.signed_at, report_id=f"{report.id}.{report_version.version}")
        status = (f"sent: ORU^R01 queued for {len(rows)} destination(s)" if rows
                  else "pending: no HL7 destination configured")
    report_version.result_status = status
    log.info("report %d version %d: result message %s", report.id, report_version.version, status)
    return status


def report_plain_text(report: Report, upto: ReportVersion) -> str:
    """The report as the EHR shows it: headed sections, then the signed addenda."""
    return "\n\n".join(f"{heading.upper()}:\n{text.strip()}" for heading, text in report_text(report, upto)
                        if text.strip())


def _person_name(full_name: str) -> str:
    """A user's display name ("Ada Reader") as a DICOM PN (Reader^Ada)."""
    parts = full_name.split()
    return f"{parts[-1]}^{' '.join(parts[:-1])}".rstrip("^") if parts else ""


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
        log.info("report %d version %d stored in Orthanc as %s", report.id, version.version,
                 version.orthanc_instance_id)
    except (requests.RequestException, KeyError, ValueError) as exc:
        version.pacs_status = f"error: {type(exc).__name__}: {exc}"[:255]
        log.warning("report %d version %d not stored in Orthanc: %s", report.id, version.version,
                    type(exc).__name__)
    if not version.result_status.startswith("sent"):
        notify_report_result(session, version)
    session.flush()
    return version
