"""Corrections of studies and patients: link a misfiled study to its order, undo it,
propagate a patient's new demographics, merge two patients.

Each correction is recorded (StudyCorrection: before and after) and changes the RIS in
the caller's transaction at once; the matching change to the images in Orthanc is queued
as an OrthancTask, which the sync worker applies with Orthanc's modify API and retries
until Orthanc has it. So a correction never waits on Orthanc and is never lost.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.errors import Conflict, Invalid
from ris_app.model import Order, OrthancTask, Patient, Study, StudyCorrection
from ris_app.scheduling.names import patient_pn
from ris_app.scheduling.orders import primary_step, set_step_status, update_patient
from ris_app.scheduling.states import STARTABLE, SPSStatus

log = logging.getLogger(__name__)

# A study unlinked by hand is not linked again automatically by a late event.
UNLINKED = "unlinked"


def patient_tags(patient: Patient) -> dict[str, str]:
    """The patient-level DICOM attributes the RIS is the master of."""
    return {
        "PatientID": patient.mrn,
        "PatientName": patient_pn(patient),
        "PatientBirthDate": patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
        "PatientSex": patient.sex or "",
    }


def study_tags(study: Study) -> dict[str, str]:
    """What the study holds now in Orthanc (as last reported), for an undo."""
    return {
        "PatientID": study.patient_mrn,
        "PatientName": study.patient_name,
        "PatientBirthDate": study.patient_birth_date,
        "PatientSex": study.patient_sex,
        "AccessionNumber": study.accession_number,
    }


def queue_orthanc_change(
    session: Session, study: Study, replace: dict, correction: StudyCorrection | None
) -> OrthancTask:
    task = OrthancTask(study=study, replace=replace, correction_id=correction.id if correction else None)
    session.add(task)
    return task


def link_study(session: Session, study: Study, order: Order, user: str = "api") -> StudyCorrection:
    """Link an unmatched study to `order`: the RIS at once, Orthanc through a queued task."""
    if study.order_id is not None and study.order_id != order.id:
        raise Conflict("the study is linked to another order; undo that link first", field="study")
    step = primary_step(order)
    before = {**study_tags(study), "order": None, "link_method": study.link_method, "step_status": step.status}
    target = {**patient_tags(order.patient), "AccessionNumber": order.accession_number}
    study.order = order
    study.link_method = "manual"
    if study.instance_count > 0:
        set_step_status(step, SPSStatus.STARTED, "link", only_from=STARTABLE)
    after = {**target, "order": order.accession_number, "link_method": "manual", "step_status": step.status}
    correction = StudyCorrection(
        action="link", study=study, patient_id=order.patient_id, before=before, after=after, performed_by=user
    )
    session.add(correction)
    session.flush()
    queue_orthanc_change(session, study, target, correction)
    log.info("study %s linked by hand to order %s", study.orthanc_id, order.accession_number)
    return correction


def undo(session: Session, correction: StudyCorrection, user: str = "api") -> StudyCorrection:
    """Undo a link: the study is unmatched again and Orthanc gets its former tags back."""
    if correction.undone_by_id is not None:
        raise Conflict("already undone", field="correction")
    if correction.action != "link" or correction.study is None:
        raise Invalid("only links can be undone", field="correction")
    study = correction.study
    before = correction.before
    order = study.order
    study.order = None
    study.link_method = UNLINKED
    if order is not None:
        step = primary_step(order)
        previous = before.get("step_status")
        # Put the step back only if nothing else moved it since the link.
        if previous and step.status == correction.after.get("step_status") and step.status != previous:
            set_step_status(step, SPSStatus(previous), "undo")  # not a workflow move: no state table
    replace = {
        k: before[k]
        for k in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber")
        if k in before
    }
    reverse = StudyCorrection(
        action="unlink",
        study=study,
        patient_id=correction.patient_id,
        before=correction.after,
        after=before,
        performed_by=user,
    )
    session.add(reverse)
    session.flush()
    correction.undone_by_id = reverse.id
    queue_orthanc_change(session, study, replace, reverse)
    log.info("link of study %s undone", study.orthanc_id)
    return reverse


def patient_studies(session: Session, patient: Patient) -> list[Study]:
    order_ids = [o.id for o in patient.orders]
    if not order_ids:
        return []
    return list(session.scalars(select(Study).where(Study.order_id.in_(order_ids), Study.deleted_at.is_(None))))


def update_patient_everywhere(
    session: Session, patient: Patient, changes: dict, user: str = "api"
) -> list[OrthancTask]:
    """Edit demographics: worklist items are rebuilt at once (update_patient), and each of
    the patient's stored studies is queued for correction in Orthanc."""
    before = patient_tags(patient)
    update_patient(session, patient, changes)
    after = patient_tags(patient)
    if before == after:
        return []
    correction = StudyCorrection(
        action="patient_update", patient_id=patient.id, before=before, after=after, performed_by=user
    )
    session.add(correction)
    session.flush()
    return [queue_orthanc_change(session, s, after, correction) for s in patient_studies(session, patient)]


