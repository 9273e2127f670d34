"""`orthanc-ris demo-data`: a plausible past for a fresh installation, so the dashboards
show something on day one and the benchmarks run at size.

Weekly pattern (busy Mondays, quiet Saturdays, closed Sundays), a daily one (bookings
packed from the morning), no-shows, cancellations, exams with MPPS and images, reports
signed after a delay that depends on priority; the last days are left partly unread.
Rows go in with Core `executemany` in batches (portable SQL, no ORM objects): a million
steps is minutes, not hours. Synthetic patients only (DEMO^P000001): no real data.

Why this long: the generator's tables and its one pass over days, rooms and exams read
best together; split, the plausibility rules would be scattered.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, func, insert, select, text

from ris_app.clock import from_site, site_today, utcnow
from ris_app.model import (
    FINAL,
    PRELIMINARY,
    Hl7Message,
    Hl7Outbox,
    Order,
    Patient,
    PerformedProcedureStep,
    ProcedureCode,
    Report,
    ReportVersion,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StationHours,
    StepStatusChange,
    Study,
)

NO_SHOW = "NO_SHOW"  # the step state of a patient who did not come (scheduling/states.py)
# The demo department: one room per line, its modality and mean exams per open day.
DEMO_STATIONS = (
    ("DEMO_CT1", "CT", 28),
    ("DEMO_CT2", "CT", 22),
    ("DEMO_MR1", "MR", 14),
    ("DEMO_CR1", "CR", 40),
    ("DEMO_US1", "US", 20),
)
# Monday..Sunday: the share of a full day's volume, and opening hours (site time).
WEEKDAY_FACTOR = (1.15, 1.05, 1.0, 1.0, 0.95, 0.35, 0.0)
OPENS, CLOSES, SATURDAY_CLOSES = time(8), time(18), time(13)
# priority -> (share of orders, minutes from order to exam (low, high), minutes to sign (low, high))
PRIORITY_MIX = {
    "STAT": (0.08, (10, 90), (15, 120)),
    "HIGH": (0.17, (60, 1440), (60, 600)),
    "ROUTINE": (0.75, (1440, 20160), (120, 4320)),
}
NO_SHOW_RATE, CANCEL_RATE, MPPS_RATE = 0.05, 0.04, 0.8
# Orders that came by HL7 (ORM in, a status message out), and how often each went wrong.
HL7_SHARE, HL7_IN_ERROR, HL7_OUT_ERROR = 0.6, 0.02, 0.01
BATCH = 5000
TABLES = (
    Patient,
    Hl7Message,
    Hl7Outbox,
    Order,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatusChange,
    Study,
    PerformedProcedureStep,
    Report,
    ReportVersion,
)


@dataclass
class Summary:
    days: int = 0
    steps: int = 0
    no_shows: int = 0
    cancelled: int = 0
    reports: int = 0


class Refused(Exception):
    """The database already holds orders: demo data would mix with real ones."""


def has_orders(conn: Connection) -> bool:
    return conn.scalar(select(Order.id).limit(1)) is not None


def _stations(conn: Connection) -> dict[str, list[tuple[str, int]]]:
    """modality -> [(station AE, exams per day)]; the demo rooms (with opening hours) are
    added when the installation has no station yet."""
    rows = conn.execute(select(Station.aet, Station.modality)).all()
    if not rows:
        next_id = (conn.scalar(select(func.max(StationHours.id))) or 0) + 1
        for n, (aet, modality, _) in enumerate(DEMO_STATIONS, start=1):
            conn.execute(insert(Station).values(aet=aet, name=aet[5:], modality=modality, location="DEMO"))
            sid = conn.scalar(select(Station.id).where(Station.aet == aet))
            hours = [(d, OPENS, CLOSES) for d in range(5)] + (
                [(5, OPENS, SATURDAY_CLOSES)] if n <= 2 or modality == "CR" else []
            )
            for d, o, c in hours:
                conn.execute(insert(StationHours).values(id=next_id, station_id=sid, weekday=d, opens=o, closes=c))
                next_id += 1
        rows = [(aet, modality) for aet, modality, _ in DEMO_STATIONS]
    per_day = {aet: n for aet, _, n in DEMO_STATIONS}
    out: dict[str, list[tuple[str, int]]] = {}
    for aet, modality in rows:
        out.setdefault(modality, []).append((aet, per_day.get(aet, 20)))
    return out


def _catalog(conn: Connection) -> dict[str, list[tuple[int, str, str, int]]]:
    out: dict[str, list[tuple[int, str, str, int]]] = {}
    rows = conn.execute(
        select(
            ProcedureCode.id,
            ProcedureCode.code,
            ProcedureCode.description,
            ProcedureCode.modality,
            ProcedureCode.default_duration_minutes,
        )
    )
    for pid, code, desc, modality, minutes in rows:
        out.setdefault(modality, []).append((pid, code, desc, minutes))
    return out


def _next_ids(conn: Connection) -> dict[str, int]:
    return {t.__tablename__: (conn.scalar(select(func.max(t.id))) or 0) + 1 for t in TABLES}


def _reset_sequences(conn: Connection) -> None:
    """Explicit ids leave PostgreSQL's serial sequences behind: move them past the rows."""
    if conn.dialect.name != "postgresql":
        return
    for t in (*TABLES, StationHours, Station):
        name = t.__tablename__
        conn.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {name}))")
        )


