"""What a signature causes, queued in the signing transaction: one sync-worker task
(`orthanc_task`, ris_app/tracking/worker.py) per output of the signed version, carried out by
ris_app/reporting/publish.py and retried with back-off until done.

The SOP Instance UIDs of the two DICOM instances are fixed here, when the tasks are
queued, so a task carried out twice stores the same instance again (harmless in Orthanc)
rather than a second one.
"""

from __future__ import annotations

from datetime import timedelta

from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.hl7.outbound import current_settings
from ris_app.model import FINAL, OrthancTask, ReportVersion

# The tasks of a signed version, in the order they are queued (and first tried).
RENDER_PDF = "report_pdf"  # render the PDF, kept on the version
STORE_PDF = "store_pdf"  # the Encapsulated PDF into the study in Orthanc (after RENDER_PDF)
STORE_SR = "store_sr"  # the Basic Text SR into the study in Orthanc
SEND_ORU = "send_oru"  # the ORU^R01 into the HL7 outbox, one task per destination
REPORT_TASKS = (RENDER_PDF, STORE_PDF, STORE_SR, SEND_ORU)
AFTER = {STORE_PDF: RENDER_PDF}  # a task waits while the one it needs is not done
LABELS = {
    RENDER_PDF: "PDF",
    STORE_PDF: "PDF into the PACS",
    STORE_SR: "SR into the PACS",
    SEND_ORU: "Result to",
}
PENDING, DONE, FAILED = "pending", "done", "failed"
# Back-off of a task that failed: 2 s, 4 s, 8 s ... at most 5 minutes between attempts.
RETRY_SECONDS, RETRY_MAX_SECONDS = 2.0, 300.0


def retry_delay(attempts: int) -> timedelta:
    """How long a task waits after its `attempts`-th failed attempt."""
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_SECONDS * 2 ** min(attempts - 1, 20)))


def queue_publication(session: Session, version: ReportVersion) -> list[OrthancTask]:
    """Queue every output of a version just signed, in the caller's (the signing)
    transaction: nothing is sent for a signature that rolls back, nothing is lost after
    one that commits."""
    if version.status != FINAL:
        raise ValueError("only a signed (FINAL) version is published")
    version.sop_instance_uid = version.sop_instance_uid or generate_uid()
    version.sr_instance_uid = version.sr_instance_uid or generate_uid()
    kinds = []
    if not published_before_the_outbox(version, "pacs"):
        kinds += [(RENDER_PDF, ""), (STORE_PDF, ""), (STORE_SR, "")]
        version.pacs_status = "queued"
    if not published_before_the_outbox(version, "ehr"):
        oru = [(SEND_ORU, d.name) for d in current_settings().destinations]
        kinds += oru
        version.result_status = (
            f"queued for {len(oru)} destination(s)" if oru else "pending: no HL7 destination configured"
        )
    tasks = [
        OrthancTask(kind=kind, study_id=version.report.study_id, replace={}, report_version=version, destination=dest)
        for kind, dest in kinds
    ]
    session.add_all(tasks)
    session.flush()
    return tasks


def published_before_the_outbox(version: ReportVersion, part: str) -> bool:
    """A version signed before signing queued tasks (migration 0009_signing_outbox) that
    reached the PACS ("pacs") or the EHR ("ehr") then: not queued again by a retry."""
    if part == "pacs":
        return version.pacs_status == "stored" and version.pdf is not None
    return version.result_status.startswith("sent")


def tasks_of(session: Session, version: ReportVersion) -> list[OrthancTask]:
    return list(
        session.scalars(select(OrthancTask).where(OrthancTask.report_version_id == version.id).order_by(OrthancTask.id))
    )


def retry_now(session: Session, version: ReportVersion) -> int:
    """The manual retry: every task of the version not done is due again now (a failed one
    too); a version signed before the outbox existed gets its tasks queued. Nothing is
    carried out here: the worker does it. Returns how many tasks are due."""
    tasks = tasks_of(session, version)
    if not tasks:
        return len(queue_publication(session, version))
    due = [t for t in tasks if t.state != DONE]
    for task in due:
        task.state, task.next_attempt_at = PENDING, utcnow()
    session.flush()
    return len(due)


def task_json(task: OrthancTask) -> dict:
    """A report task as the report API and page show it."""
    waiting = task.state == PENDING and bool(task.error)
    return {
        "kind": task.kind,
        "destination": task.destination or None,
        "state": "error" if waiting else task.state,  # error: failed last time, tried again at next_attempt_at
        "attempts": task.attempts,
        "error": task.error or None,
        "next_attempt_at": task.next_attempt_at.isoformat() if task.next_attempt_at and task.state == PENDING else None,
        "done_at": task.done_at.isoformat() if task.done_at else None,
    }
