"""DICOM Modality Worklist attributes: the one table that says where each attribute of a
worklist item comes from in the RIS model and how a query on it is matched.

Each row names the DICOM keyword, its VR, whether it sits inside the Scheduled Procedure
Step Sequence, how to read its value from a step (None: only from the attributes kept
from an imported item, `ScheduledProcedureStep.extra_attributes`), the SQL column used to
prefilter a C-FIND (None: matched in Python only), and whether a query value on it is a
matching key (False: return key only, a value sent for it is ignored as dcmtk's wlmscpfs
does). The rows are every return key of PS3.4 Table K.6-1; the item builder, the C-FIND
matcher, the importer and the query explainer all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue
from sqlalchemy import String, and_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ris_app.clock import to_site
from ris_app.model import Order, Patient, RequestedProcedure
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration import alerts
from ris_app.scheduling.names import patient_pn


def _patient_name(step: SPS) -> str:
    return patient_pn(step.requested_procedure.order.patient)


def _date(d: Any) -> str:
    return d.strftime("%Y%m%d") if d else ""


def _start(step: SPS, fmt: str) -> str:
    # Scanners show and match DA/TM as the department's wall-clock time; the RIS keeps UTC.
    return to_site(step.start_datetime).strftime(fmt)


# VRs whose stored value is one text: a backslash in it is not a value separator.
SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
DATE_TIME_VRS = frozenset({"DA", "TM", "DT"})
# PS3.4 C.2.2.2.4: wildcards apply to these VRs only.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})


@dataclass(frozen=True)
class WorklistAttribute:
    keyword: str
    vr: str
    in_sps: bool  # inside ScheduledProcedureStepSequence
    value: Callable[[SPS], str] | None = None  # None: from extra_attributes only
    column: Any = None  # SQL column for the prefilter
    matching: bool = True  # a query value on it restricts the answers
    prefilter: Callable[[str], Any] | None = None  # SQL superset clause where no plain column fits
    # Compared as the site compares MRNs (ORTHANC_RIS_MRN_CASE_INSENSITIVE): query and value
    # through registration.search.mrn_folded, the SQL on its mrn_column.
    as_mrn: bool = False

    @property
    def tag(self) -> int:
        return tag_for_keyword(self.keyword)

    @property
    def json_tag(self) -> str:
        return f"{self.tag:08X}"

    @property
    def multi_valued(self) -> bool:
        """The stored value may hold several values (a\\b), each matched on its own."""
        return self.vr not in SINGLE_TEXT_VRS and self.vr != "SQ"


def _order(s: SPS) -> Order:
    return s.requested_procedure.order


def _patient(s: SPS) -> Patient:
    return s.requested_procedure.order.patient


def _rp(s: SPS) -> RequestedProcedure:
    return s.requested_procedure


class bytewise_lower(FunctionElement):
    """lower(x) compared byte by byte: on PostgreSQL `lower(x) COLLATE "C"` (a linguistic
    collation may order `o'b` between `ob` and `oc`, which a prefix range must not see);
    on SQLite plain lower(x), whose comparisons are bytewise already and which the
    ix_patient_family_name_lower index serves."""

    type = String()
    inherit_cache = True


@compiles(bytewise_lower)
def _bytewise_lower_default(element, compiler, **kw):
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(bytewise_lower, "postgresql")
def _bytewise_lower_postgresql(element, compiler, **kw):
    return f'lower({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def _name_prefilter(q: str):
    """A superset of the steps a PN query on PatientName matches: the family name's
    literal start, case-folded, when it is ASCII (SQLite folds ASCII only), on the
    indexed lower(family_name); None when no such start exists. (Attributes with a SQL
    prefilter are never pinned at import, so the RIS's name is the answered one.)"""
    family = q.split("=")[0].split("^")[0]
    literal = family.split("*")[0].split("?")[0]
    if not literal or not literal.isascii() or "\\" in q:
        return None
    name = bytewise_lower(Patient.family_name)
    low = literal.lower()
    if literal == family:
        clause = name == low
    else:  # a range on the indexed lower(family_name): "fam0042*" is fam0042 <= name < fam0043
        clause = and_(name >= low, name < low[:-1] + chr(ord(low[-1]) + 1))
    # As a subquery: SQLite then starts from the name index even without statistics.
    return SPS.requested_procedure_id.in_(
        select(RequestedProcedure.id).join(RequestedProcedure.order).join(Order.patient).where(clause)
    )


A = WorklistAttribute
WORKLIST_ATTRIBUTES: tuple[WorklistAttribute, ...] = (
    # Patient identification
    A("PatientName", "PN", False, _patient_name, prefilter=_name_prefilter),
    A("PatientID", "LO", False, lambda s: _patient(s).mrn, Patient.mrn, as_mrn=True),
    A("IssuerOfPatientID", "LO", False, lambda s: _patient(s).issuer, Patient.issuer),
    A("IssuerOfPatientIDQualifiersSequence", "SQ", False, matching=False),
    A("OtherPatientIDsSequence", "SQ", False, matching=False),  # built by items.build_item
    # Patient demographics and medical
    A("PatientBirthDate", "DA", False, lambda s: _date(_patient(s).birth_date)),
    A("PatientSex", "CS", False, lambda s: _patient(s).sex, Patient.sex),
    A("PatientWeight", "DS", False, lambda s: alerts.weight(_patient(s)), matching=False),
    A("PatientSize", "DS", False, lambda s: alerts.size(_patient(s)), matching=False),
    A("ConfidentialityConstraintOnPatientDataDescription", "LO", False, matching=False),
    A("MedicalAlerts", "LO", False, alerts.medical_alerts, matching=False),
    A("Allergies", "LO", False, lambda s: alerts.allergies(_patient(s)), matching=False),
    A("PregnancyStatus", "US", False, lambda s: alerts.pregnancy_status(_patient(s)), matching=False),
    A("SpecialNeeds", "LO", False, lambda s: alerts.special_needs(_patient(s)), matching=False),
    A("PatientState", "LO", False, matching=False),
    # Visit
    A("AdmissionID", "LO", False),
    A("IssuerOfAdmissionIDSequence", "SQ", False, matching=False),
    A("CurrentPatientLocation", "LO", False, matching=False),
    A("AdmittingDiagnosesDescription", "LO", False, matching=False),
    A("ReferencedPatientSequence", "SQ", False, matching=False),
    # Imaging service request
    A("AccessionNumber", "SH", False, lambda s: _order(s).accession_number, Order.accession_number),
    A("IssuerOfAccessionNumberSequence", "SQ", False, matching=False),
    A("ReferringPhysicianName", "PN", False, lambda s: _order(s).referring_physician),
    A("RequestingPhysician", "PN", False),
    A("RequestingService", "LO", False, matching=False),
    A(
        "PlacerOrderNumberImagingServiceRequest",
        "LO",
        False,
        lambda s: _order(s).placer_order_number,
        Order.placer_order_number,
    ),
    A(
        "FillerOrderNumberImagingServiceRequest",
        "LO",
        False,
        lambda s: _order(s).filler_order_number,
        Order.filler_order_number,
    ),
    # The desk's notes on the order (transport, interpreter, claustrophobia): for the technologist.
    A("ImagingServiceRequestComments", "LT", False, lambda s: _order(s).notes, matching=False),
    # Requested procedure
    A(
        "RequestedProcedureID",
        "SH",
        False,
        lambda s: _rp(s).requested_procedure_id,
        RequestedProcedure.requested_procedure_id,
    ),
    A("RequestedProcedureDescription", "LO", False, lambda s: _rp(s).description),
    A("RequestedProcedureCodeSequence", "SQ", False),
    A("StudyInstanceUID", "UI", False, lambda s: _rp(s).study_instance_uid, RequestedProcedure.study_instance_uid),
    A("ReferencedStudySequence", "SQ", False, matching=False),
    A("RequestedProcedurePriority", "SH", False, lambda s: _order(s).priority, Order.priority),
    A("PatientTransportArrangements", "LO", False, matching=False),
    A("ReasonForTheRequestedProcedure", "LO", False, lambda s: _order(s).reason_for_exam),
    A("RequestedProcedureComments", "LT", False, matching=False),
    A("ConfidentialityCode", "LO", False, matching=False),
    # Scheduled procedure step (inside ScheduledProcedureStepSequence)
    A("Modality", "CS", True, lambda s: s.modality, SPS.modality),
    A("ScheduledStationAETitle", "AE", True, lambda s: s.station_aet, SPS.station_aet),
    A("ScheduledStationName", "SH", True, lambda s: s.station_name, SPS.station_name),
    A("ScheduledProcedureStepLocation", "SH", True, lambda s: s.location, SPS.location),
    A("ScheduledProcedureStepStartDate", "DA", True, lambda s: _start(s, "%Y%m%d")),
    A("ScheduledProcedureStepStartTime", "TM", True, lambda s: _start(s, "%H%M%S")),
    A("ScheduledPerformingPhysicianName", "PN", True, lambda s: s.performing_physician),
    A("ScheduledPerformingPhysicianIdentificationSequence", "SQ", True, matching=False),
    A("ScheduledProcedureStepDescription", "LO", True, lambda s: s.description),
    A("ScheduledProtocolCodeSequence", "SQ", True),
    A("PreMedication", "LO", True, matching=False),
    A("ScheduledProcedureStepID", "SH", True, lambda s: s.sps_id, SPS.sps_id),
    A("RequestedContrastAgent", "LO", True, matching=False),
    A("ScheduledProcedureStepStatus", "CS", True, lambda s: s.status, SPS.status),
    A("CommentsOnTheScheduledProcedureStep", "LT", True, matching=False),
)

BY_KEYWORD = {a.keyword: a for a in WORKLIST_ATTRIBUTES}
BY_TAG = {a.tag: a for a in WORKLIST_ATTRIBUTES}
SPS_SEQUENCE_TAG = "00400100"


def _json_text(element: dict) -> str:
    """A DICOM JSON element's value as DICOM text (values joined by backslashes)."""
    values = element.get("Value") or []
    out = []
    for v in values:
        if isinstance(v, dict):  # PN: component groups
            out.append("=".join(v.get(g, "") for g in ("Alphabetic", "Ideographic", "Phonetic")).rstrip("="))
        else:
            out.append(str(v))
    return "\\".join(out)


def extra_value(step: SPS, attr: WorklistAttribute) -> str:
    """The value an imported item had for `attr`, from the attributes kept verbatim."""
    extra = step.extra_attributes
    if not extra:
        return ""
    if attr.in_sps:
        seq = (extra.get(SPS_SEQUENCE_TAG) or {}).get("Value") or []
        extra = seq[0] if seq else {}
    element = extra.get(attr.json_tag)
    return _json_text(element) if element else ""


def attribute_value(step: SPS, attr: WorklistAttribute) -> str:
    """The value a step answers for `attr`: the RIS's own value, else the imported one
    (the imported one first when it was pinned at import)."""
    extra = step.extra_attributes
    key = f"{SPS_SEQUENCE_TAG}/{attr.json_tag}" if attr.in_sps else attr.json_tag
    if extra and key in extra.get("pinned", ()):
        return extra_value(step, attr)
    own = attr.value(step) if attr.value is not None else ""
    if extra and own and extra.get("added", {}).get(key) == own:
        return ""  # the imported item had no value and the RIS's has not changed since
    return own or extra_value(step, attr)


def as_text(raw: object) -> str:
    """A DICOM value as text, several values joined by a backslash."""
    if raw is None:
        return ""
    if isinstance(raw, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in raw)
    return str(raw)
