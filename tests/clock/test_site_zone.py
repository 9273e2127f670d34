"""Times with a site zone other than UTC, on a server whose own clock is in a third zone.

The RIS stores UTC; the department (ORTHANC_RIS_TIMEZONE) and its scanners and EHR read and
write wall-clock time. Each edge must convert on purpose, never through the server's zone
($TZ, here set to yet another zone) and never by dropping an offset.
"""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pydicom
import pytest
from pydicom.dataset import Dataset
from pypdf import PdfReader
from sqlalchemy import MetaData, create_engine, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from ris_app import clock
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.hl7.ack import hl7_datetime
from ris_app.hl7.outbound import build_status_message, send_report_result
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.hl7.store import InboundProcessor
from ris_app.model import Patient, ProcedureCode, ScheduledProcedureStep, Study
from ris_app.ops import migrate
from ris_app.reporting import lifecycle
from ris_app.reporting.documents import basic_text_sr, dicom_bytes, encapsulated_pdf
from ris_app.reporting.header import header_for
from ris_app.reporting.pdf import render_pdf
from ris_app.scheduling.orders import (
    OrderData,
    PatientData,
    create_order,
    create_patient,
    find_order,
    primary_step,
)
from ris_app.tracking.mpps import MppsManager
from ris_app.web.auth import create_user
from tests.conftest import TOKEN, _reset_postgres, make_app, make_config
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import fields
from tests.fixtures.web import login
from tests.worklist.test_worklist_rules import find, query

pytestmark = pytest.mark.db

NEW_YORK, KOLKATA = "America/New_York", "Asia/Kolkata"
# The server's own zone in each case: neither the site's nor UTC.
THIRD_ZONE = {NEW_YORK: KOLKATA, KOLKATA: NEW_YORK}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server_tz():
    """Set this process's zone ($TZ) for the test; restored afterwards."""
    before = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def make_site(tmp_path, database_url, server_tz):
    """An app for a department in `zone`, served from a machine in a third zone."""
    apps = []

    def make(zone: str):
        server_tz(THIRD_ZONE[zone])
        assert datetime.now().astimezone().utcoffset() != ZoneInfo(zone).utcoffset(datetime(2026, 11, 30))
        app = make_app(make_config(tmp_path, database_url, zone))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["ris_engine"].dispose()


def _order(client, mrn: str, start: str, aet: str = "CT1") -> dict:
    r = client.post("/api/patients", json={"mrn": mrn, "family_name": "Zone", "given_name": "Tess"}, headers=AUTH)
    assert r.status_code in (201, 409), r.json
    r = client.post(
        "/api/orders",
        json={"mrn": mrn, "procedure_code": "CTHEAD", "station_aet": aet, "scheduled_start": start},
        headers=AUTH,
    )
    assert r.status_code == 201, r.json
    return r.json


def _stored_start(app, accession: str) -> datetime:
    with app.extensions["ris_sessions"]() as s:
        return primary_step(find_order(s, accession)).start_datetime


