"""The exam's journey per order: when it was ordered, scheduled, the patient arrived, the
exam started (first image or MPPS), images were complete (stable study or MPPS completed),
reported (preliminary or final text) and signed (the original report); with counts and a flag when MPPS reports more images than Orthanc has.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.model import Order, PerformedProcedureStep, Study
from ris_app.scheduling.orders import primary_step
from ris_app.scheduling.serializers import site_iso
from ris_app.scheduling.states import SPSStatus

MILESTONES = ("ordered", "scheduled", "arrived", "started", "images_complete", "reported", "signed")


def _first(times) -> datetime | None:
    times = [t for t in times if t is not None]
    return min(times) if times else None


def _original_report(session: Session, study: Study | None):
    """Version 1 of the study's report (addenda come later and do not move the milestones)."""
    if study is None:
        return None
    from ris_app.model import Report  # the reporting module's tables

    report = session.scalar(select(Report).where(Report.study_id == study.id))
    return report.versions[0] if report is not None and report.versions else None


def journey(session: Session, order: Order) -> dict:
    step = primary_step(order)
    study = session.scalar(
        select(Study).where(Study.order_id == order.id, Study.deleted_at.is_(None)).order_by(Study.id).limit(1)
    )
    mpps = list(
        session.scalars(
            select(PerformedProcedureStep)
            .where(PerformedProcedureStep.step_id == step.id)
            .order_by(PerformedProcedureStep.id)
        )
    )

    def reached(status: SPSStatus) -> datetime | None:
        return _first(h.changed_at for h in step.history if h.to_status == status)

    completed_mpps = [m for m in mpps if m.status == "COMPLETED"]
    original = _original_report(session, study)
    at = {
        "ordered": order.created_at,
        "scheduled": reached(SPSStatus.SCHEDULED),
        "arrived": reached(SPSStatus.ARRIVED),
        "started": _first(
            [reached(SPSStatus.STARTED), study.first_received_at if study else None, *[m.started_at for m in mpps]]
        ),
        "images_complete": _first([study.stable_at if study else None, *[m.ended_at for m in completed_mpps]]),
        # Reported: the first (preliminary or final) text; signed: the original report's signature.
        "reported": (original.preliminary_at or original.signed_at) if original else None,
        "signed": original.signed_at if original else None,
    }
    mpps_instances = sum(m.instance_count for m in mpps) if mpps else None
    held = study.instance_count if study else 0
    return {
        "accession_number": order.accession_number,
        "status": step.status,
        "scheduled_start": site_iso(step.start_datetime),
        "milestones": [{"name": name, "at": at[name].isoformat() if at[name] else None} for name in MILESTONES],
        "series": study.series_count if study else 0,
        "instances": held,
        "mpps": [
            {
                "sop_instance_uid": m.sop_instance_uid,
                "status": m.status,
                "instances": m.instance_count,
                "started_at": m.started_at.isoformat() if m.started_at else None,
                "ended_at": m.ended_at.isoformat() if m.ended_at else None,
            }
            for m in mpps
        ],
        "mpps_instances": mpps_instances,
        "missing_images": bool(mpps_instances and mpps_instances > held),
    }
