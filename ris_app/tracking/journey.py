"""The exam's journey per order: when it was ordered, scheduled, the patient arrived, the
exam started (first image or MPPS), images were complete (stable study or MPPS completed),
the exam was completed, reported (preliminary or final text) and signed (the original
report); with counts and a flag when MPPS reports more images than Orthanc has. `events`
is the whole story in time order for the page: every status change (who, through what,
why), every edit and move of the waiting exam (scheduling.history), the images, each
signed version (the report and its addenda) and each critical result communicated.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.model import Order, PerformedProcedureStep, Study
from ris_app.scheduling.orders import primary_step
from ris_app.scheduling.serializers import site_iso
from ris_app.scheduling.states import SPSStatus

MILESTONES = ("ordered", "scheduled", "arrived", "started", "images_complete", "completed", "reported", "signed")


def _first(times) -> datetime | None:
    times = [t for t in times if t is not None]
    return min(times) if times else None


def _report(session: Session, study: Study | None):
    if study is None:
        return None
    from ris_app.model import Report  # the reporting module's tables

    return session.scalar(select(Report).where(Report.study_id == study.id))


def _events(step, study: Study | None, report) -> list[dict]:
    """Everything that happened to the exam, oldest first (ties: in the order written)."""
    events = [
        {
            "at": h.changed_at,
            "what": f"{(h.from_status or 'new').lower()} → {h.to_status.lower()}",
            "through": h.source,
            "who": h.actor,
            "reason": h.reason,
        }
        for h in step.history
    ]
    for c in step.changes:  # edits and moves of the waiting exam
        if c.kind == "move":
            what = "moved" + (f" ({c.what})" if c.what else "") + " to"
            moved_to = c.start_after.isoformat() if c.start_after else None
            events.append({"at": c.changed_at, "what": what, "through": c.source, "who": c.actor, "moved_to": moved_to})
        else:
            events.append({"at": c.changed_at, "what": f"edited: {c.what}", "through": c.source, "who": c.actor})
    if study is not None:
        events.append({"at": study.first_received_at, "what": "first image received", "through": "images"})
        if study.stable_at:
            events.append({"at": study.stable_at, "what": "images complete", "through": "images"})
    for v in report.versions if report is not None else ():
        if v.signed_at:
            what = "report signed" if v.version == 1 else f"addendum {v.version - 1} signed"
            who = v.signed_by.username if v.signed_by else ""
            events.append({"at": v.signed_at, "what": what, "through": "reading", "who": who})
    for c in report.critical_results if report is not None else ():
        who = c.recorded_by.username if c.recorded_by else ""
        what = f"critical result told to {c.communicated_to} ({c.method})"
        events.append({"at": c.communicated_at, "what": what, "through": "reading", "who": who})
    events.sort(key=lambda e: e["at"])  # stable: same-time rows keep their order
    return [{"who": "", "reason": "", "moved_to": None, **e, "at": e["at"].isoformat()} for e in events]


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
    report = _report(session, study)
    original = report.versions[0] if report is not None and report.versions else None
    at = {
        "ordered": order.created_at,
        "scheduled": reached(SPSStatus.SCHEDULED),
        "arrived": reached(SPSStatus.ARRIVED),
        "started": _first(
            [reached(SPSStatus.STARTED), study.first_received_at if study else None, *[m.started_at for m in mpps]]
        ),
        "images_complete": _first([study.stable_at if study else None, *[m.ended_at for m in completed_mpps]]),
        "completed": reached(SPSStatus.COMPLETED),
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
        "events": _events(step, study, report),
    }
