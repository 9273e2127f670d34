"""THE field mapping: HL7 v2 field <-> RIS model attribute <-> DICOM worklist attribute.

One row per item. Inbound handlers read a value by trying the row's locations for the
message family in order (first non-empty wins); outbound builders write a value to the
first location; docs/hl7-conformance.md prints this table (a test keeps them equal).

Locations are 'SEG-field[.component[.subcomponent]]'. ORM^O01 and ADT follow IHE SWF in
HL7 2.3.1; OMI^O23 and OMG^O19 follow IHE SWF.b in HL7 2.5.1 (IPC segment, TQ1 timing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ris_app.hl7.parse import Segment


@dataclass(frozen=True)
class FieldMap:
    key: str  # the name handlers use
    attribute: str  # RIS model attribute
    dicom: str  # DICOM keyword (tag)
    v231: tuple[str, ...]  # ADT / ORM^O01 locations (HL7 2.3.1), first non-empty wins
    v251: tuple[str, ...]  # OMI^O23 / OMG^O19 locations (HL7 2.5.1)
    kind: str = "text"  # text, xpn, xcn, cx, date, datetime, code


F = FieldMap
FIELDS: tuple[FieldMap, ...] = (
    # ---- patient (PID), RAD-1 / RAD-12
    F("mrn", "Patient.mrn", "PatientID (0010,0020)", ("PID-3.1",), ("PID-3.1",)),
    F("issuer", "Patient.issuer", "IssuerOfPatientID (0010,0021)", ("PID-3.4",), ("PID-3.4",)),
    F(
        "name",
        "Patient.family_name, given_name, middle_name, name_suffix, name_prefix",
        "PatientName (0010,0010)",
        ("PID-5",),
        ("PID-5",),
        "xpn",
    ),
    F("birth_date", "Patient.birth_date", "PatientBirthDate (0010,0030)", ("PID-7.1",), ("PID-7.1",), "date"),
    F("sex", "Patient.sex", "PatientSex (0010,0040)", ("PID-8",), ("PID-8",), "code"),
    F("address", "Patient.address", "PatientAddress (0010,1040)", ("PID-11",), ("PID-11",), "xad"),
    F("phone", "Patient.phone", "PatientTelephoneNumbers (0010,2154)", ("PID-13.1",), ("PID-13.1",)),
    F(
        "patient_identifiers",
        "Patient.mrn (the repetition typed MR, else a bare one), PatientIdentifier (the others)",
        "PatientID, OtherPatientIDsSequence (0010,1002)",
        ("PID-3",),
        ("PID-3",),
        "cx",
    ),
    F("prior_mrn", "(merge: the patient that disappears)", "-", ("MRG-1.1",), ("MRG-1.1",)),
    # ---- clinical record (ADT AL1 and OBX, ORU^R01 OBX), registration
    F(
        "allergy_agent",
        "Allergy.agent (agent_class from its words)",
        "Allergies (0010,2110)",
        ("AL1-3.2", "AL1-3.1"),
        ("AL1-3.2", "AL1-3.1"),
    ),
    F(
        "allergy_severity",
        "Allergy.severity (SV, MO, MI, U)",
        "Allergies (0010,2110)",
        ("AL1-4.1",),
        ("AL1-4.1",),
        "code",
    ),
    F("allergy_reaction", "Allergy.reaction", "Allergies (0010,2110)", ("AL1-5",), ("AL1-5",)),
    F("observation_code", "(which measure: weight, height, creatinine, eGFR)", "-", ("OBX-3.1",), ("OBX-3.1",), "code"),
    F("observation_text", "(the code's text, when the code is local)", "-", ("OBX-3.2",), ("OBX-3.2",)),
    F(
        "observation_value",
        "PatientRecord.weight_kg, height_m; LabResult.value",
        "PatientWeight (0010,1030), PatientSize (0010,1020)",
        ("OBX-5",),
        ("OBX-5",),
    ),
    F("observation_unit", "(kg, g, lb; m, cm, in; LabResult.unit)", "-", ("OBX-6.1",), ("OBX-6.1",)),
    F("observation_status", "(X, D and W results are not stored)", "-", ("OBX-11",), ("OBX-11",), "code"),
    F(
        "observation_time",
        "PatientRecord.measured_on, LabResult.observed_at",
        "-",
        ("OBX-14.1", "OBR-7.1"),
        ("OBX-14.1", "OBR-7.1"),
        "datetime",
    ),
    F("prior_issuer", "(merge: its issuer)", "-", ("MRG-1.4",), ("MRG-1.4",)),
    # ---- order (ORC, OBR), RAD-2 / RAD-3 / RAD-4 / RAD-13
    F(
        "order_control",
        "(action: NW create, XO change, CA cancel, DC discontinue)",
        "-",
        ("ORC-1",),
        ("ORC-1",),
        "code",
    ),
    F(
        "placer_order_number",
        "Order.placer_order_number",
        "PlacerOrderNumberImagingServiceRequest (0040,2016)",
        ("ORC-2.1", "OBR-2.1"),
        ("ORC-2.1", "OBR-2.1"),
    ),
    F(
        "filler_order_number",
        "Order.filler_order_number",
        "FillerOrderNumberImagingServiceRequest (0040,2017)",
        ("ORC-3.1", "OBR-3.1"),
        ("ORC-3.1", "OBR-3.1"),
    ),
    F(
        "order_status",
        "ScheduledProcedureStep.status (outbound)",
        "ScheduledProcedureStepStatus (0040,0020)",
        ("ORC-5",),
        ("ORC-5",),
        "code",
    ),
    F("accession_number", "Order.accession_number", "AccessionNumber (0008,0050)", ("OBR-18",), ("IPC-1", "OBR-18")),
    F(
        "requested_procedure_id",
        "RequestedProcedure.requested_procedure_id",
        "RequestedProcedureID (0040,1001)",
        ("OBR-19",),
        ("IPC-2", "OBR-19"),
    ),
    F(
        "study_instance_uid",
        "RequestedProcedure.study_instance_uid",
        "StudyInstanceUID (0020,000D)",
        ("ZDS-1.1",),
        ("IPC-3", "ZDS-1.1"),
    ),
    F(
        "sps_id",
        "ScheduledProcedureStep.sps_id",
        "ScheduledProcedureStepID (0040,0009)",
        ("OBR-20",),
        ("IPC-4", "OBR-20"),
    ),
    F(
        "procedure_code",
        "RequestedProcedure.procedure_code (catalog code)",
        "RequestedProcedureCodeSequence > CodeValue (0008,0100)",
        ("OBR-4.1",),
        ("OBR-4.1",),
    ),
    F(
        "procedure_text",
        "RequestedProcedure.description, ScheduledProcedureStep.description",
        "RequestedProcedureDescription (0032,1060)",
        ("OBR-4.2",),
        ("OBR-4.2",),
    ),
    F("modality", "ScheduledProcedureStep.modality", "Modality (0008,0060)", ("OBR-24",), ("IPC-5", "OBR-24")),
    F(
        "station_aet",
        "ScheduledProcedureStep.station_aet",
        "ScheduledStationAETitle (0040,0001)",
        ("OBR-21",),
        ("IPC-9", "OBR-21"),
    ),
    F("station_name", "ScheduledProcedureStep.station_name", "ScheduledStationName (0040,0010)", (), ("IPC-7",)),
    F("location", "ScheduledProcedureStep.location", "ScheduledProcedureStepLocation (0040,0011)", (), ("IPC-8",)),
    F(
        "scheduled_start",
        "ScheduledProcedureStep.start_datetime",
        "ScheduledProcedureStepStartDate/Time (0040,0002/0003)",
        ("ORC-7.4", "OBR-27.4"),
        ("TQ1-7.1", "ORC-7.4", "OBR-27.4"),
        "datetime",
    ),
    F(
        "priority",
        "Order.priority",
        "RequestedProcedurePriority (0040,1003)",
        ("ORC-7.6", "OBR-27.6"),
        ("TQ1-9.1", "ORC-7.6", "OBR-27.6"),
        "code",
    ),
    F(
        "referring_physician",
        "Order.referring_physician",
        "ReferringPhysicianName (0008,0090)",
        ("OBR-16", "ORC-12"),
        ("OBR-16", "ORC-12"),
        "xcn",
    ),
    F(
        "reason_for_exam",
        "Order.reason_for_exam",
        "ReasonForTheRequestedProcedure (0040,1002)",
        ("OBR-31.2", "OBR-31.1"),
        ("OBR-31.2", "OBR-31.1"),
    ),
    # ---- diagnosis (DG1), billed with the exam's charges (FT1-19)
    F(
        "diagnosis_codes",
        "Order.diagnosis_codes (every DG1 of the message, ~-separated)",
        "-",
        ("DG1-3.1",),
        ("DG1-3.1",),
        "code",
    ),
)

BY_KEY: dict[str, FieldMap] = {f.key: f for f in FIELDS}

# HL7 table 0027 (priority) <-> RequestedProcedurePriority.
PRIORITY_IN = {"S": "STAT", "A": "HIGH", "R": "ROUTINE", "P": "MEDIUM", "T": "MEDIUM", "C": "LOW"}
PRIORITY_OUT = {"STAT": "S", "HIGH": "A", "ROUTINE": "R", "MEDIUM": "P", "LOW": "R"}
# HL7 table 0001 (administrative sex) -> DICOM PatientSex.
SEX_IN = {"M": "M", "F": "F", "O": "O", "U": "U", "A": "O", "N": "U", "": "U"}
# SPS status -> ORC-5 order status (HL7 table 0038) in outbound status messages.
ORDER_STATUS_OUT = {
    "SCHEDULED": "SC",
    "ARRIVED": "SC",
    "READY": "SC",
    "STARTED": "IP",
    "DEPARTED": "IP",
    "COMPLETED": "CM",
    "CANCELED": "CA",
    "DISCONTINUED": "DC",
    "NO_SHOW": "CA",  # table 0038 has no "no-show": the order ends unperformed, as canceled
}


def parse_location(loc: str) -> tuple[str, int, int, int]:
    """'OBR-27.4' -> ('OBR', 27, 4, 0); component/subcomponent 0 means the whole field."""
    seg, _, rest = loc.partition("-")
    parts = [int(p) for p in rest.split(".")] + [0, 0]
    return seg, parts[0], parts[1], parts[2]


def locations(key: str, family: str) -> tuple[str, ...]:
    """The locations of a mapped item for a message family: '2.3.1' or '2.5.1'."""
    row = BY_KEY[key]
    return row.v251 if family == "2.5.1" else row.v231


COMPOSITE_KINDS = ("xpn", "xcn", "xad")


def read(segments: dict[str, Segment], key: str, family: str) -> tuple[str | list[str], str]:
    """(value, location) from the first location holding a value, unescaped. Composite
    kinds (xpn, xcn, xad) read whole fields and come back as their component list."""
    row = BY_KEY[key]
    locs = locations(key, family)
    for loc in locs:
        seg_name, field, comp, sub = parse_location(loc)
        seg = segments.get(seg_name)
        if seg is None:
            continue
        if row.kind in COMPOSITE_KINDS and not comp:
            comps = seg.components(field)
            if any(comps):
                return comps, loc
            continue
        value = seg.get(field, comp or 1, sub or 1)
        if value:
            return value, loc
    empty: str | list[str] = [] if row.kind in COMPOSITE_KINDS else ""
    return empty, (locs[0] if locs else "")


def markdown_table() -> str:
    """The mapping table as Markdown, for docs/hl7-conformance.md."""
    lines = [
        "| Item | HL7 2.3.1 (ADT, ORM^O01) | HL7 2.5.1 (OMI^O23, OMG^O19) | RIS model | DICOM |",
        "|---|---|---|---|---|",
    ]
    for f in FIELDS:
        lines.append(
            f"| {f.key} | {', '.join(f.v231) or '-'} | {', '.join(f.v251) or '-'} | {f.attribute} | {f.dicom} |"
        )
    return "\n".join(lines)
