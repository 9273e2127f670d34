"""Carrying out what a signature queued (ris_app/reporting/outbox.py), one task at a time,
for the sync worker: render the PDF, store the Encapsulated PDF and the Basic Text SR into
the study in Orthanc, queue the result message (ORU^R01) to one EHR destination.

Each task may be carried out more than once (a crash after doing it, before marking it
done) without doubling anything: the instances keep the SOP Instance UIDs fixed when they
were queued, so Orthanc stores the same instance again; the ORU rows go into the HL7
outbox in the same transaction that marks the task done, and only if that transaction is
the one that moved it from pending to done. Orthanc is called outside any database
transaction (as the rest of the worker does).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ris_app.clock import utcnow
from ris_app.db import transaction
from ris_app.hl7.outbound import current_settings, send_report_result
from ris_app.model import OrthancTask, Report, ReportVersion
from ris_app.orthanc.client import OrthancClient, OrthancError
from ris_app.reporting.documents import basic_text_sr, dicom_bytes, encapsulated_pdf
from ris_app.reporting.header import ReportHeader, header_for
from ris_app.reporting.lifecycle import report_text
from ris_app.reporting.outbox import (
    DONE,
    FAILED,
    PENDING,
    RENDER_PDF,
    SEND_ORU,
    STORE_PDF,
    STORE_SR,
    retry_delay,
)
from ris_app.reporting.pdf import render_pdf
from ris_app.scheduling.names import pn_of_display_name

log = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """A task that cannot be done yet (no PDF yet, no order to report to yet): tried again later."""

    retry = True


def report_plain_text(report: Report, upto: ReportVersion) -> str:
    """The report as the EHR shows it: headed sections, then the signed addenda."""
    return "\n\n".join(
        f"{heading.upper()}:\n{text.strip()}" for heading, text in report_text(report, upto) if text.strip()
    )


def run_report_task(sessions: sessionmaker[Session], orthanc: OrthancClient, task_id: int) -> bool:
    """Carry out one pending report task; True when it is done. A failure is recorded on
    the task (error, attempts, next attempt after a back-off; state failed when retrying
    cannot help) and on the version's summary (pacs_status, result_status)."""
    try:
        with transaction(sessions, write=False) as s:
            task = s.get(OrthancTask, task_id)
            if task is None or task.state != PENDING:
                return False
            kind, orthanc_id = task.kind, task.study.orthanc_id
        if kind == SEND_ORU:
            return _queue_result(sessions, task_id)
        o_study = _orthanc_study(orthanc, orthanc_id)
        if kind == RENDER_PDF:
            # Rendered in a read transaction, stored in a short writer one: the write lock
            # (SQLite's is the whole database) is not held while the PDF is drawn.
            institution = orthanc.cfg.institution
            with transaction(sessions, write=False) as s:
                version = s.get(OrthancTask, task_id).report_version
                pdf = render_pdf(version.report, version, _header(version, o_study, institution), institution)
            with transaction(sessions) as s:
                if _mark_done(s, task_id):
                    s.get(OrthancTask, task_id).report_version.pdf = pdf
            return True
        with transaction(sessions, write=False) as s:
            data = dicom_bytes(_instance(kind, s.get(OrthancTask, task_id).report_version, o_study, orthanc))
        instance_id = orthanc.store_instance(data)
        with transaction(sessions) as s:
            if _mark_done(s, task_id):
                version = s.get(OrthancTask, task_id).report_version
                if kind == STORE_PDF:
                    version.orthanc_instance_id = instance_id
                if _all_done(s, version, (STORE_PDF, STORE_SR)):
                    version.pacs_status = "stored"
                    log.info("report %d version %d stored in Orthanc", version.report_id, version.version)
        return True
    except (OrthancError, NotReady) as exc:
        _record_failure(sessions, task_id, str(exc), exc.retry)
    except Exception as exc:  # a bug or a database hiccup: keep the task, try later, show it
        log.exception("report task %d failed", task_id)
        _record_failure(sessions, task_id, f"{type(exc).__name__}: {exc}", True)
    return False


