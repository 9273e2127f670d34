"""The patient and exam a report is about: from the RIS, overlaid by what Orthanc holds
for the study, so the report's documents match the images they join.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ris_app.model import Report
from ris_app.reporting.lifecycle import study_procedure

log = logging.getLogger(__name__)


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


# What the images may set in a report's header: (attribute, DICOM keyword, the RIS's own).
# The study's identity always comes from the images, so the PDF and SR instances join the
# study they report on in Orthanc. Demographics (and the order's own fields) come from the
# RIS record when the study is linked to an order; from the images only when it is not.
IMAGE_OVERLAY = (
    ("patient_name", "PatientName", True),
    ("patient_id", "PatientID", False),
    ("birth_date", "PatientBirthDate", True),
    ("sex", "PatientSex", True),
    ("accession_number", "AccessionNumber", True),
    ("study_date", "StudyDate", False),
    ("study_time", "StudyTime", False),
    ("study_id", "StudyID", False),
    ("referring_physician", "ReferringPhysicianName", True),
)


def header_for(report: Report, orthanc_study: dict | None = None) -> ReportHeader:
    """The header from the RIS (order and patient when linked); the study's identity
    (and, for a study no order claims, everything) from what Orthanc holds for it."""
    study = report.study
    order = study.order
    _code, description, modality = study_procedure(study)
    if order is not None:
        p = order.patient
        header = ReportHeader(
            patient_name=f"{p.family_name}^{p.given_name}".rstrip("^"),
            patient_id=p.mrn,
            birth_date=p.birth_date.strftime("%Y%m%d") if p.birth_date else "",
            sex=p.sex if p.sex != "U" else "",
            accession_number=order.accession_number,
            referring_physician=order.referring_physician,
            study_instance_uid=study.study_instance_uid,
            study_date=study.study_date,
            study_time="",
            study_id="",
            procedure=description,
            modality=modality,
        )
    else:
        header = ReportHeader(
            patient_name=study.patient_name,
            patient_id=study.patient_mrn,
            birth_date="",
            sex="",
            accession_number=study.accession_number,
            referring_physician="",
            study_instance_uid=study.study_instance_uid,
            study_date=study.study_date,
            study_time="",
            study_id="",
            procedure=description or study.study_description,
            modality=modality,
        )
    if orthanc_study:
        tags = {**orthanc_study.get("PatientMainDicomTags", {}), **orthanc_study.get("MainDicomTags", {})}
        for attr, keyword, ris_own in IMAGE_OVERLAY:
            if ris_own and order is not None:
                continue  # the RIS record is the truth about the person (not the modality's "O")
            if tags.get(keyword):  # an empty tag in the images does not blank the RIS's value
                setattr(header, attr, tags[keyword])
    return header
