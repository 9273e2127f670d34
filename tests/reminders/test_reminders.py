"""Patients' messages with real peers: a local SMTP server (aiosmtpd) and a local HTTP
webhook as the SMS gateway receive the confirmation and the reminder of an order booked
for tomorrow, in the site's local time (a zone other than UTC); the cancel link cancels
the order the way the desk does; bad links answer plain pages; the sender never sends a
message twice, whoever runs it and however often."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from datetime import datetime, time, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from ris_app import create_app
from ris_app.clock import from_site, site_today, utcnow
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.model import Reminder, ScheduledProcedureStep, StepStatusChange
from ris_app.reminders import links
from ris_app.reminders.outbox import CLAIM_TIMEOUT, send_due
from ris_app.scheduling.catalog import seed_default_catalog
from ris_app.worklist.query import find
from tests.conftest import TOKEN, free_port
from tests.fixtures.audit import events as trail_rows
from tests.worklist.test_worklist_rules import query

pytestmark = pytest.mark.db
ZONE = "America/New_York"
PUBLIC = "https://ris.example.org"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Inbox:
    def __init__(self) -> None:
        self.mails: list = []

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append((envelope.rcpt_tos, f"Subject: {msg['Subject']}\n\n{msg.get_content()}"))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


class Gateway:
    """The SMS gateway: records each POST; answers `fail_next` 503s first."""

    def __init__(self) -> None:
        self.texts: list[dict] = []
        self.fail_next = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if gateway.fail_next:
                    gateway.fail_next -= 1
                    self.send_response(503)
                else:
                    gateway.texts.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway():
    gw = Gateway()
    yield gw
    gw.server.shutdown()


@pytest.fixture
def rapp(config, smtp, gateway):
    """The app of conftest's `config`, in a zone other than UTC, with both channels."""
    cfg = replace(
        config,
        timezone=ZONE,
        public_url=PUBLIC,
        smtp_host="127.0.0.1",
        smtp_port=smtp[0].port,
        smtp_from="radiology@example.org",
        sms_webhook_url=gateway.url,
        institution="General Hospital",
    )
    app = create_app(cfg)
    app.config["TESTING"] = True
    with transaction(app.extensions["ris_sessions"]) as s:
        seed_default_catalog(s)
    yield app
    app.extensions["ris_engine"].dispose()


def _cfg(app) -> Config:
    return app.config["RIS"]


def _sessions(app):
    return app.extensions["ris_sessions"]


def _book(app, *, mrn="R1", at=time(9, 30), **patient) -> tuple[str, datetime]:
    """A patient with e-mail and phone, and a CT tomorrow at `at` site time."""
    client = app.test_client()
    body = {"mrn": mrn, "family_name": "Martin", "email": "p@example.org", "phone": "+15550100", **patient}
    assert client.post("/api/patients", json=body, headers=AUTH).status_code == 201
    day = site_today() + timedelta(days=1)
    r = client.post(
        "/api/orders",
        json={
            "mrn": mrn,
            "procedure_code": "CTHEAD",
            "modality": "CT",
            "station_aet": "CT1",
            "location": "Room 3",
            "scheduled_start": f"{day.isoformat()}T{at.isoformat('minutes')}:00",
        },
        headers=AUTH,
    )
    assert r.status_code == 201, r.json
    return r.json["accession_number"], from_site(datetime.combine(day, at))


def _rows(app, **where) -> list[Reminder]:
    with _sessions(app)() as s:
        stmt = select(Reminder).order_by(Reminder.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(Reminder, key) == value)
        return list(s.scalars(stmt))


