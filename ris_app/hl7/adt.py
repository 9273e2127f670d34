"""ADT: A01/A04 register (or update a known patient), A08 updates, A40 merges, A03/A11
update demographics only (the RIS keeps no visits).
"""

from __future__ import annotations

import logging

from ris_app.errors import DomainError
from ris_app.hl7.clinical import apply_adt_clinical
from ris_app.hl7.parse import (
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    Message,
    content_error,
    reject,
    warning,
)
from ris_app.hl7.reading import (
    Context,
    domain_error,
    family_of,
    field_text,
    identity,
    lookup_patient,
    read_patient,
    required_segment,
    segments,
    upsert_patient,
)
from ris_app.registration.duplicates import possible_duplicates
from ris_app.tracking.corrections import merge_patients, update_patient_everywhere

log = logging.getLogger(__name__)


def adt_register(ctx: Context, msg: Message) -> str:
    """Register or update the patient, with its other identifiers, allergies (AL1) and
    measures (OBX). A new patient who may be a known one is registered all the same (the
    EHR's identity is authoritative), and the ACK text names the likely match."""
    pid = required_segment(msg, "PID")
    fields, _ = read_patient(segments(msg, "PID"), family_of(msg))
    existed = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", "")) is not None
    patient = upsert_patient(ctx, fields, identifiers=identity(pid)[1])
    assert patient is not None
    apply_adt_clinical(ctx, msg, patient)
    if existed:
        return "patient updated"
    dups = possible_duplicates(ctx.session, patient)
    if dups:
        first = dups[0]
        note = f"possible duplicate of MRN {first['mrn']}: {first['reasons'][0]}"
        ctx.warnings.append(warning(f"patient registered; {note}", "PID-3"))
        return f"patient registered; {note}"
    return "patient registered"


def adt_update(ctx: Context, msg: Message) -> str:
    return adt_register(ctx, msg)


def adt_demographics_only(ctx: Context, msg: Message) -> str:
    """A03 (discharge) / A11 (cancel admit): the RIS keeps no visits; demographics of a
    known patient are refreshed, nothing else changes."""
    required_segment(msg, "PID")
    fields, _ = read_patient(segments(msg, "PID"), family_of(msg))
    patient = upsert_patient(ctx, fields, create=False)
    return "acknowledged; no visit kept" if patient is None else "acknowledged; demographics refreshed"


def adt_merge(ctx: Context, msg: Message) -> str:
    """A40: each PID/MRG pair merges MRG-1 (prior) into PID-3 (surviving) through the one
    merge of the pages and the API (tracking.corrections.merge_patients): the prior
    patient's orders move to the surviving one (their worklist items say so) and the prior
    record is kept, marked merged into it. If only the prior exists it takes the new ID."""
    fam = family_of(msg)
    pids, mrgs = msg.all("PID"), msg.all("MRG")
    if not pids or not mrgs:
        raise reject(SEGMENT_SEQUENCE_ERROR, "A40 needs PID and MRG segments", "MRG" if pids else "PID")
    done = []
    for pid, mrg in zip(pids, mrgs, strict=False):
        segs = {"PID": pid, "MRG": mrg}
        fields, _ = read_patient(segs, fam)
        prior_mrn, _ = field_text(segs, "prior_mrn", fam, 64)
        if not prior_mrn:
            raise content_error(REQUIRED_FIELD_MISSING, "prior patient ID (MRG-1) is required", "MRG-1")
        prior_issuer, _ = field_text(segs, "prior_issuer", fam, 64)
        prior = lookup_patient(ctx.session, prior_mrn, prior_issuer)
        surviving = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", ""))
        if prior is None:
            if surviving is None and fields.get("family_name"):
                upsert_patient(ctx, fields)
            done.append("prior patient unknown")
        elif surviving is None:
            update_patient_everywhere(
                ctx.session, prior, {k: v for k, v in fields.items() if v or k == "issuer"}, user="hl7"
            )
            done.append("patient ID changed")
        elif prior.id == surviving.id:
            done.append("already merged")
        else:
            upsert_patient(ctx, fields)  # the surviving patient's demographics, as PID says
            try:
                merge_patients(ctx.session, surviving, prior, user="hl7")
            except DomainError as exc:
                raise domain_error(exc, fam) from None
            done.append("patients merged")
    return "; ".join(done)
