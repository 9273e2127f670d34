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


def header_for(report: Report, orthanc_study: dict | None = None) -> ReportHeader:
    """The header from the RIS (order and patient when linked), overlaid by the values
    Orthanc holds for the study so the new instance matches the images it joins."""
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
        for attr, keyword in (
            ("patient_name", "PatientName"),
            ("patient_id", "PatientID"),
            ("birth_date", "PatientBirthDate"),
            ("sex", "PatientSex"),
            ("accession_number", "AccessionNumber"),
            ("study_date", "StudyDate"),
            ("study_time", "StudyTime"),
            ("study_id", "StudyID"),
            ("referring_physician", "ReferringPhysicianName"),
        ):
            if tags.get(keyword):  # an empty tag in the images does not blank the RIS's value
                setattr(header, attr, tags[keyword])
    return header
