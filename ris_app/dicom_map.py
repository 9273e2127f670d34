"""DICOM Modality Worklist attributes: the one table that says where each attribute of a
worklist item comes from in the RIS model and how a query on it is matched.

Each row names the DICOM keyword, its VR, whether it sits inside the Scheduled Procedure
Step Sequence, the SQL column used to prefilter a C-FIND (None: matched in Python only),
and how to read its value from a step. The worklist answer builder and the C-FIND matcher
both read this table; nothing else knows the mapping.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .models import Order, Patient, RequestedProcedure, ScheduledProcedureStep as SPS


def person_name(family: str, given: str = "", middle: str = "", prefix: str = "", suffix: str = "") -> str:
    """Compose a DICOM PN value from its parts, dropping empty trailing components."""
    parts = [family or "", given or "", middle or "", prefix or "", suffix or ""]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def _patient_name(step: SPS) -> str:
    p = step.requested_procedure.order.patient
    return person_name(p.family_name, p.given_name, p.middle_name, p.name_prefix, p.name_suffix)


def _date(d: Any) -> str:
    return d.strftime("%Y%m%d") if d else ""


@dataclass(frozen=True)
class WorklistAttribute:
    keyword: str
    vr: str
    in_sps: bool  # inside ScheduledProcedureStepSequence
    value: Callable[[SPS], str]
    column: Any = None  # SQL column for the prefilter
    multi_valued: bool = False  # the stored value may hold several values (a\b)


def _order(s: SPS) -> Order:
    return s.requested_procedure.order


def _patient(s: SPS) -> Patient:
    return s.requested_procedure.order.patient


def _rp(s: SPS) -> RequestedProcedure:
    return s.requested_procedure


A = WorklistAttribute
WORKLIST_ATTRIBUTES: tuple[WorklistAttribute, ...] = (
    # Patient identification and demographics
    A("PatientName", "PN", False, _patient_name),
    A("PatientID", "LO", False, lambda s: _patient(s).mrn, Patient.mrn),
    A("IssuerOfPatientID", "LO", False, lambda s: _patient(s).issuer, Patient.issuer),
    A("PatientBirthDate", "DA", False, lambda s: _date(_patient(s).birth_date)),
    A("PatientSex", "CS", False, lambda s: _patient(s).sex, Patient.sex),
    # Imaging service request
    A("AccessionNumber", "SH", False, lambda s: _order(s).accession_number, Order.accession_number),
    A("ReferringPhysicianName", "PN", False, lambda s: _order(s).referring_physician),
    A("PlacerOrderNumberImagingServiceRequest", "LO", False, lambda s: _order(s).placer_order_number, Order.placer_order_number),
    A("FillerOrderNumberImagingServiceRequest", "LO", False, lambda s: _order(s).filler_order_number, Order.filler_order_number),
    # Requested procedure
    A("RequestedProcedureID", "SH", False, lambda s: _rp(s).requested_procedure_id, RequestedProcedure.requested_procedure_id),
    A("RequestedProcedureDescription", "LO", False, lambda s: _rp(s).description),
    A("StudyInstanceUID", "UI", False, lambda s: _rp(s).study_instance_uid, RequestedProcedure.study_instance_uid),
    A("RequestedProcedurePriority", "SH", False, lambda s: _order(s).priority, Order.priority),
    A("ReasonForTheRequestedProcedure", "LO", False, lambda s: _order(s).reason_for_exam),
    # Scheduled procedure step (inside ScheduledProcedureStepSequence)
    A("Modality", "CS", True, lambda s: s.modality, SPS.modality),
    A("ScheduledStationAETitle", "AE", True, lambda s: s.station_aet, SPS.station_aet, multi_valued=True),
    A("ScheduledStationName", "SH", True, lambda s: s.station_name, SPS.station_name),
    A("ScheduledProcedureStepLocation", "SH", True, lambda s: s.location, SPS.location),
    A("ScheduledProcedureStepStartDate", "DA", True, lambda s: s.start_datetime.strftime("%Y%m%d")),
    A("ScheduledProcedureStepStartTime", "TM", True, lambda s: s.start_datetime.strftime("%H%M%S")),
    A("ScheduledPerformingPhysicianName", "PN", True, lambda s: s.performing_physician),
    A("ScheduledProcedureStepDescription", "LO", True, lambda s: s.description),
    A("ScheduledProcedureStepID", "SH", True, lambda s: s.sps_id, SPS.sps_id),
    A("ScheduledProcedureStepStatus", "CS", True, lambda s: s.status, SPS.status),
)

BY_KEYWORD = {a.keyword: a for a in WORKLIST_ATTRIBUTES}
