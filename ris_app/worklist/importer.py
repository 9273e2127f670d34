"""Import of existing worklist items (.wl / DICOM files, DICOM JSON) as scheduled steps.

A site moving from Orthanc's file-based worklist plugin or dcmtk's wlmscpfs must see the
same answers: every attribute of the original item is kept (`extra_attributes`, DICOM
JSON), the attributes the RIS models fill its records, and where the RIS's own value
would differ from the original (an existing patient spelled otherwise, a PN with
ideographic groups) the original is pinned so the answer stays identical. Each item is
imported in its own transaction: a bad one is reported and skipped, nothing of it stays.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import from_site
from ris_app.errors import DomainError
from ris_app.frontdesk.booking import ClashPolicy
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration.safety import SafetyPolicy
from ris_app.scheduling.names import pn_components
from ris_app.scheduling.orders import (
    OrderData,
    PatientData,
    create_order,
    create_patient,
    find_patient,
    step_changed,
)
from ris_app.scheduling.states import SPSStatus
from ris_app.worklist.attributes import BY_TAG, SPS_SEQUENCE_TAG
from ris_app.worklist.items import build_item

log = logging.getLogger(__name__)
PINNED_KEY = "pinned"  # not a DICOM JSON tag: the tags whose original value wins

# Model column sizes the imported values must fit (PostgreSQL enforces them).
MAX_LEN = {
    "PatientID": 64,
    "IssuerOfPatientID": 64,
    "AccessionNumber": 16,
    "RequestedProcedureID": 16,
    "RequestedProcedureDescription": 64,
    "StudyInstanceUID": 64,
    "RequestedProcedurePriority": 16,
    "ReferringPhysicianName": 128,
    "ReasonForTheRequestedProcedure": 255,
    "PlacerOrderNumberImagingServiceRequest": 64,
    "FillerOrderNumberImagingServiceRequest": 64,
    "Modality": 16,
    "ScheduledStationAETitle": 128,
    "ScheduledStationName": 16,
    "ScheduledProcedureStepLocation": 16,
    "ScheduledProcedureStepDescription": 64,
    "ScheduledPerformingPhysicianName": 128,
    "ScheduledProcedureStepID": 16,
}


class BadItem(ValueError):
    """This item cannot be imported; the message says why (no patient data in it)."""


@dataclass
class ImportOutcome:
    source: str
    ok: bool
    accession_number: str = ""
    sps_id: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        out = {"source": self.source, "ok": self.ok}
        if self.ok:
            out.update(accession_number=self.accession_number, sps_id=self.sps_id)
        else:
            out["error"] = self.error
        if self.warnings:
            out["warnings"] = self.warnings
        return out


# ------------------------------------------------------------------ reading
def read_item(data: bytes) -> Dataset:
    """A worklist item from Part 10 / raw DICOM bytes or a DICOM JSON object."""
    head = data.lstrip()[:1]
    try:
        if head in (b"{",):
            ds = Dataset.from_json(json.loads(data.decode("utf-8")))
        else:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            ds.decode()
        list(ds)  # parse every element now, so a truncated file fails here
        for elem in ds.iterall():
            _ = elem.value
    except BadItem:
        raise
    except Exception as exc:  # pydicom / json raise many types on garbage
        raise BadItem(f"not a readable DICOM or DICOM JSON item ({exc.__class__.__name__})") from None
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword)
    if v is None:
        return ""
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _check(ds: Dataset, sps: Dataset) -> None:
    seq = ds.get("ScheduledProcedureStepSequence")
    if seq is None or len(seq) == 0:
        raise BadItem("no ScheduledProcedureStepSequence item")
    if not _text(ds, "PatientID") and not _text(ds, "PatientName"):
        raise BadItem("neither PatientID nor PatientName")
    for keyword, limit in MAX_LEN.items():
        holder = sps if BY_KEYWORD_IN_SPS.get(keyword) else ds
        if len(_text(holder, keyword)) > limit:
            raise BadItem(f"{keyword} is longer than {limit} characters")


BY_KEYWORD_IN_SPS = {a.keyword: a.in_sps for a in BY_TAG.values()}


def _start(sps: Dataset) -> datetime:
    """The item's start, DICOM DA/TM in the site's wall-clock time, as UTC."""
    d = _text(sps, "ScheduledProcedureStepStartDate")
    t = _text(sps, "ScheduledProcedureStepStartTime").replace(":", "").split(".")[0]
    try:
        day = datetime.strptime(d, "%Y%m%d")
    except ValueError:
        raise BadItem("ScheduledProcedureStepStartDate missing or not a DICOM date") from None
    t = t.ljust(6, "0")[:6]
    try:
        return from_site(day.replace(hour=int(t[0:2]), minute=int(t[2:4]), second=int(t[4:6])))
    except ValueError:
        raise BadItem("ScheduledProcedureStepStartTime is not a DICOM time") from None


def _birth_date(ds: Dataset) -> date | None:
    try:
        return datetime.strptime(_text(ds, "PatientBirthDate"), "%Y%m%d").date()
    except ValueError:
        return None  # kept verbatim in the extra attributes, answered as it was


# ------------------------------------------------------------------ pinning
def _element_text(elem) -> object:
    if elem.VR == "SQ":
        return [item.to_json_dict() for item in elem.value]
    v = elem.value
    if v is None:
        return ""
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _sql_sees_it(original, ours) -> bool:
    """May the original value be answered although the RIS's differs? Only where the SQL
    prefilter still finds it: never for a key matched on a plain column; for PatientName
    when the family name of its first component group is the RIS's (so a name with
    ideographic and phonetic groups keeps them)."""
    attr = BY_TAG.get(original.tag)
    if attr is None or (attr.column is None and attr.prefilter is None):
        return True
    if attr.keyword == "PatientName":
        family = pn_components(_element_text(original))["family_name"]
        return family.lower() == pn_components(_element_text(ours))["family_name"].lower()
    return False


def _differences(original: Dataset, built: Dataset) -> tuple[list[str], dict[str, str], list[str]]:
    """Tags whose original value differs from the RIS's own non-empty value (pinned), the
    values the RIS adds where the original had none (added: answered empty until the
    RIS's value changes, e.g. the status once the patient arrives), and the differing
    keys the RIS answers its own way: those it prefilters in SQL (PatientName, PatientSex…)
    must answer what SQL sees, so the RIS's patient record wins there."""
    pinned: list[str] = []
    added: dict[str, str] = {}
    overridden: list[str] = []

    def compare(orig: Dataset, ours: Dataset, prefix: str) -> None:
        for elem in orig:
            if elem.tag.group == 0x0002 or elem.keyword in ("SpecificCharacterSet", "ScheduledProcedureStepSequence"):
                continue
            mine = ours.get(elem.tag)
            if mine is None or _element_text(mine) in ("", []):
                continue  # filled from the extra attributes anyway
            if _element_text(mine) != _element_text(elem):
                if _sql_sees_it(elem, mine):
                    pinned.append(prefix + f"{elem.tag:08X}")
                else:
                    overridden.append(elem.keyword)
        for elem in ours:
            if elem.VR == "SQ" or elem.keyword == "SpecificCharacterSet" or _element_text(elem) == "":
                continue
            theirs = orig.get(elem.tag)
            if theirs is None or _element_text(theirs) == "":
                added[prefix + f"{elem.tag:08X}"] = _element_text(elem)

    compare(original, built, "")
    compare(original.ScheduledProcedureStepSequence[0], built.ScheduledProcedureStepSequence[0], SPS_SEQUENCE_TAG + "/")
    return pinned, added, overridden


def _extra_json(ds: Dataset) -> dict:
    keep = Dataset()
    for elem in ds:
        if elem.tag.group != 0x0002 and elem.keyword != "SpecificCharacterSet":
            keep.add(elem)
    return keep.to_json_dict()


# ------------------------------------------------------------------ importing
def import_item(
    session: Session, ds: Dataset, *, accession_prefix: str = "RIS", uid_root: str = "", source: str = ""
) -> ImportOutcome:
    """Create patient (or reuse by PatientID + issuer), order, requested procedure and
    scheduled step for one worklist item, in the caller's transaction."""
    seq = ds.get("ScheduledProcedureStepSequence")
    sps = seq[0] if seq is not None and len(seq) else Dataset()
    _check(ds, sps)
    warnings: list[str] = []
    mrn = _text(ds, "PatientID")
    issuer = _text(ds, "IssuerOfPatientID")
    patient = find_patient(session, mrn, issuer)
    if patient is None:
        parts = pn_components(_text(ds, "PatientName"))
        data = PatientData(mrn=mrn, issuer=issuer, birth_date=_birth_date(ds), sex=_text(ds, "PatientSex")[:1], **parts)
        try:  # the field rules of scheduling.fields, as for every other way in
            patient = create_patient(session, data)
        except DomainError as exc:
            raise BadItem(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
    accession = _text(ds, "AccessionNumber")
    sps_id = _text(sps, "ScheduledProcedureStepID")
    if sps_id and session.scalar(select(SPS.id).where(SPS.sps_id == sps_id)) is not None:
        raise BadItem("a step with this ScheduledProcedureStepID exists (already imported?)")
    status = _text(sps, "ScheduledProcedureStepStatus").upper() or SPSStatus.SCHEDULED
    if status not in SPSStatus.__members__:
        warnings.append(f"ScheduledProcedureStepStatus {status!r} is not one the RIS knows: SCHEDULED used")
        status = SPSStatus.SCHEDULED
    try:
        order = create_order(
            session,
            OrderData(
                patient=patient,
                procedure=None,
                modality=_text(sps, "Modality"),
                scheduled_start=_start(sps),
                station_aet=_text(sps, "ScheduledStationAETitle"),
                station_name=_text(sps, "ScheduledStationName"),
                location=_text(sps, "ScheduledProcedureStepLocation"),
                accession_number=accession,
                study_instance_uid=_text(ds, "StudyInstanceUID"),
                placer_order_number=_text(ds, "PlacerOrderNumberImagingServiceRequest"),
                filler_order_number=_text(ds, "FillerOrderNumberImagingServiceRequest"),
                priority=_text(ds, "RequestedProcedurePriority"),
                referring_physician=_text(ds, "ReferringPhysicianName"),
                reason_for_exam=_text(ds, "ReasonForTheRequestedProcedure"),
                description=_text(sps, "ScheduledProcedureStepDescription"),
                performing_physician=_text(sps, "ScheduledPerformingPhysicianName"),
            ),
            accession_prefix=accession_prefix,
            uid_root=uid_root,
            source="import",
            clash_policy=ClashPolicy.FLAG,  # every item keeps its time; overlaps are flagged
            safety_policy=SafetyPolicy.HOLD,  # like an HL7 order: held for the desk, not lost
        )
    except DomainError as exc:
        raise BadItem(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
    rp = order.requested_procedures[0]
    step = rp.steps[0]
    # create_order fills blanks with generated or derived values; an imported item keeps
    # its own (blank stays blank, filled from the original when answering).
    rp.requested_procedure_id = _text(ds, "RequestedProcedureID") or rp.requested_procedure_id
    rp.description = _text(ds, "RequestedProcedureDescription")
    order.filler_order_number = _text(ds, "FillerOrderNumberImagingServiceRequest")
    if sps_id:
        step.sps_id = sps_id
    if status != SPSStatus.SCHEDULED:
        step.history[0].to_status = status
        step.status = status
    session.flush()
    extra = _extra_json(ds)
    step.extra_attributes = extra
    built = pydicom.dcmread(io.BytesIO(build_item(step)))
    pinned, added, overridden = _differences(ds, built)
    if overridden:
        warnings.append(
            "the RIS's records answer otherwise than the item for "
            + ", ".join(overridden)
            + " (patient registered before, or differing between items)"
        )
    step.extra_attributes = {**extra, "added": added}
    if pinned:
        step.extra_attributes = {**extra, "added": added, PINNED_KEY: pinned}
        warnings.append(
            f"{len(pinned)} attribute(s) differ from the RIS records and answer as imported: " + ", ".join(pinned)
        )
    step_changed(step)
    session.flush()
    log.info(
        "worklist item imported from %s: order %s, step %s", source or "request", order.accession_number, step.sps_id
    )
    return ImportOutcome(source, True, order.accession_number, step.sps_id, warnings=warnings)


def import_bytes(session: Session, data: bytes, source: str, **kw) -> ImportOutcome:
    """Import one item in its own transaction: committed whole, or rolled back whole."""
    try:
        outcome = import_item(session, read_item(data), source=source, **kw)
        session.commit()
        return outcome
    except BadItem as exc:
        session.rollback()
        log.warning("worklist item %s skipped: %s", source, exc)
        return ImportOutcome(source, False, error=str(exc))
    except Exception as exc:  # a database refusal: report it, keep importing the others
        session.rollback()
        log.warning("worklist item %s skipped: %s", source, exc.__class__.__name__)
        return ImportOutcome(source, False, error=f"refused by the database ({exc.__class__.__name__})")


def worklist_files(folder: Path) -> Iterator[Path]:
    """Every file under `folder` that may hold an item (wlmscpfs's lockfile excepted)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "lockfile" and not path.name.startswith("."):
            yield path


def import_folder(session: Session, folder: Path, **kw) -> list[ImportOutcome]:
    return [import_bytes(session, p.read_bytes(), str(p), **kw) for p in worklist_files(folder)]


def split_json_payload(payload: object) -> Iterable[tuple[str, bytes]]:
    """A DICOM JSON body: one object or a list of them."""
    items = payload if isinstance(payload, list) else [payload]
    for i, item in enumerate(items):
        yield f"item {i}", json.dumps(item).encode()