def test_confirmation_and_reminder_reach_mail_and_sms_in_site_time(rapp, smtp, gateway):
    _accession, start = _book(rapp)
    local = f"{start.astimezone(ZoneInfo(ZONE)):%Y-%m-%d} 09:30 ({ZONE})"
    assert send_due(_sessions(rapp), _cfg(rapp)) == 2  # the confirmation, by e-mail and SMS
    ((to, mail),) = smtp[1].mails
    assert to == ["p@example.org"]
    assert f"booked for {local} at General Hospital, Room 3" in mail
    assert f"{PUBLIC}/appointment/confirm/" in mail and f"{PUBLIC}/appointment/cancel/" in mail
    (sms,) = gateway.texts
    assert sms["to"] == "+15550100" and local in sms["text"] and "/appointment/cancel/" in sms["text"]

    # The 48 h lead had passed at booking; the 2 h one leaves at 07:30 local, not before.
    assert [r.lead_hours for r in _rows(rapp, kind="reminder")] == [2, 2]
    assert send_due(_sessions(rapp), _cfg(rapp), now=start - timedelta(hours=2, minutes=1)) == 0
    assert send_due(_sessions(rapp), _cfg(rapp), now=start - timedelta(hours=2)) == 2
    assert "Reminder: your" in smtp[1].mails[1][1] and local in gateway.texts[1]["text"]
    # Run again, on the same rows: nothing leaves twice.
    assert send_due(_sessions(rapp), _cfg(rapp), now=start - timedelta(minutes=5)) == 0
    assert len(smtp[1].mails) == 2 and len(gateway.texts) == 2
    assert {r.state for r in _rows(rapp)} == {"sent"}


def test_the_patients_language_and_opt_out(rapp, smtp, gateway):
    _book(rapp, language="fr", notify_sms=False)
    send_due(_sessions(rapp), _cfg(rapp))
    assert "Votre rendez-vous" in smtp[1].mails[0][1]
    assert gateway.texts == [] and {r.channel for r in _rows(rapp)} == {"email"}


def test_the_cancel_link_cancels_like_the_desk(rapp, smtp, gateway):
    accession, _start = _book(rapp)
    send_due(_sessions(rapp), _cfg(rapp))
    path = re.search(rf"{PUBLIC}(/appointment/cancel/\S+)", smtp[1].mails[0][1]).group(1)
    client = rapp.test_client()
    page = client.get(path)  # a link preview: shows, changes nothing
    assert page.status_code == 200 and "Cancel the appointment" in page.get_data(as_text=True)
    assert client.post(path).status_code == 200
    (moved,) = trail_rows(_sessions(rapp), action="step.move")
    assert (moved.outcome, moved.accession, moved.patient_mrn) == ("success", accession, "R1")
    with _sessions(rapp)() as s:
        step = s.scalars(select(ScheduledProcedureStep)).one()
        assert step.status == "CANCELED"
        assert s.scalars(select(StepStatusChange.source).where(StepStatusChange.to_status == "CANCELED")).one() == (
            "patient-link"
        )
        cfg = _cfg(rapp)
        answered = find(s, query(AccessionNumber=accession), default_statuses=cfg.worklist_statuses, limit=10)
        assert answered.items == []
    # The reminders are dropped; the cancellation leaves on both channels.
    assert {r.state for r in _rows(rapp, kind="reminder")} == {"dropped"}
    assert send_due(_sessions(rapp), _cfg(rapp)) == 2
    assert "has been canceled" in smtp[1].mails[-1][1] and "/appointment/" not in smtp[1].mails[-1][1]
    assert client.post(path).status_code == 410  # used: the appointment is canceled


def test_tampered_swapped_and_expired_links_answer_plain_pages(rapp):
    _book(rapp)
    with _sessions(rapp)() as s:
        step = s.scalars(select(ScheduledProcedureStep)).one()
        step_id, start = step.id, step.start_datetime
    cfg = _cfg(rapp)
    client = rapp.test_client()
    good = links.link(cfg, step_id, start, "confirm").removeprefix(PUBLIC)
    token = good.rsplit("/", 1)[1]
    assert client.get(good).status_code == 200
    assert client.get(good[:-2] + ("AA" if not good.endswith("AA") else "BB")).status_code == 400
    assert client.get(f"/appointment/cancel/{token}").status_code == 400  # a confirm token on the cancel path
    past = links.link(cfg, step_id, utcnow() - timedelta(hours=1), "cancel").removeprefix(PUBLIC)
    assert client.get(past).status_code == 410
    other_time = links.link(cfg, step_id, start + timedelta(hours=1), "cancel").removeprefix(PUBLIC)
    assert client.post(other_time).status_code == 410
    assert client.post(good).status_code == 200
    with _sessions(rapp)() as s:
        assert s.get(ScheduledProcedureStep, step_id).patient_confirmed_at is not None


