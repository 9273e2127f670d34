"""The sync worker (`orthanc-ris sync-worker`, a part of `orthanc-ris up`): carries out the
queued tasks (corrections to Orthanc; what a report signature causes: PDF, instances into
Orthanc, the ORU into the HL7 outbox) and reconciles Orthanc's studies with the RIS on a timer.
It also sends the patients' due messages (ris_app.reminders.outbox), marks missed
appointments no-show (ris_app.frontdesk.noshow), seals the audit
trail every round and, when ORTHANC_RIS_AUDIT_SYSLOG is set, runs
the ATNA export in a thread of its own (ris_app.audit.export).

Orthanc calls happen outside database transactions, so a slow modification job never
holds a lock the RIS needs; each task's outcome is written in its own short transaction.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit.chain import seal
from ris_app.audit.export import start_export
from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.frontdesk.noshow import mark_no_shows
from ris_app.model import OrthancTask
from ris_app.orthanc.client import OrthancClient, OrthancError
from ris_app.orthanc.modalities import sync_stations
from ris_app.reminders.outbox import send_due
from ris_app.reporting.outbox import AFTER
from ris_app.reporting.publish import run_report_task
from ris_app.tracking.events import apply_study_event
from ris_app.tracking.reconcile import orthanc_study_event, reconcile

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 20


def _current_orthanc_id(orthanc: OrthancClient, orthanc_id: str, suid: str) -> str:
    try:
        orthanc.get(f"/studies/{orthanc_id}")
        return orthanc_id
    except OrthancError as exc:
        if exc.retry:
            raise
    found = orthanc.find_study(suid)
    if found is None:
        raise OrthancError(f"study {suid} is not in Orthanc", retry=False)
    return found


def _due(task: OrthancTask, now: datetime) -> bool:
    return task.next_attempt_at is None or task.next_attempt_at <= now


def _keys(kind: str, study_id: int, report_id: int | None, destination: str) -> tuple[tuple, ...]:
    """What a task waits behind when an earlier task failed this round: a change of its
    study (a report waits for the study's correction), and, for a report task, the same
    output of an earlier version of the report (an addendum's ORU never overtakes the
    original's), and the output it is made from (outbox.AFTER). A report task that fails
    blocks only its own kind."""
    if kind == "modify":
        return (("study", study_id),)
    after = (("report", report_id, AFTER[kind], ""),) if kind in AFTER else ()
    return (("report", report_id, kind, destination), ("study", study_id), *after)


def run_pending_tasks(sessions: sessionmaker[Session], orthanc: OrthancClient, now: datetime | None = None) -> int:
    """Carry out every due task in order: corrections of studies in Orthanc and what report
    signatures queued. A study whose task fails waits for the next round (its later tasks
    must not overtake it). `now` (tests) decides which backed-off tasks are due. Returns
    how many tasks were done."""
    now = now or utcnow()
    with transaction(sessions, write=False) as s:
        pending = [
            (
                t.id,
                t.kind,
                t.study_id,
                t.report_version.report_id if t.report_version else None,
                t.destination,
                _due(t, now),
            )
            for t in s.scalars(select(OrthancTask).where(OrthancTask.state == "pending").order_by(OrthancTask.id))
        ]
    blocked: set[tuple] = set()
    done = 0
    for task_id, kind, study_id, report_id, destination, due in pending:
        keys = _keys(kind, study_id, report_id, destination)
        if not due:  # backing off: what comes after it waits too
            blocked.add(keys[0])
            continue
        if blocked.intersection(keys):
            continue
        ok = _modify(sessions, orthanc, task_id) if kind == "modify" else run_report_task(sessions, orthanc, task_id)
        if ok:
            done += 1
        else:
            blocked.add(keys[0])
    return done


def _modify(sessions: sessionmaker[Session], orthanc: OrthancClient, task_id: int) -> bool:
    with transaction(sessions, write=False) as s:
        task = s.get(OrthancTask, task_id)
        study = task.study
        study_id, orthanc_id, suid, replace = study.id, study.orthanc_id, study.study_instance_uid, dict(task.replace)
    try:
        current = _current_orthanc_id(orthanc, orthanc_id, suid)
        new_id = orthanc.modify_study(current, replace)
        event = orthanc_study_event(orthanc, new_id)
    except OrthancError as exc:
        with transaction(sessions) as s:
            task = s.get(OrthancTask, task_id)
            task.attempts += 1
            task.error = str(exc)[:2000]
            if not exc.retry or task.attempts >= MAX_ATTEMPTS:
                task.state = "failed"
        log.warning("Orthanc task %d for study %d: %s", task_id, study_id, exc)
        return False
    with transaction(sessions) as s:
        task = s.get(OrthancTask, task_id)
        task.state, task.done_at, task.error = "done", utcnow(), ""
        task.attempts += 1
        if event is not None:
            apply_study_event(s, event)
    log.info("Orthanc task %d done: study %d now %s", task_id, study_id, new_id)
    return True


def run(cfg: Config, *, once: bool = False, poll_seconds: float = 1.0) -> None:
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    orthanc = OrthancClient(cfg)
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    next_reconcile = time.monotonic() + min(cfg.reconcile_seconds, 10.0)  # first pass soon after start
    stations_synced = False  # Orthanc's DICOM allowlist: at start, then with each reconciliation
    start_export(cfg, sessions, stop)  # the sealed audit events to the audit repository, in a thread
    while True:
        try:  # the audit chain first: it needs no Orthanc
            seal(sessions)
        except Exception:
            log.exception("audit trail could not be sealed")
        try:  # the patients' messages: they need no Orthanc either
            send_due(sessions, cfg)
        except Exception:
            log.exception("patient messages could not be sent")
        try:  # missed appointments: before the next C-FIND offers them again
            mark_no_shows(sessions, cfg.no_show_grace_minutes)
        except Exception:
            log.exception("no-shows could not be marked")
        try:
            run_pending_tasks(sessions, orthanc)
            if not stations_synced:
                with sessions() as s:
                    changed, deleted = sync_stations(cfg, s)
                log.info("Orthanc's modalities follow the stations (%d set, %d deleted)", changed, deleted)
                stations_synced = True
            if once or time.monotonic() >= next_reconcile:
                reconcile(sessions, orthanc)
                next_reconcile = time.monotonic() + cfg.reconcile_seconds
                stations_synced = False
        except OrthancError as exc:
            log.warning("Orthanc not available for sync: %s", exc)
        except Exception:  # keep the worker alive; the supervisor shows the log
            log.exception("sync worker error")
        if once or stop.wait(poll_seconds):
            return