def _stale(studies, target: dict[str, str]) -> list[Study]:
    """The studies whose patient tags (as Orthanc last reported them) differ from `target`."""
    return sorted(
        (
            s
            for s in studies
            if (s.patient_mrn, s.patient_name, s.patient_birth_date, s.patient_sex)
            != (target["PatientID"], target["PatientName"], target["PatientBirthDate"], target["PatientSex"])
        ),
        key=lambda s: s.id,
    )


def sync_patient_studies(
    session: Session, patient: Patient, action: str, before: dict, user: str = "api", extra: list[Study] | None = None
) -> list[OrthancTask]:
    """Queue an Orthanc correction for each of the patient's studies (and `extra` ones)
    whose patient tags differ from the RIS's, under one audited correction."""
    target = patient_tags(patient)
    stale = _stale(set(patient_studies(session, patient)) | set(extra or ()), target)
    if not stale:
        return []
    correction = StudyCorrection(action=action, patient_id=patient.id, before=before, after=target, performed_by=user)
    session.add(correction)
    session.flush()
    return [queue_orthanc_change(session, s, target, correction) for s in stale]


def surviving_patient(session: Session, patient: Patient | None) -> Patient | None:
    """The record that stands for `patient` now: the survivor it was merged into (through
    any chain of merges), else itself. A late message with a merged MRN lands here."""
    seen = set()
    while patient is not None and patient.merged_into_id is not None and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into_id)
    return patient


def merge_patients(session: Session, survivor: Patient, merged: Patient, user: str = "api") -> StudyCorrection:
    """The one merge, for the pages, the API and HL7 ADT^A40: move every order (with its
    steps and studies) of `merged` to `survivor`. `merged` is kept, marked merged into the
    survivor: the audit trail keeps its patient, and a late message or search with its MRN
    is resolved to the survivor (`surviving_patient`)."""
    if survivor.id == merged.id:
        raise Invalid("a patient cannot be merged into itself", field="merged_mrn")
    if merged.merged_into_id is not None:
        raise Conflict("this patient was already merged", field="merged_mrn")
    if survivor.merged_into_id is not None:
        raise Conflict("the surviving patient was itself merged into another", field="mrn")
    moved = list(merged.orders)
    for order in moved:
        order.patient = survivor
    merged.merged_into_id = survivor.id
    session.flush()
    session.expire(survivor, ["orders"])
    session.expire(merged, ["orders"])
    update_patient(session, survivor, {})  # rebuilds the worklist items of every step
    target = patient_tags(survivor)
    correction = StudyCorrection(
        action="merge",
        patient_id=survivor.id,
        performed_by=user,
        before={"merged_mrn": merged.mrn, "orders": [o.accession_number for o in moved]},
        after={**target, "survivor_mrn": survivor.mrn},
    )
    session.add(correction)
    session.flush()
    studies = set(patient_studies(session, survivor))
    # Unmatched studies filed under the merged MRN belong to the survivor too.
    studies |= set(session.scalars(select(Study).where(Study.patient_mrn == merged.mrn, Study.deleted_at.is_(None))))
    for study in _stale(studies, target):
        queue_orthanc_change(session, study, target, correction)
    log.info("patient %d merged into %d (%d orders)", merged.id, survivor.id, len(moved))
    return correction


def coerce_if_needed(session: Session, study: Study | None) -> OrthancTask | None:
    """Per-site option: once a study linked by the modality is stable, make its patient
    and accession in Orthanc agree with the RIS (a typo at the console, an outdated
    worklist). Done after reception rather than in Orthanc's storing thread, which must
    never wait on the RIS; a later instance makes the study stable again and is coerced
    in turn."""
    if study is None or study.order is None or study.stable_at is None or study.link_method == "manual":
        return None
    target = {**patient_tags(study.order.patient), "AccessionNumber": study.order.accession_number}
    held = {
        "PatientID": study.patient_mrn,
        "PatientName": study.patient_name,
        "PatientBirthDate": study.patient_birth_date,
        "PatientSex": study.patient_sex,
        "AccessionNumber": study.accession_number,
    }
    if held == target:
        return None
    if (
        session.scalar(
            select(OrthancTask.id).where(
                OrthancTask.study_id == study.id, OrthancTask.kind == "modify", OrthancTask.state == "pending"
            )
        )
        is not None  # a correction of the study is on its way (a report's tasks are not)
    ):
        return None
    correction = StudyCorrection(
        action="coerce",
        study=study,
        patient_id=study.order.patient_id,
        before=held,
        after=target,
        performed_by="coercion",
    )
    session.add(correction)
    session.flush()
    log.info("study %s differs from its order's demographics: coercion queued", study.orthanc_id)
    return queue_orthanc_change(session, study, target, correction)