def test_two_senders_at_once_and_a_crash_send_nothing_twice(rapp, smtp, gateway):
    for n in range(4):
        _book(rapp, mrn=f"R{n}", at=time(9 + n, 0))
    sessions, cfg = _sessions(rapp), _cfg(rapp)
    # A crash after a claim: the row stays "sending" and is never sent again.
    crashed = _rows(rapp, kind="confirmation", channel="email")[0].id
    with transaction(sessions) as s:
        s.execute(update(Reminder).where(Reminder.id == crashed).values(state="sending", claimed_at=utcnow()))
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(send_due(sessions, cfg))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 7
    assert len(smtp[1].mails) == 3 and len(gateway.texts) == 4
    assert len({m for _to, m in smtp[1].mails}) == 3
    send_due(sessions, cfg, now=utcnow() + CLAIM_TIMEOUT + timedelta(minutes=1))
    (row,) = _rows(rapp, id=crashed)
    assert row.state == "failed" and "not sent again" in row.error
    assert len(smtp[1].mails) == 3


def test_a_gateway_failure_is_retried_with_back_off(rapp, gateway):
    gateway.fail_next = 1
    _book(rapp, email="")
    sessions, cfg = _sessions(rapp), _cfg(rapp)
    now = utcnow()
    assert send_due(sessions, cfg, now=now) == 0
    (row,) = _rows(rapp, kind="confirmation")
    assert (row.state, row.attempts) == ("pending", 1) and "503" in row.error
    assert send_due(sessions, cfg, now=now + timedelta(seconds=30)) == 0  # backing off
    assert send_due(sessions, cfg, now=now + timedelta(minutes=2)) == 1
    assert len(gateway.texts) == 1


def test_the_desk_sees_what_was_sent(rapp, smtp, gateway):
    from tests.fixtures.web import login

    _book(rapp)
    gateway.fail_next = 0
    send_due(_sessions(rapp), _cfg(rapp))
    client = rapp.test_client()
    login(rapp, client, "clerk")
    page = client.get("/reminders")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "confirmation" in html and "sent" in html and "p@example.org" in html
    other = rapp.test_client()
    login(rapp, other, "radiologist")
    assert other.get("/reminders").status_code == 403


def test_a_move_drops_the_old_reminders_and_tells_the_new_time(rapp, smtp):
    """What the reschedule of issue 15 (another branch) will do: move the start, tell
    step_changed. The old time's reminders are dropped; the patient hears the new time."""
    from ris_app.scheduling.orders import lock_step, step_changed

    _book(rapp, phone="")
    sessions, cfg = _sessions(rapp), _cfg(rapp)
    send_due(sessions, cfg)
    with transaction(sessions) as s:
        step = lock_step(s.scalars(select(ScheduledProcedureStep)).one())
        old_start = step.start_datetime
        step.start_datetime = old_start + timedelta(days=2, hours=1)  # 10:30, beyond the 48 h lead
        step_changed(step)
        step_changed(step)  # told twice: planned once
    old = _rows(rapp, appointment_at=old_start, kind="reminder")
    assert [r.state for r in old] == ["dropped"]
    new = _rows(rapp, appointment_at=old_start + timedelta(days=2, hours=1))
    assert sorted((r.kind, r.lead_hours) for r in new) == [("reminder", 2), ("reminder", 48), ("rescheduled", None)]
    assert send_due(sessions, cfg) == 1
    assert "has been moved to" in smtp[1].mails[-1][1] and "10:30" in smtp[1].mails[-1][1]


def test_a_move_before_the_confirmation_went_out_confirms_the_new_time(rapp, smtp):
    """The patient never heard of the first time: one confirmation of the new time, not a
    "moved" message about a time they were never told."""
    from ris_app.scheduling.orders import lock_step, step_changed

    _book(rapp, phone="")
    sessions, cfg = _sessions(rapp), _cfg(rapp)
    with transaction(sessions) as s:  # moved before the outbox ran
        step = lock_step(s.scalars(select(ScheduledProcedureStep)).one())
        old_start = step.start_datetime
        step.start_datetime = old_start + timedelta(days=2, hours=1)
        step_changed(step)
    assert [r.state for r in _rows(rapp, appointment_at=old_start, kind="confirmation")] == ["dropped"]
    new = _rows(rapp, appointment_at=old_start + timedelta(days=2, hours=1))
    assert sorted((r.kind, r.lead_hours) for r in new) == [("confirmation", None), ("reminder", 2), ("reminder", 48)]
    assert send_due(sessions, cfg) == 1
    assert "has been moved" not in smtp[1].mails[-1][1] and "10:30" in smtp[1].mails[-1][1]