def generate(
    conn: Connection,
    days: int,
    *,
    scale: float = 1.0,
    seed: int = 13,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> Summary:
    """Fill `days` site days before today, and today up to now (exams finished by now:
    nothing in the future, so no step waits for a worklist item). `scale` multiplies the daily volumes (the
    benchmarks use it to reach a million steps). Refuses a database with orders unless
    `force`. The caller commits."""
    if has_orders(conn) and not force:
        raise Refused("the database already holds orders; use --force to add demo history anyway")
    rng = random.Random(seed)
    stations, catalog = _stations(conn), _catalog(conn)
    stations = {m: s for m, s in stations.items() if m in catalog}
    ids = _next_ids(conn)
    run = f"{ids['imaging_order']:x}"  # keeps accession numbers apart between runs
    patients = max(200, int(days * scale * 40 / 3))
    first_patient = ids["patient"]
    _flush(
        conn,
        Patient,
        (
            {
                "id": first_patient + n,
                "mrn": f"DEMO{first_patient + n:08d}",
                "family_name": "DEMO",
                "given_name": f"P{first_patient + n:06d}",
                "sex": "MFU"[n % 3],
            }
            for n in range(patients)
        ),
    )
    summary, now = Summary(days=days), utcnow()
    buffers: dict[type, list[dict]] = {t: [] for t in TABLES[1:]}
    today = site_today()
    for offset in range(days, -1, -1):
        day = today - timedelta(days=offset)
        _day(rng, day, now, scale, stations, catalog, ids, run, first_patient, patients, buffers, summary)
        if sum(len(b) for b in buffers.values()) > BATCH * 4:
            for table, rows in buffers.items():
                _flush(conn, table, rows)
                rows.clear()
        if offset % 30 == 0 or offset == 0:
            progress(f"{day.isoformat()}: {summary.steps} steps so far")
    for table, rows in buffers.items():
        _flush(conn, table, rows)
    _reset_sequences(conn)
    return summary


def _flush(conn: Connection, table: type, rows) -> None:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute(insert(table), batch)
            batch = []
    if batch:
        conn.execute(insert(table), batch)


def _slots(day: date, weekday: int) -> tuple[datetime, datetime] | None:
    if WEEKDAY_FACTOR[weekday] == 0:
        return None
    closes = SATURDAY_CLOSES if weekday == 5 else CLOSES
    return from_site(datetime.combine(day, OPENS)), from_site(datetime.combine(day, closes))


def _day(rng, day, now, scale, stations, catalog, ids, run, first_patient, patients, buffers, summary) -> None:
    hours = _slots(day, day.weekday())
    if hours is None or (day.month, day.day) in ((12, 25), (1, 1)):  # closed: Sundays and holidays
        return
    trend = 1.0 + 0.1 * ((day.toordinal() % 365) / 365)
    for modality, rooms in stations.items():
        for aet, per_day in rooms:
            mean = per_day * scale * WEEKDAY_FACTOR[day.weekday()] * trend
            count = max(0, int(rng.gauss(mean, mean**0.5 + 0.5)))
            cursor = hours[0]
            for _ in range(count):
                proc = rng.choice(catalog[modality])
                cursor += timedelta(minutes=rng.choice((0, 0, 0, 5, 10)))
                if cursor >= hours[1] or cursor + timedelta(minutes=2 * proc[3]) > now:
                    break
                for row in _exam(
                    rng, cursor, now, modality, aet, proc, ids, run, first_patient + rng.randrange(patients), summary
                ):
                    buffers[row[0]].append(row[1])
                cursor += timedelta(minutes=proc[3] / max(scale, 1.0))


def _priority(rng) -> tuple[str, tuple[int, int], tuple[int, int]]:
    r = rng.random()
    for name, (share, lead, sign) in PRIORITY_MIX.items():
        if r < share:
            return name, lead, sign
        r -= share
    return "ROUTINE", PRIORITY_MIX["ROUTINE"][1], PRIORITY_MIX["ROUTINE"][2]


def _exam(rng, start, now, modality, aet, proc, ids, run, patient_id, summary) -> Iterator[tuple[type, dict]]:
    pid, _code, desc, minutes = proc
    priority, lead, sign = _priority(rng)
    created = start - timedelta(minutes=rng.randint(*lead))
    oid, rid, sid = ids["imaging_order"], ids["requested_procedure"], ids["scheduled_procedure_step"]
    ids["imaging_order"], ids["requested_procedure"], ids["scheduled_procedure_step"] = oid + 1, rid + 1, sid + 1
    accession = f"DM{run}{oid:x}"[:16]
    summary.steps += 1
    yield (
        Order,
        {
            "id": oid,
            "accession_number": accession,
            "patient_id": patient_id,
            "priority": priority,
            "referring_physician": rng.choice(("WARD^A", "WARD^B", "ED", "CLINIC^ORTHO", "GP")),
            "created_at": created,
            "updated_at": created,
        },
    )
    yield (
        RequestedProcedure,
        {
            "id": rid,
            "order_id": oid,
            "requested_procedure_id": "1",
            "procedure_code_id": pid,
            "description": desc,
            "study_instance_uid": f"2.25.9{rid}{run}",
        },
    )
    r = rng.random()
    status = NO_SHOW if r < NO_SHOW_RATE else "CANCELED" if r < NO_SHOW_RATE + CANCEL_RATE else "COMPLETED"
    end = start + timedelta(minutes=minutes)
    history = [(None, "SCHEDULED", created + timedelta(minutes=1))]
    if status == NO_SHOW:
        history.append(("SCHEDULED", NO_SHOW, start + timedelta(minutes=30)))
        summary.no_shows += 1
    elif status == "CANCELED":
        history.append(("SCHEDULED", "CANCELED", created + (start - created) * rng.random()))
        summary.cancelled += 1
    else:
        arrived = max(start - timedelta(minutes=rng.randint(5, 30)), created + timedelta(minutes=2))
        started = start + timedelta(minutes=max(0, rng.gauss(6, 8)))
        done = started + timedelta(minutes=max(3, minutes * rng.gauss(1.1, 0.2)))
        history += [("SCHEDULED", "ARRIVED", arrived), ("ARRIVED", "STARTED", started), ("STARTED", "COMPLETED", done)]
        if done > now:
            history = history[:1]
            status = "SCHEDULED"
    yield (
        ScheduledProcedureStep,
        {
            "id": sid,
            "requested_procedure_id": rid,
            "sps_id": f"DS{run}{sid:x}"[:16],
            "modality": modality,
            "station_aet": aet,
            "station_name": aet[5:],
            "description": desc,
            "start_datetime": start,
            "end_datetime": end,
            "status": status,
            "status_changed_at": history[-1][2],
            "changed_by": "demo",
        },
    )
    for before, after, at in history:
        hid = ids["step_status_change"]
        ids["step_status_change"] = hid + 1
        yield (
            StepStatusChange,
            {"id": hid, "step_id": sid, "from_status": before, "to_status": after, "changed_at": at, "source": "demo"},
        )
    if rng.random() < HL7_SHARE:
        yield from _hl7(rng, created, accession, ids)
    if status != "COMPLETED":
        return
    yield from _images_and_report(rng, history, now, modality, aet, accession, oid, sid, priority, sign, ids, summary)


def _hl7(rng, created, accession, ids):
    mid, oid = ids["hl7_message"], ids["hl7_outbox"]
    ids["hl7_message"], ids["hl7_outbox"] = mid + 1, oid + 1
    failed = rng.random() < HL7_IN_ERROR
    yield (
        Hl7Message,
        {
            "id": mid,
            "received_at": created,
            "sending_application": "DEMO_EHR",
            "sending_facility": "DEMO",
            "control_id": f"DEMO{mid}",
            "message_type": "ORM^O01",
            "version": "2.5.1",
            "raw": b"demo",
            "status": "error" if failed else "processed",
            "ack_code": "AE" if failed else "AA",
            "processed_at": created,
        },
    )
    unsent = rng.random() < HL7_OUT_ERROR
    yield (
        Hl7Outbox,
        {
            "id": oid,
            "created_at": created,
            "destination": "EHR",
            "message_type": "ORM^O01",
            "control_id": f"DEMO{oid}",
            "reference": accession,
            "payload": "demo",
            "status": "error" if unsent else "sent",
            "next_attempt_at": created,
            "sent_at": None if unsent else created,
        },
    )


def _images_and_report(rng, history, now, modality, aet, accession, oid, sid, priority, sign, ids, summary):
    started, done = history[2][2], history[3][2]
    first, last = started + timedelta(minutes=1), done - timedelta(minutes=1)
    stable = last + timedelta(minutes=1)
    study_id = ids["study"]
    ids["study"] = study_id + 1
    suid = f"2.25.8{study_id}{oid}"[:64]
    yield (
        Study,
        {
            "id": study_id,
            "study_instance_uid": suid,
            "orthanc_id": f"demo-{study_id}",
            "order_id": oid,
            "link_method": "accession",
            "accession_number": accession,
            "study_date": first.strftime("%Y%m%d"),
            "modalities": modality,
            "series_count": 2,
            "instance_count": rng.randint(20, 400),
            "first_received_at": first,
            "last_received_at": last,
            "stable_at": stable,
            "station_aet": aet,
        },
    )
    if rng.random() < MPPS_RATE:
        mid = ids["performed_procedure_step"]
        ids["performed_procedure_step"] = mid + 1
        yield (
            PerformedProcedureStep,
            {
                "id": mid,
                "sop_instance_uid": f"2.25.7{mid}{oid}"[:64],
                "step_id": sid,
                "status": "COMPLETED",
                "performed_station_aet": aet,
                "study_instance_uid": suid,
                "accession_number": accession,
                "started_at": started,
                "ended_at": done,
            },
        )
    signed = stable + timedelta(minutes=rng.uniform(*sign) * (1.0 + 0.5 * (stable.weekday() >= 4)))
    prelim = stable + (signed - stable) * rng.uniform(0.3, 0.8) if rng.random() < 0.4 else None
    if signed > now:  # not read yet: the backlog of the last days
        if prelim is None or prelim > now:
            return
        status, signed = PRELIMINARY, None
    else:
        status = FINAL
    rep = ids["report"]
    ids["report"] = rep + 1
    summary.reports += 1
    yield (
        Report,
        {
            "id": rep,
            "study_id": study_id,
            "status": status,
            "created_at": stable,
            "updated_at": signed or prelim,
            "finalized_at": signed,
        },
    )
    vid = ids["report_version"]
    ids["report_version"] = vid + 1
    yield (
        ReportVersion,
        {
            "id": vid,
            "report_id": rep,
            "version": 1,
            "status": status,
            "findings": "Demo report.",
            "impression": "Demo.",
            "created_at": stable,
            "updated_at": signed or prelim,
            "preliminary_at": prelim,
            "signed_at": signed,
            "changed_by": "demo",
        },
    )