def _raw_start(app, accession: str):
    """The start as the database holds it: SQLite's text, PostgreSQL's instant in UTC."""
    engine = app.extensions["ris_engine"]
    expr = (
        "sps.start_datetime"
        if engine.dialect.name == "sqlite"
        else "to_char(sps.start_datetime AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    )
    with engine.connect() as conn:
        return conn.execute(
            text(
                f"SELECT {expr} FROM scheduled_procedure_step sps JOIN requested_procedure rp "
                "ON rp.id = sps.requested_procedure_id JOIN imaging_order o ON o.id = rp.order_id "
                "WHERE o.accession_number = :acc"
            ),
            {"acc": accession},
        ).scalar()


def _sps(item):
    sps = item.ScheduledProcedureStepSequence[0]
    return sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime


# ------------------------------------------------------------------ orders and the worklist
@pytest.mark.parametrize(
    "entered, utc, back",
    [
        # Site time (no offset): New York is UTC-5 in November, UTC-4 in July.
        ("2026-11-30T14:30", datetime(2026, 11, 30, 19, 30, tzinfo=UTC), "2026-11-30T14:30:00-05:00"),
        ("2026-07-01T14:30", datetime(2026, 7, 1, 18, 30, tzinfo=UTC), "2026-07-01T14:30:00-04:00"),
        # An offset is honoured: that instant, shown back in site time.
        ("2026-11-30T14:30:00+01:00", datetime(2026, 11, 30, 13, 30, tzinfo=UTC), "2026-11-30T08:30:00-05:00"),
        ("2026-11-30T19:30:00Z", datetime(2026, 11, 30, 19, 30, tzinfo=UTC), "2026-11-30T14:30:00-05:00"),
    ],
)
def test_an_order_is_stored_in_utc_and_answered_in_site_time(make_site, entered, utc, back):
    app = make_site(NEW_YORK)
    client = app.test_client()
    order = _order(client, "TZ-1", entered)
    acc = order["accession_number"]
    assert order["scheduled_procedure_step"]["scheduled_start"] == back
    assert order["created_at"].endswith("+00:00")  # recorded times come back in UTC
    assert _stored_start(app, acc) == utc
    assert str(_raw_start(app, acc)).startswith(utc.strftime("%Y-%m-%d %H:%M:%S"))
    local = datetime.fromisoformat(back)
    items, _ = find(
        client,
        AUTH,
        query(
            sps={
                "ScheduledProcedureStepStartDate": local.strftime("%Y%m%d"),
                "ScheduledProcedureStepStartTime": local.strftime("%H%M-%H%M"),
            }
        ),
    )
    assert [(i.AccessionNumber, *_sps(i)) for i in items] == [(acc, local.strftime("%Y%m%d"), local.strftime("%H%M%S"))]
    day = client.get(f"/api/worklist?date={local.date().isoformat()}", headers=AUTH).json
    assert [(i["accession_number"], i["scheduled_start"]) for i in day["items"]] == [(acc, back)]
    assert client.get(f"/api/orders/{acc}/journey", headers=AUTH).json["scheduled_start"] == back


def test_order_at_1430_site_time_shows_1430_on_the_pages(make_site):
    app = make_site(NEW_YORK)
    client = app.test_client()
    acc = _order(client, "TZ-2", "2026-11-30T14:30")["accession_number"]
    login(app, client, "technologist")
    page = client.get("/?date=2026-11-30").get_data(as_text=True)
    assert acc in page and ">14:30<" in page
    assert "2026-11-30 14:30" in client.get(f"/orders/{acc}").get_data(as_text=True)


def test_event_times_on_the_pages_are_site_time(make_site):
    """The worklist query log, its explainer and the HL7 message list show when things
    happened in the department's time, not UTC."""
    app = make_site(KOLKATA)  # UTC+05:30
    client = app.test_client()
    with transaction(app.extensions["ris_sessions"]) as s:
        from ris_app.model import Hl7Message, WorklistQueryLog

        at = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 01:30 on Dec 1st in Kolkata
        s.add(WorklistQueryLog(received_at=at, calling_aet="CT1", query={}, answers=0))
        s.add(Hl7Message(received_at=at, raw=b"MSH|", sending_facility="EHR", control_id="1", message_type="ADT^A01"))
    login(app, client, "admin")
    log_page = client.get("/worklist/queries").get_data(as_text=True)
    assert "2026-12-01 01:30:00" in log_page and "2026-11-30 20:00" not in log_page
    assert "2026-12-01 01:30:00" in client.get("/worklist/queries/1").get_data(as_text=True)
    assert "2026-12-01 01:30:00" in client.get("/hl7").get_data(as_text=True)


def test_the_order_form_reads_site_time(make_site):
    app = make_site(KOLKATA)
    client = app.test_client()
    token = login(app, client, "clerk")
    client.post("/api/patients", json={"mrn": "TZ-3", "family_name": "Form"}, headers=AUTH)
    r = client.post(
        "/orders/new",
        data={
            "csrf_token": token,
            "mrn": "TZ-3",
            "procedure_code": "CTHEAD",
            "scheduled_date": "2026-11-30",
            "scheduled_time": "09:00",
        },
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    acc = r.headers["Location"].rstrip("/").split("/")[-1]
    assert _stored_start(app, acc) == datetime(2026, 11, 30, 3, 30, tzinfo=UTC)  # 09:00 IST is 03:30 UTC


@pytest.mark.parametrize(
    "zone, at, utc_day",
    [
        (NEW_YORK, "23:30", "2026-12-01"),  # 04:30 UTC the next day
        (KOLKATA, "00:15", "2026-11-29"),  # 18:45 UTC the day before
    ],
)
def test_a_step_belongs_to_its_site_day_whatever_its_utc_day(make_site, zone, at, utc_day):
    app = make_site(zone)
    client = app.test_client()
    acc = _order(client, "TZ-4", f"2026-11-30T{at}")["accession_number"]
    assert _stored_start(app, acc).date().isoformat() == utc_day
    listed = client.get("/api/worklist?date=2026-11-30", headers=AUTH).json["items"]
    assert [i["accession_number"] for i in listed] == [acc]
    assert client.get(f"/api/worklist?date={utc_day}", headers=AUTH).json["items"] == []
    # The C-FIND's date key is a site day too (the SQL prefilter's bounds are converted).
    items, _ = find(client, AUTH, query(sps={"ScheduledProcedureStepStartDate": "20261130"}))
    assert [(i.AccessionNumber, *_sps(i)) for i in items] == [(acc, "20261130", at.replace(":", "") + "00")]
    assert find(client, AUTH, query(sps={"ScheduledProcedureStepStartDate": utc_day.replace("-", "")}))[0] == []
    assert len(find(client, AUTH, query(sps={"ScheduledProcedureStepStartDate": "20261129-20261130"}))[0]) == 1
    login(app, client, "technologist")
    assert acc in client.get("/?date=2026-11-30").get_data(as_text=True)
    assert acc not in client.get(f"/?date={utc_day}").get_data(as_text=True)


def test_today_is_the_sites_today(make_site, monkeypatch):
    app = make_site(NEW_YORK)
    client = app.test_client()
    acc = _order(client, "TZ-5", "2026-11-30T20:00")["accession_number"]
    # 02:00 UTC on 1 December: still 30 November in New York (and 07:30 on 1 December on
    # this server, in Kolkata).
    monkeypatch.setattr(clock, "utcnow", lambda: datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    day = client.get("/api/worklist", headers=AUTH).json
    assert (day["date"], [i["accession_number"] for i in day["items"]]) == ("2026-11-30", [acc])
    login(app, client, "technologist")
    page = client.get("/").get_data(as_text=True)
    assert "Mon 2026-11-30" in page and acc in page


# ------------------------------------------------------------------ HL7 in and out
@pytest.mark.parametrize(
    "start, utc, local",
    [
        ("20261130143000", datetime(2026, 11, 30, 19, 30, tzinfo=UTC), "143000"),  # site time
        ("20261130143000+0100", datetime(2026, 11, 30, 13, 30, tzinfo=UTC), "083000"),  # that instant
        ("202611301430-0500", datetime(2026, 11, 30, 19, 30, tzinfo=UTC), "143000"),
    ],
)
def test_an_hl7_order_starts_at_the_instant_its_tq1_says(make_site, start, utc, local):
    app = make_site(NEW_YORK)
    sessions = app.extensions["ris_sessions"]
    processor = InboundProcessor(sessions, Hl7Settings(), app.config["RIS"])
    outcome = processor.receive(H.build(H.OMI_O23_NW, mrn="TZ-HL7", acc="TZ-OMI-1", start=start))
    assert outcome.ack_code == "AA", outcome.text
    msh7 = fields(outcome.ack, "MSH")[7]
    assert msh7[-5:] in ("-0500", "-0400"), msh7  # the ACK's time, site time with its offset
    assert _stored_start(app, "TZ-OMI-1") == utc
    items, _ = find(app.test_client(), AUTH, query(AccessionNumber="TZ-OMI-1"))
    assert [_sps(i) for i in items] == [("20261130", local)]


def test_hl7_status_messages_carry_site_time_with_its_offset(make_site):
    app = make_site(KOLKATA)
    acc = _order(app.test_client(), "TZ-6", "2026-11-30T09:00")["accession_number"]
    with app.extensions["ris_sessions"]() as s:
        step = primary_step(find_order(s, acc))
        step.status_changed_at = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 01:30 the next day in India
        _type, payload = build_status_message(step, Destination("EHR", "127.0.0.1", 1), Hl7Settings(), "C1")
    msg = payload.encode()
    assert fields(msg, "ORC")[9] == "20261201013000+0530"
    assert fields(msg, "ORC")[7].split("^")[3] == "20261130090000+0530"
    assert fields(msg, "MSH")[7].endswith("+0530")


# ------------------------------------------------------------------ reports
@pytest.mark.parametrize(
    "signed, content_date, content_time, offset, printed",
    [
        (datetime(2026, 11, 30, 19, 45, 10, tzinfo=UTC), "20261130", "144510", "-0500", "2026-11-30 14:45 EST"),
        # Summer time, and the site's date is still the day before UTC's.
        (datetime(2026, 7, 1, 3, 15, 0, tzinfo=UTC), "20260630", "231500", "-0400", "2026-06-30 23:15 EDT"),
    ],
)
def test_a_signed_report_carries_site_time_and_its_offset(
    make_site, monkeypatch, signed, content_date, content_time, offset, printed
):
    app = make_site(NEW_YORK)
    monkeypatch.setattr(lifecycle, "utcnow", lambda: signed)  # sign at a known instant
    with app.extensions["ris_sessions"]() as s:
        user = create_user(s, "rad1", "password-123", "radiologist", full_name="Dr Rad")
        patient = create_patient(s, PatientData(mrn="TZ-R", family_name="Report", given_name="Ann"))
        proc = s.scalar(select(ProcedureCode).where(ProcedureCode.code == "CTHEAD"))
        order = create_order(
            s, OrderData(patient=patient, procedure=proc, modality="CT", scheduled_start=signed - timedelta(hours=2))
        )
        study = Study(
            study_instance_uid="1.2.3.99",
            orthanc_id="o-99",
            order_id=order.id,
            accession_number=order.accession_number,
            patient_mrn="TZ-R",
            study_date=content_date,
            modalities="CT",
            instance_count=1,
        )
        s.add(study)
        s.flush()
        report = lifecycle.start_report(s, study, user)
        v = lifecycle.save_report(s, report, user, {"impression": "Normal."}, "sign")
        assert v.signed_at == signed

        header = header_for(report)
        pdf = render_pdf(report, v, header)
        assert f"signed by Dr Rad on {printed}" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
        for ds in (encapsulated_pdf(pdf, header, v), basic_text_sr(report, v, header)):
            back = pydicom.dcmread(io.BytesIO(dicom_bytes(ds)))
            assert (back.ContentDate, back.ContentTime, back.TimezoneOffsetFromUTC) == (
                content_date,
                content_time,
                offset,
            )
            assert (back.InstanceCreationDate, back.InstanceCreationTime) == (content_date, content_time)
        sr = basic_text_sr(report, v, header)
        assert sr.VerifyingObserverSequence[0].VerificationDateTime == content_date + content_time

        [row] = send_report_result(
            s,
            order,
            "Normal.",
            signed_at=v.signed_at,
            settings=Hl7Settings(destinations=(Destination("EHR", "127.0.0.1", 1),)),
        )
        msg = row.payload.encode()
        assert fields(msg, "OBR")[22] == fields(msg, "OBX")[14] == content_date + content_time + offset
        s.rollback()


# ------------------------------------------------------------------ MPPS
def test_mpps_times_are_site_time_unless_the_modality_says_its_offset(make_site):
    app = make_site(KOLKATA)
    acc = _order(app.test_client(), "TZ-7", "2026-11-30T09:00")["accession_number"]
    manager = MppsManager()

    def n_create(uid: str, **extra) -> None:
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "IN PROGRESS"
        item = Dataset()
        item.AccessionNumber = acc
        ds.ScheduledStepAttributesSequence = [item]
        ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261130", "091500"
        for key, value in extra.items():
            setattr(ds, key, value)
        with transaction(app.extensions["ris_sessions"]) as s:
            assert manager.create(s, uid, ds).status == 0

    n_create("1.2.3.1")
    n_create("1.2.3.2", TimezoneOffsetFromUTC="+0100")
    with app.extensions["ris_sessions"]() as s:
        from ris_app.model import PerformedProcedureStep as PPS

        started = dict(s.execute(select(PPS.sop_instance_uid, PPS.started_at)).all())
    assert started == {
        "1.2.3.1": datetime(2026, 11, 30, 3, 45, tzinfo=UTC),
        "1.2.3.2": datetime(2026, 11, 30, 8, 15, tzinfo=UTC),
    }


# ------------------------------------------------------------------ the clock and the column type
def test_site_days_are_23_or_25_hours_when_the_clocks_change():
    ny = ZoneInfo(NEW_YORK)
    for day, hours in ((date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 11, 30), 24)):
        start, end = clock.site_day_bounds(day, ny)
        assert (end - start) == timedelta(hours=hours)
        assert clock.to_site(start, ny).replace(tzinfo=None) == datetime.combine(day, datetime.min.time())
    assert clock.utc_offset(clock.to_site(datetime(2026, 11, 30, tzinfo=UTC), ZoneInfo(KOLKATA))) == "+0530"
    assert hl7_datetime(datetime(2026, 11, 30, 13, 30, tzinfo=UTC)).endswith(clock.utc_offset(clock.site_now()))


def test_naive_times_are_refused_at_the_edges():
    with pytest.raises(ValueError, match="naive"):
        clock.to_site(datetime(2026, 11, 30, 14, 30))
    assert clock.from_site(datetime(2026, 11, 30, 14, 30), ZoneInfo(KOLKATA)) == datetime(
        2026, 11, 30, 9, 0, tzinfo=UTC
    )


def test_the_setting_names_an_iana_zone_and_defaults_to_the_servers(tmp_path, server_tz):
    env = {"ORTHANC_RIS_HOME": str(tmp_path), "ORTHANC_RIS_API_TOKEN": "t", "ORTHANC_RIS_SECRET_KEY": "k"}
    with pytest.raises(ValueError, match="ORTHANC_RIS_TIMEZONE"):
        Config.from_env({**env, "ORTHANC_RIS_TIMEZONE": "Mars/Olympus_Mons"})
    server_tz(KOLKATA)
    assert clock.zone_name(clock.site_zone(Config.from_env(env))) == KOLKATA
    assert clock.zone_name(clock.site_zone(Config.from_env({**env, "ORTHANC_RIS_TIMEZONE": NEW_YORK}))) == NEW_YORK


def test_utc_columns_refuse_naive_times_and_read_back_aware_utc(app):
    with app.extensions["ris_sessions"]() as s:
        s.add(Patient(mrn="NAIVE", family_name="Naive", created_at=datetime(2026, 11, 30, 12, 0)))
        with pytest.raises(StatementError, match="naive datetime"):
            s.flush()
        s.rollback()
        ist = datetime(2026, 11, 30, 17, 30, tzinfo=ZoneInfo(KOLKATA))
        s.add(Patient(mrn="AWARE", family_name="Aware", created_at=ist))
        s.commit()
        s.expire_all()
        created = s.scalar(select(Patient.created_at).where(Patient.mrn == "AWARE"))
    assert created == ist and created.tzinfo is UTC and created.hour == 12


# ------------------------------------------------------------------ migration 0006
@pytest.fixture
def empty_database_url(tmp_path) -> str:
    url = os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'old.sqlite3'}"


def _insert(conn, table, **values):
    """A row with every required column not given filled with an empty value of its type."""
    row = dict(values)
    for col in table.columns:
        if col.name in row or col.nullable or col.primary_key:
            continue
        kind = col.type.python_type
        row[col.name] = {str: "", int: 0, bool: False}.get(kind, datetime(2026, 1, 1))
    return conn.execute(table.insert().values(**row)).inserted_primary_key[0]


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")  # 0002's expression index
def test_migration_0006_moves_scheduled_starts_from_site_time_to_utc(empty_database_url):
    ny = ZoneInfo(NEW_YORK)
    migrate.upgrade(empty_database_url, "0004_sync", site_zone=ny)
    engine = create_engine(empty_database_url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:  # as 0004 left them: naive, starts in site time, the rest UTC
        patient = _insert(
            conn,
            t["patient"],
            mrn="OLD",
            family_name="Old",
            created_at=datetime(2026, 11, 30, 12, 0),
            updated_at=datetime(2026, 11, 30, 12, 0),
        )
        order = _insert(
            conn,
            t["imaging_order"],
            accession_number="OLD1",
            patient_id=patient,
            created_at=datetime(2026, 11, 30, 12, 0),
            updated_at=datetime(2026, 11, 30, 12, 0),
        )
        for n, start in enumerate((datetime(2026, 11, 30, 14, 30), datetime(2026, 7, 1, 23, 30))):
            rp = _insert(
                conn,
                t["requested_procedure"],
                order_id=order,
                requested_procedure_id=f"RP{n}",
                study_instance_uid=f"1.2.3.{n}",
            )
            _insert(
                conn,
                t["scheduled_procedure_step"],
                requested_procedure_id=rp,
                sps_id=f"SPS{n}",
                modality="CT",
                status="SCHEDULED",
                start_datetime=start,
                status_changed_at=datetime(2026, 11, 30, 12, 0),
            )
    engine.dispose()

    migrate.upgrade(empty_database_url, "head", site_zone=ny)
    engine = create_engine(empty_database_url)
    with Session(engine) as s:
        starts = s.scalars(select(ScheduledProcedureStep.start_datetime).order_by(ScheduledProcedureStep.sps_id)).all()
        changed = s.scalar(select(ScheduledProcedureStep.status_changed_at).limit(1))
        created = s.scalar(select(Patient.created_at))
    assert starts == [datetime(2026, 11, 30, 19, 30, tzinfo=UTC), datetime(2026, 7, 2, 3, 30, tzinfo=UTC)]
    assert changed == created == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # audit times were UTC already
    if engine.dialect.name == "postgresql":  # every stored time is a timestamp with time zone
        with engine.connect() as conn:
            kinds = conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'"
                )
            ).all()
        # Every time column of the model (35 converted by 0006, the rest added since), each
        # with its zone: counted from the model so a new table cannot slip in a naive one.
        from ris_app.db import Base, UtcDateTime

        model = {
            (t.name, c.name)
            for t in Base.metadata.tables.values()
            for c in t.columns
            if isinstance(c.type, UtcDateTime)
        }
        assert {(t, c) for t, c, _k in kinds} == model, kinds
        assert {k for _t, _c, k in kinds} == {"timestamp with time zone"}, kinds
    engine.dispose()

    migrate.downgrade(empty_database_url, "0004_sync", site_zone=ny)  # and back: site wall time again
    engine = create_engine(empty_database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT start_datetime FROM scheduled_procedure_step ORDER BY sps_id")).scalars().all()
    engine.dispose()
    assert [str(r)[:16] for r in rows] == ["2026-11-30 14:30", "2026-07-01 23:30"]
