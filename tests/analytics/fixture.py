"""A small department with known timestamps, for checking the dashboards by hand.

One CT room open Monday 08:00-12:00 (blocked 11:00-12:00 on the day), five bookings on a
past Monday: three exams done (two with MPPS, one with images only), a no-show and a
cancellation; and two studies waiting to be read now. The expected numbers are worked
out in the tests' comments.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from ris_app.clock import from_site, site_today, utcnow
from ris_app.model import (
    FINAL,
    Order,
    Patient,
    PerformedProcedureStep,
    ProcedureCode,
    Report,
    ReportVersion,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationBlock,
    StationHours,
    StepStatusChange,
    Study,
)


def monday() -> date:
    today = site_today()
    return today - timedelta(days=today.weekday() + 7)


def at(day: date, hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return from_site(datetime.combine(day, time(h, m)))


# accession: priority, ordered, history [(state, time)], step start-end, MPPS (start, end),
# images (first, last, stable), preliminary, signed
EXAMS = {
    "E1": (
        "ROUTINE",
        "07:00",
        [("SCHEDULED", "07:10"), ("ARRIVED", "08:00"), ("STARTED", "08:10"), ("COMPLETED", "08:40")],
        ("08:00", "08:30"),
        ("08:10", "08:40"),
        ("08:11", "08:39", "08:40"),
        None,
        "10:40",
    ),
    "E2": (
        "STAT",
        "07:30",
        [("SCHEDULED", "07:40"), ("ARRIVED", "08:30"), ("STARTED", "08:45"), ("COMPLETED", "09:00")],
        ("08:30", "09:00"),
        ("08:40", "09:00"),
        ("08:41", "09:05", "09:10"),
        "09:40",
        "10:10",
    ),
    "E3": (
        "ROUTINE",
        "08:00",
        [("SCHEDULED", "08:05"), ("ARRIVED", "09:00"), ("STARTED", "09:20"), ("COMPLETED", "09:55")],
        ("09:00", "09:30"),
        None,
        ("09:21", "09:50", "09:55"),
        None,
        "13:55",
    ),
    "E4": (
        "ROUTINE",
        "06:00",
        [("SCHEDULED", "06:10"), ("NO_SHOW", "10:30")],
        ("10:00", "10:30"),
        None,
        None,
        None,
        None,
    ),
    "E5": (
        "ROUTINE",
        "06:30",
        [("SCHEDULED", "06:40"), ("CANCELED", "09:00")],
        ("11:00", "11:30"),
        None,
        None,
        None,
        None,
    ),
}


def build(session) -> date:
    day = monday()
    station = Station(aet="CT1", modality="CT", name="CT1")
    session.add(station)
    session.flush()
    session.add(StationHours(station_id=station.id, weekday=0, opens=time(8), closes=time(12)))
    session.add(
        StationBlock(
            station_id=station.id, start_datetime=at(day, "11:00"), end_datetime=at(day, "12:00"), kind="maintenance"
        )
    )
    proc = session.query(ProcedureCode).filter_by(code="CTHEAD").one()
    patient = Patient(mrn="AN1", family_name="Test")
    session.add(patient)
    session.flush()
    for n, (acc, (prio, ordered, history, (s0, s1), mpps, images, prelim, signed)) in enumerate(EXAMS.items()):
        order = Order(accession_number=acc, patient_id=patient.id, priority=prio, created_at=at(day, ordered))
        rp = RequestedProcedure(requested_procedure_id="1", procedure_code=proc, study_instance_uid=f"1.2.3.{n}")
        order.requested_procedures.append(rp)
        step = ScheduledProcedureStep(
            sps_id=f"S{n}",
            modality="CT",
            station_aet="CT1",
            start_datetime=at(day, s0),
            end_datetime=at(day, s1),
            status=history[-1][0],
        )
        rp.steps.append(step)
        previous = None
        for state, t in history:
            step.history.append(StepStatusChange(from_status=previous, to_status=state, changed_at=at(day, t)))
            previous = state
        session.add(order)
        session.flush()
        if mpps:
            session.add(
                PerformedProcedureStep(
                    sop_instance_uid=f"9.{n}",
                    step_id=step.id,
                    status="COMPLETED",
                    started_at=at(day, mpps[0]),
                    ended_at=at(day, mpps[1]),
                )
            )
        if images:
            study = Study(
                study_instance_uid=f"1.2.3.{n}",
                orthanc_id=f"o{n}",
                order_id=order.id,
                accession_number=acc,
                modalities="CT",
                first_received_at=at(day, images[0]),
                last_received_at=at(day, images[1]),
                stable_at=at(day, images[2]),
            )
            session.add(study)
            session.flush()
            report = Report(study_id=study.id, status=FINAL)
            report.versions.append(
                ReportVersion(
                    version=1,
                    status=FINAL,
                    preliminary_at=at(day, prelim) if prelim else None,
                    signed_at=at(day, signed),
                )
            )
            session.add(report)
    now = utcnow()
    for n, (prio, age) in enumerate((("STAT", 120), ("ROUTINE", 30))):
        order = Order(
            accession_number=f"B{n}", patient_id=patient.id, priority=prio, created_at=now - timedelta(minutes=age + 30)
        )
        session.add(order)
        session.flush()
        study = Study(
            study_instance_uid=f"4.5.{n}",
            orthanc_id=f"b{n}",
            order_id=order.id,
            accession_number=f"B{n}",
            modalities="CT",
            first_received_at=now - timedelta(minutes=age),
            last_received_at=now - timedelta(minutes=age),
        )
        session.add(study)
        session.flush()
        if prio == "ROUTINE":
            session.add(Report(study_id=study.id, status="DRAFT"))
    session.flush()
    return day
