"""Worklist items: the DICOM answer of each scheduled step, built once per change.

Items are kept on the step as DICOM Part 10 bytes in UTF-8, so answering a C-FIND never
builds DICOM (see `query`). `refresh_worklist_item` is called by the one place that is
told a step changed (`ris_app.scheduling.orders.step_changed`).
"""

from __future__ import annotations

import io
import logging

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration.alerts import other_ids
from ris_app.worklist.attributes import (
    SPS_SEQUENCE_TAG,
    WORKLIST_ATTRIBUTES,
    as_text,
)

log = logging.getLogger(__name__)

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"


def build_item(step: SPS) -> bytes:
    """The worklist item of one step, as DICOM Part 10 bytes in UTF-8, holding every
    return key of PS3.4 Table K.6-1 (empty when unknown)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    sps = Dataset()
    for attr in WORKLIST_ATTRIBUTES:
        target = sps if attr.in_sps else ds
        if attr.vr == "SQ":
            # Left out when empty: Orthanc 1.10 drops an SPS item whose empty sequence
            # meets a sequence key of the query; a missing one answers empty anyway.
            continue
        elif attr.value is not None and (value := attr.value(step)) not in (None, ""):
            setattr(target, attr.keyword, value)
        elif attr.value is not None and attr.vr != "US":  # a number left empty is None, not ""
            setattr(target, attr.keyword, "")
        else:
            target.add_new(attr.tag, attr.vr, None)
    rp = step.requested_procedure
    if rp.procedure_code is not None:
        code = Dataset()
        code.CodeValue = rp.procedure_code.code
        code.CodingSchemeDesignator = rp.procedure_code.coding_scheme
        code.CodeMeaning = rp.procedure_code.description
        ds.RequestedProcedureCodeSequence = [code]
        sps.ScheduledProtocolCodeSequence = [code]
    ds.ScheduledProcedureStepSequence = [sps]
    others = other_ids(rp.order.patient)
    if others:  # the patient's other identifiers (registration), as PS3.3 C.7.1.1 lists them
        ds.OtherPatientIDsSequence = [_other_id(*o) for o in others]
    if step.extra_attributes:
        apply_extra(ds, step.extra_attributes)
    return _to_part10(ds)


def _other_id(value: str, issuer: str, kind: str) -> Dataset:
    item = Dataset()
    item.PatientID = value
    item.IssuerOfPatientID = issuer
    item.TypeOfPatientID = kind
    return item


def _is_empty(elem) -> bool:
    return elem.value in (None, "", b"") or (elem.VR == "SQ" and len(elem.value) == 0)


def apply_extra(ds: Dataset, extra: dict) -> None:
    """Fill in the attributes kept verbatim from an imported item (DICOM JSON): those the
    RIS does not model, and those it models but left empty. The RIS's own non-empty
    values win, so a later change (status, patient name) shows in the answer, except for
    the attributes pinned at import (see worklist_import)."""
    extra = dict(extra)
    pinned = set(extra.pop("pinned", []))
    for path, value in extra.pop("added", {}).items():
        holder = ds.ScheduledProcedureStepSequence[0] if path.startswith(SPS_SEQUENCE_TAG + "/") else ds
        tag = int(path.rsplit("/", 1)[-1], 16)
        if tag in holder and as_text(holder[tag].value) == value:
            holder[tag].value = None  # the original had no value, the RIS's is unchanged
    sps_extra = extra.pop(SPS_SEQUENCE_TAG, None)
    for elem in Dataset.from_json(extra):
        if elem.tag not in ds or _is_empty(ds[elem.tag]) or f"{elem.tag:08X}" in pinned:
            ds[elem.tag] = elem
    items = (sps_extra or {}).get("Value") or []
    if items:
        first = Dataset.from_json(items[0])
        target = ds.ScheduledProcedureStepSequence[0]
        for elem in first:
            if elem.tag not in target or _is_empty(target[elem.tag]) or f"{SPS_SEQUENCE_TAG}/{elem.tag:08X}" in pinned:
                target[elem.tag] = elem
        for more in items[1:]:  # items beyond the first are kept as they were
            ds.ScheduledProcedureStepSequence.append(Dataset.from_json(more))


def _to_part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MWL_FIND_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def stored_item(step: SPS) -> bytes:
    """The step's stored item, built now if it was never built (rows written before the
    item existed); the read paths of C-FIND use this, never `refresh_worklist_item`."""
    if step.worklist_item is None:
        step.worklist_item = build_item(step)
    return step.worklist_item


def refresh_worklist_item(step: SPS) -> None:
    """Rebuild the stored answer of a step; call after any change to the step, its order,
    its requested procedure or its patient."""
    step.worklist_item = build_item(step)