def _mark_done(s: Session, task_id: int) -> bool:
    """Pending -> done, in the caller's transaction; False when another run got there first
    (the conditional UPDATE is the guard: the loser sees no pending row)."""
    result = s.execute(
        update(OrthancTask)
        .where(OrthancTask.id == task_id, OrthancTask.state == PENDING)
        .values(state=DONE, done_at=utcnow(), error="", attempts=OrthancTask.attempts + 1, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    s.expire_all()
    return result.rowcount == 1


def _all_done(s: Session, version: ReportVersion, kinds: tuple[str, ...]) -> bool:
    states = s.scalars(
        select(OrthancTask.state).where(OrthancTask.report_version_id == version.id, OrthancTask.kind.in_(kinds))
    ).all()
    return all(state == DONE for state in states)


def _orthanc_study(orthanc: OrthancClient, orthanc_id: str) -> dict | None:
    """What Orthanc holds for the study (its tags head the documents); None when Orthanc
    does not know it. Unreachable: raised, the task waits."""
    if not orthanc_id:
        return None
    try:
        return orthanc.get(f"/studies/{orthanc_id}")
    except OrthancError as exc:
        if exc.retry:
            raise
        return None


def _header(version: ReportVersion, o_study: dict | None, institution: str) -> ReportHeader:
    header = header_for(version.report, o_study)
    header.institution = institution
    return header


def _instance(kind: str, version: ReportVersion, o_study: dict | None, orthanc: OrthancClient):
    header = _header(version, o_study, orthanc.cfg.institution)
    if kind == STORE_PDF:
        if version.pdf is None:
            raise NotReady("the PDF is not rendered yet")
        return encapsulated_pdf(version.pdf, header, version)
    previous = [v for v in version.report.versions if v.version < version.version and v.sr_instance_uid]
    return basic_text_sr(version.report, version, header, previous[-1].sr_instance_uid if previous else "")


def _queue_result(sessions: sessionmaker[Session], task_id: int) -> bool:
    """The ORU^R01 of the version into the HL7 outbox of the task's destination, in the
    transaction that marks the task done: queued exactly once."""
    with transaction(sessions) as s:
        task = s.get(OrthancTask, task_id)
        version = task.report_version
        report = version.report
        order = report.study.order
        if order is None:
            raise NotReady("the study has no order to report to yet")
        settings = current_settings()
        dest = next((d for d in settings.destinations if d.name == task.destination), None)
        if dest is None:
            raise NotReady(f"HL7 destination {task.destination!r} is not configured in the sync worker")
        if not _mark_done(s, task_id):
            return False
        version = s.get(ReportVersion, version.id)
        signer = version.signed_by
        send_report_result(
            s,
            order,
            report_plain_text(version.report, version),
            amended=version.version > 1,
            radiologist=pn_of_display_name(signer.full_name or signer.username) if signer else "",
            signed_at=version.signed_at,
            report_id=f"{version.report_id}.{version.version}",
            settings=replace(settings, destinations=(dest,)),
        )
        if _all_done(s, version, (SEND_ORU,)):
            n = len(
                s.scalars(
                    select(OrthancTask.id).where(
                        OrthancTask.report_version_id == version.id, OrthancTask.kind == SEND_ORU
                    )
                ).all()
            )
            version.result_status = f"sent: ORU^R01 queued for {n} destination(s)"
        log.info("report %d version %d: ORU^R01 queued for %s", version.report_id, version.version, dest.name)
    return True


def _record_failure(sessions: sessionmaker[Session], task_id: int, error: str, retry: bool) -> None:
    with transaction(sessions) as s:
        task = s.get(OrthancTask, task_id)
        if task is None or task.state != PENDING:
            return
        task.attempts += 1
        task.error = error[:2000]
        if retry:
            task.next_attempt_at = utcnow() + retry_delay(task.attempts)
        else:
            task.state = FAILED
        version = task.report_version
        if task.kind in (STORE_PDF, STORE_SR, RENDER_PDF):
            version.pacs_status = f"error: {error}"[:255]
        else:
            version.result_status = f"pending: {error}"[:255]
        log.warning(
            "report task %d (%s, version %d): %s (attempt %d%s)",
            task_id,
            task.kind,
            task.report_version_id,
            error,
            task.attempts,
            ", retried" if retry else ", not retried",
        )
