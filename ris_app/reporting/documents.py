"""The signed report as DICOM instances for the study: an Encapsulated PDF (what people
read) and a Basic Text SR (what systems read), with the site's local date and time and
its offset (TimezoneOffsetFromUTC).
"""

from __future__ import annotations

import io
import logging
from datetime import datetime

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ris_app.clock import to_site, utc_offset, utcnow
from ris_app.model import FINAL, Report, ReportVersion
from ris_app.reporting.header import ReportHeader
from ris_app.scheduling.names import pn_of_display_name

log = logging.getLogger(__name__)

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
# LOINC "Diagnostic imaging study" names the document (ConceptNameCodeSequence).
DOCUMENT_CONCEPT = ("18748-4", "LN", "Diagnostic imaging study")
REPORT_SERIES_NUMBER = 9901  # keeps the report series after the image series in viewers


def encapsulated_pdf(pdf: bytes, header: ReportHeader, version: ReportVersion, when: datetime | None = None) -> Dataset:
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
    ds.DocumentTitle = (
        "Radiology report" if version.version == 1 else f"Radiology report, addendum {version.version - 1}"
    )
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


def basic_text_sr(
    report: Report, version: ReportVersion, header: ReportHeader, predecessor_sop_uid: str = ""
) -> Dataset:
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
    observer.VerifyingObserverName = pn_of_display_name(signer.full_name or signer.username) if signer else "UNKNOWN"
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
    content = [
        _section(*SR_SECTIONS[name], getattr(original, name).strip())
        for name in SR_SECTIONS
        if getattr(original, name).strip()
    ]
    content += [
        _section(*SR_ADDENDUM, v.addendum.strip())
        for v in report.versions[1:]
        if v.version <= version.version and v.status == FINAL and v.addendum.strip()
    ]
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
