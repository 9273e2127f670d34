"""The sync worker (`orthanc-ris sync-worker`, a part of `orthanc-ris up`): applies queued
corrections to Orthanc and reconciles Orthanc's studies with the RIS on a timer.

Orthanc calls happen outside database transactions, so a slow modification job never
holds a lock the RIS needs; each task's outcome is written in its own short transaction.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model import OrthancTask, Study
from ris_app.orthanc.client import OrthancClient, OrthancError
from ris_app.orthanc.modalities import sync_stations
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


def run_pending_tasks(sessions: sessionmaker[Session], orthanc: OrthancClient) -> int:
    """Apply every pending task in order; a study whose task fails waits for the next round
    (its later tasks must not overtake it). Returns how many tasks were done."""
    with transaction(sessions) as s:
        pending = [
            (t.id, t.study_id)
            for t in s.scalars(select(OrthancTask).where(OrthancTask.state == "pending").order_by(OrthancTask.id))
        ]
    blocked: set[int] = set()
    done = 0
    for task_id, study_id in pending:
        if study_id in blocked:
            continue
        with transaction(sessions) as s:
            task = s.get(OrthancTask, task_id)
            study = s.get(Study, study_id)
            orthanc_id, suid, replace = study.orthanc_id, study.study_instance_uid, dict(task.replace)
        try:
            current = _current_orthanc_id(orthanc, orthanc_id, suid)
            new_id = orthanc.modify_study(current, replace)
            event = orthanc_study_event(orthanc, new_id)
        except OrthancError as exc:
            blocked.add(study_id)
            with transaction(sessions) as s:
                task = s.get(OrthancTask, task_id)
                task.attempts += 1
                task.error = str(exc)[:2000]
                if not exc.retry or task.attempts >= MAX_ATTEMPTS:
                    task.state = "failed"
            log.warning("Orthanc task %d for study %d: %s", task_id, study_id, exc)
            continue
        with transaction(sessions) as s:
            task = s.get(OrthancTask, task_id)
            task.state, task.done_at, task.error = "done", utcnow(), ""
            task.attempts += 1
            if event is not None:
                apply_study_event(s, event)
        done += 1
        log.info("Orthanc task %d done: study %d now %s", task_id, study_id, new_id)
    return done


def run(cfg: Config, *, once: bool = False, poll_seconds: float = 1.0) -> None:
    sessions = make_sessionmaker(make_engine(cfg.database_url))
    orthanc = OrthancClient(cfg)
    stop = threading.Event()
    if not once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    next_reconcile = time.monotonic() + min(cfg.reconcile_seconds, 10.0)  # first pass soon after start
    stations_synced = False  # Orthanc's DICOM allowlist: at start, then with each reconciliation
    while True:
        try:
            if not stations_synced:
                with sessions() as s:
                    changed, deleted = sync_stations(cfg, s)
                log.info("Orthanc's modalities follow the stations (%d set, %d deleted)", changed, deleted)
                stations_synced = True
            run_pending_tasks(sessions, orthanc)
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
