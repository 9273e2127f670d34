"""Our audit events as DICOM PS3.15 audit messages (Annex A.5, the "AuditMessage" schema
that IHE ATNA's Record Audit Event [ITI-20] carries). Pure: an AuditEvent in, XML bytes out.

One table, EVENTS, says what each of our actions is in DICOM terms: its EventID (the
"EV(code, DCM, text)" of PS3.15 A.5.3), its EventActionCode (C create, R read, U update,
D delete, E execute) and, where the standard asks for one, an EventTypeCode. An action
not in the table falls back on its thing (the part before the dot, THINGS) and its verb
(VERBS), so a new action name still goes out as a sensible message.

Each message also carries our own action name as a second EventTypeCode (code system
"orthanc-ris"), so the repository keeps the finer grain our trail has.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC

from ris_app.model.audit import FAILED, REFUSED, SUCCESS, AuditEvent

Code = tuple[str, str, str]  # (csd-code, codeSystemName, originalText)


def _dcm(code: str, text: str) -> Code:
    return (code, "DCM", text)


AUDIT_LOG_USED = _dcm("110101", "Audit Log Used")
INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
EXPORT = _dcm("110106", "Export")
IMPORT = _dcm("110107", "Import")
PATIENT_RECORD = _dcm("110110", "Patient Record")
PROCEDURE_RECORD = _dcm("110111", "Procedure Record")
QUERY = _dcm("110112", "Query")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")
APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
LOGIN, LOGOUT = _dcm("110122", "Login"), _dcm("110123", "Logout")
RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
SECURITY_ATTRIBUTES_CHANGED = _dcm("110135", "Object Security Attributes Changed")


@dataclass(frozen=True)
class Kind:
    event_id: Code
    action_code: str  # C R U D E
    type_code: Code | None = None


# action -> what it is in PS3.15. Reads of images are "Instances Accessed" (the viewer
# shows them), images arriving are "Instances Transferred"; HL7 out and CSV downloads
# leave the system ("Export"), HL7 in enters it ("Import").
EVENTS: dict[str, Kind] = {
    "patient.read": Kind(PATIENT_RECORD, "R"),
    "patient.create": Kind(PATIENT_RECORD, "C"),
    "patient.update": Kind(PATIENT_RECORD, "U"),
    "patient.merge": Kind(PATIENT_RECORD, "U"),
    "order.read": Kind(PROCEDURE_RECORD, "R"),
    "order.create": Kind(PROCEDURE_RECORD, "C"),
    "order.update": Kind(PROCEDURE_RECORD, "U"),
    "step.move": Kind(PROCEDURE_RECORD, "U"),
    "safety.override": Kind(PROCEDURE_RECORD, "U"),
    "report.read": Kind(PROCEDURE_RECORD, "R"),
    "report.sign": Kind(PROCEDURE_RECORD, "U"),
    "mpps.create": Kind(PROCEDURE_RECORD, "C"),
    "mpps.set": Kind(PROCEDURE_RECORD, "U"),
    "study.view": Kind(INSTANCES_ACCESSED, "R"),
    "images.receive": Kind(INSTANCES_TRANSFERRED, "C"),
    "worklist.query": Kind(QUERY, "E"),
    "hl7.receive": Kind(IMPORT, "C"),
    "hl7.send": Kind(EXPORT, "R"),
    "export.csv": Kind(EXPORT, "R"),
    "login": Kind(USER_AUTHENTICATION, "E", LOGIN),
    "login.failed": Kind(USER_AUTHENTICATION, "E", LOGIN),
    "logout": Kind(USER_AUTHENTICATION, "E", LOGOUT),
    "access.refused": Kind(SECURITY_ALERT, "E", RESTRICTED_FUNCTION),
    # Connections refused before any request: a node that may not talk to us.
    "dicom.associate": Kind(SECURITY_ALERT, "E", RESTRICTED_FUNCTION),
    "hl7.connect": Kind(SECURITY_ALERT, "E", RESTRICTED_FUNCTION),
    "study.delete": Kind(INSTANCES_ACCESSED, "D"),
    "study.link": Kind(PROCEDURE_RECORD, "U"),
    "correction.undo": Kind(PROCEDURE_RECORD, "U"),
    "report.save": Kind(PROCEDURE_RECORD, "U"),
    "report.preliminary": Kind(PROCEDURE_RECORD, "U"),
    "report.addendum": Kind(PROCEDURE_RECORD, "C"),
    "report.critical": Kind(PROCEDURE_RECORD, "U"),
    "hl7.reprocess": Kind(IMPORT, "C"),
    "worklist.import": Kind(IMPORT, "C"),
    "share.create": Kind(EXPORT, "C"),
    "share.open": Kind(INSTANCES_TRANSFERRED, "R"),
    "share.revoke": Kind(SECURITY_ALERT, "U", SECURITY_ATTRIBUTES_CHANGED),
    "audit.read": Kind(AUDIT_LOG_USED, "R"),
    "audit.export": Kind(AUDIT_LOG_USED, "R"),
    # billing: a charge belongs to the exam's procedure record
    "charge.read": Kind(PROCEDURE_RECORD, "R"),
    "charge.capture": Kind(PROCEDURE_RECORD, "C"),
    "charge.review": Kind(PROCEDURE_RECORD, "U"),
    "charge.send": Kind(PROCEDURE_RECORD, "U"),
    "charge.correct": Kind(PROCEDURE_RECORD, "C"),
    "price.change": Kind(APPLICATION_ACTIVITY, "U"),
}
# Fallbacks for an action the table does not name.
THINGS: dict[str, Code] = {
    "patient": PATIENT_RECORD,
    "order": PROCEDURE_RECORD,
    "step": PROCEDURE_RECORD,
    "report": PROCEDURE_RECORD,
    "mpps": PROCEDURE_RECORD,
    "study": INSTANCES_ACCESSED,
    "images": INSTANCES_TRANSFERRED,
    "worklist": QUERY,
    "export": EXPORT,
    "share": EXPORT,
    "audit": AUDIT_LOG_USED,
    "charge": PROCEDURE_RECORD,
}
VERBS = {"create": "C", "read": "R", "view": "R", "open": "R", "update": "U", "set": "U", "delete": "D"}
# EventOutcomeIndicator: 0 success, 4 minor failure (refused), 8 serious failure.
OUTCOME_CODES = {SUCCESS: "0", REFUSED: "4", FAILED: "8"}

# ParticipantObjectIDTypeCode values.
PATIENT_NUMBER: Code = ("2", "RFC-3881", "Patient Number")
REPORT_NUMBER: Code = ("9", "RFC-3881", "Report Number")  # an accession, when no study UID is known
STUDY_UID = _dcm("110180", "Study Instance UID")
LOCAL_SYSTEM = "orthanc-ris"  # code system of our own action names
_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")


def kind_of(action: str) -> Kind:
    """What `action` is in PS3.15 (EVENTS, else its thing and verb)."""
    if action in EVENTS:
        return EVENTS[action]
    thing, _, verb = action.partition(".")
    return Kind(THINGS.get(thing, APPLICATION_ACTIVITY), VERBS.get(verb, "E"))


@dataclass(frozen=True)
class AuditSource:
    """Who reports: AuditSourceID (this RIS), the enterprise site, the host name (our
    ActiveParticipant's network access point) and our application's name."""

    source_id: str
    hostname: str
    site_id: str = ""
    app_name: str = "orthanc-ris"


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    csd, system, text = code
    return ET.SubElement(parent, tag, {"csd-code": csd, "codeSystemName": system, "originalText": text})


def _timestamp(event: AuditEvent) -> str:
    return event.at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def audit_message(event: AuditEvent, source: AuditSource) -> ET.Element:
    """The AuditMessage element for one event."""
    kind = kind_of(event.action)
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": kind.action_code,
            "EventDateTime": _timestamp(event),
            "EventOutcomeIndicator": OUTCOME_CODES.get(event.outcome, "8"),
        },
    )
    _code(ident, "EventID", kind.event_id)
    if kind.type_code:
        _code(ident, "EventTypeCode", kind.type_code)
    _code(ident, "EventTypeCode", (event.action, LOCAL_SYSTEM, event.action))
    if event.outcome != SUCCESS and event.detail:
        ET.SubElement(ident, "EventOutcomeDescription").text = event.detail

    requestor = event.actor_kind != "system"
    if requestor:  # the person or peer who acted, from where
        user = {"UserID": event.actor or "-", "UserIsRequestor": "true"}
        if event.address:
            user |= {"NetworkAccessPointID": event.address, "NetworkAccessPointTypeCode": "2"}  # 2: IP address
        ET.SubElement(root, "ActiveParticipant", user)
    ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": source.app_name,
            "UserIsRequestor": "false" if requestor else "true",
            "NetworkAccessPointID": source.hostname,
            "NetworkAccessPointTypeCode": "1",  # 1: machine name
        },
    )
    src = {"AuditSourceID": source.source_id}
    if source.site_id:
        src = {"AuditEnterpriseSiteID": source.site_id} | src
    ET.SubElement(ET.SubElement(root, "AuditSourceIdentification", src), "AuditSourceTypeCode", {"csd-code": "4"})

    if event.patient_mrn:  # type 1 person, role 1 patient
        patient = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": event.patient_mrn,
                "ParticipantObjectTypeCode": "1",
                "ParticipantObjectTypeCodeRole": "1",
            },
        )
        _code(patient, "ParticipantObjectIDTypeCode", PATIENT_NUMBER)
    study_uid = event.resource if _UID.match(event.resource or "") else ""
    if study_uid or event.accession:  # type 2 system object, role 3 report
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": study_uid or event.accession,
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "3",
            },
        )
        _code(study, "ParticipantObjectIDTypeCode", STUDY_UID if study_uid else REPORT_NUMBER)
        if event.accession:
            ET.SubElement(study, "Accession", {"Number": event.accession})
    return root


def to_xml(event: AuditEvent, source: AuditSource) -> bytes:
    """The message as UTF-8 XML with its declaration (no byte-order mark: ITI CP-477)."""
    return ET.tostring(audit_message(event, source), encoding="UTF-8", xml_declaration=True)
