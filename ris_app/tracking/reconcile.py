"""Periodic reconciliation: compare Orthanc's studies with the RIS and repair drift.

The change feed delivers every event at least once, but a study deleted while the log was
trimmed, a count changed by a modification, or a database restored from backup can still
leave the two apart. Reconciliation reads what Orthanc holds now and replays it through
the same idempotent upsert as the feed (change "Reconcile"), and marks studies Orthanc no
longer has as deleted. The events it replays are built by `StudyEvent.from_orthanc` from
the same REST answers the plugin reads, so a study links here exactly as it would from
the feed (SPS IDs and sending AE included).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.clock import utcnow
from ris_app.db import retrying, transaction
from ris_app.model import Study
from ris_app.orthanc.client import OrthancClient
from ris_app.tracking import state as sync_state
from ris_app.tracking.events import StudyEvent, apply_study_event

log = logging.getLogger(__name__)


def orthanc_study_event(orthanc: OrthancClient, orthanc_id: str) -> StudyEvent | None:
    """The study as Orthanc holds it now, as a "Reconcile" event; None when it is gone."""
    answers = orthanc.study_answers(orthanc_id)
    return None if answers is None else StudyEvent.from_orthanc(**answers, change="Reconcile")


@dataclass
class ReconcileReport:
    orthanc_studies: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    at: str = ""


def _apply(sessions: sessionmaker[Session], event: StudyEvent) -> None:
    """One study's event in its own transaction, again when the plugin's event for the same
    study (images arriving now) won the race to insert it: the retry updates that row."""

    def work() -> None:
        with transaction(sessions) as s:
            apply_study_event(s, event)

    retrying(work, what="reconciliation of a study")


def reconcile(sessions: sessionmaker[Session], orthanc: OrthancClient) -> ReconcileReport:
    report = ReconcileReport()
    in_orthanc = set(orthanc.study_ids())
    report.orthanc_studies = len(in_orthanc)
    with transaction(sessions, write=False) as s:
        known = {
            row.orthanc_id: (row.study_instance_uid, row.series_count, row.instance_count)
            for row in s.scalars(select(Study).where(Study.deleted_at.is_(None)))
        }
    for oid in sorted(in_orthanc):
        mine = known.get(oid)
        if mine is not None:
            # One request per study the RIS has; the full read only when the counts differ.
            counts = orthanc.study_counts(oid)
            if counts is None or mine[1:] == counts:  # deleted since the listing, or current
                continue
        event = orthanc_study_event(orthanc, oid)
        if event is None:  # deleted between the listing and now
            continue
        _apply(sessions, event)
        if mine is None:
            report.added += 1
        else:
            report.updated += 1
    for oid, (suid, _, _) in known.items():
        if oid in in_orthanc:
            continue
        # Modified studies change Orthanc ID: look the UID up before calling it deleted.
        moved_to = orthanc.find_study(suid)
        with transaction(sessions) as s:
            study = s.scalar(select(Study).where(Study.study_instance_uid == suid))
            if study is None:
                continue
            if moved_to:
                event = orthanc_study_event(orthanc, moved_to)
                if event is not None:
                    apply_study_event(s, event)
                    report.updated += 1
                    continue
            study.deleted_at = utcnow()
            report.deleted += 1
    report.at = utcnow().isoformat()
    with transaction(sessions) as s:
        sync_state.put(s, sync_state.RECONCILE, asdict(report))
    if report.added or report.updated or report.deleted:
        log.warning(
            "reconciliation repaired drift: %d added, %d updated, %d deleted",
            report.added,
            report.updated,
            report.deleted,
        )
    return report
