"""The front desk end to end, every part a real process: `orthanc-ris up` in a department
in Europe/Paris, a local SMTP server (aiosmtpd) and a local SMS webhook receive the
confirmation and the reminder of an order booked for tomorrow (local time, place,
preparation); the cancel link, followed over HTTP, cancels the order: dcmtk's findscu no
longer finds it in Orthanc's worklist and the test EHRs (MLLP) get the cancel and the
SIU^S15; two clerks booking one slot at once: one 201, one 409 slot_taken; an HL7 order on
taken time is accepted (AA), flagged and not doubled; a move through the API reaches the
patient ("moved" e-mail) and both HL7 peers (SIU^S13, ORC-1 XX with the new time)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from aiosmtpd.controller import Controller

from tests.conftest import TEST_OUTPUT, _require_debian_tools, free_port, start_system, stop_system, wait_for
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import Receiver, fields, msa, send
from tests.fixtures.mwl import run_findscu, write_query
from tests.reminders.test_reminders import Gateway, Inbox  # the same SMTP inbox and SMS webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
PARIS = ZoneInfo("Europe/Paris")
PREPARATION = "Come fasting for 4 hours; bring your previous CT images."
STATION = {"aet": "FDCT1", "modality": "CT", "name": "CT Scanner 1", "location": "Building B"}
EVERY_DAY_7_TO_19 = [{"weekday": d, "opens": "07:00", "closes": "19:00"} for d in range(7)]


@pytest.fixture(scope="module")
def peers():
    """The patient's channels and the two HL7 peers: the EHR (order status) and the
    appointment book (SIU)."""
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    gateway, ehr, book = Gateway(), Receiver(), Receiver()
    yield {"smtp": smtp, "inbox": inbox, "gateway": gateway, "ehr": ehr, "book": book}
    smtp.stop()
    gateway.server.shutdown()
    ehr.stop()
    book.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, peers):
    _require_debian_tools()
    home = tmp_path_factory.mktemp("frontdesk")
    http_port = free_port()
    s = start_system(
        home,
        {
            "ORTHANC_RIS_HTTP_PORT": str(http_port),
            "ORTHANC_RIS_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
            "ORTHANC_RIS_TIMEZONE": "Europe/Paris",
            "ORTHANC_RIS_INSTITUTION": "General Hospital",
            # Booked 24 h and some seconds ahead: the 24 h reminder is due seconds later.
            "ORTHANC_RIS_REMINDER_LEAD_HOURS": "24",
            "ORTHANC_RIS_SMTP_HOST": "127.0.0.1",
            "ORTHANC_RIS_SMTP_PORT": str(peers["smtp"].port),
            "ORTHANC_RIS_SMTP_FROM": "radiology@example.org",
            "ORTHANC_RIS_SMS_WEBHOOK_URL": peers["gateway"].url,
            "ORTHANC_RIS_HL7_DESTINATIONS": f"EHR=127.0.0.1:{peers['ehr'].port}",
            "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS": f"BOOK=127.0.0.1:{peers['book'].port}",
            "ORTHANC_RIS_HL7_RETRY_SECONDS": "0.3",
            "ORTHANC_RIS_HL7_RETRY_MAX_SECONDS": "1",
        },
    )
    s.add_station(**STATION)
    r = s.api("PUT", f"/api/stations/{STATION['aet']}/hours", json={"hours": EVERY_DAY_7_TO_19})
    assert r.status_code == 200, r.text
    r = s.api("PATCH", "/api/procedure-codes/CTHEAD", json={"preparation": PREPARATION})
    assert r.status_code == 200, r.text
    yield s
    stop_system(s)
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / f"up-{home.name}.log").write_text((home / "up.log").read_text(errors="replace"))


def _cli(system, *args: str) -> str:
    cli = str(Path(sys.executable).parent / "orthanc-ris")
    return subprocess.run([cli, *args], env=system.env, check=True, capture_output=True, text=True).stdout.strip()


def _patient(system, mrn: str, **more) -> None:
    body = {"mrn": mrn, "family_name": "Lefèvre", "given_name": "Camille", **more}
    r = system.api("POST", "/api/patients", json=body)
    assert r.status_code == 201, r.text


def _order(system, mrn: str, start: datetime | str, headers=None) -> requests.Response:
    when = start if isinstance(start, str) else start.isoformat()
    body = {"mrn": mrn, "procedure_code": "CTHEAD", "station_aet": STATION["aet"], "scheduled_start": when}
    return system.api("POST", "/api/orders", json=body, **({"headers": headers} if headers else {}))


def _worklist(system, tmp_path, accession: str):
    return run_findscu(
        system.dicom_port, system.aet, write_query(tmp_path / "q.dcm", AccessionNumber=accession), tmp_path / "r"
    )


def test_messages_of_a_booking_for_tomorrow_and_the_cancel_link(system, peers, tmp_path):
    inbox, gateway, ehr, book = peers["inbox"], peers["gateway"], peers["ehr"], peers["book"]
    _patient(system, "FD-E2E-1", email="camille@example.org", phone="+33600000001")
    # Tomorrow in Paris, 24 h and 40 s from now (out of opening hours is accepted, never a clash).
    start = (datetime.now(PARIS) + timedelta(hours=24, seconds=40)).replace(microsecond=0)
    r = _order(system, "FD-E2E-1", start)
    assert r.status_code == 201, r.text
    accession = r.json()["accession_number"]
    when = f"{start:%Y-%m-%d %H:%M} (Europe/Paris)"
    assert start.date() == datetime.now(PARIS).date() + timedelta(days=1)

    mails = wait_for(lambda: len(inbox.mails) >= 2 and inbox.mails, timeout=90)
    texts = wait_for(lambda: len(gateway.texts) >= 2 and gateway.texts, timeout=30)
    (to, confirmation), (_, reminder) = mails[:2]
    assert to == ["camille@example.org"]
    assert confirmation.startswith(f"Subject: Your appointment on {when}\n\n")
    assert f"Your CT head without contrast appointment is booked for {when}" in confirmation
    assert f"Reminder: your CT head without contrast appointment is on {when}" in reminder
    for text in (confirmation, reminder, texts[0]["text"], texts[1]["text"]):
        assert "General Hospital, Building B, CT Scanner 1" in text and f"Preparation: {PREPARATION}" in text
    assert [t["to"] for t in texts] == ["+33600000001"] * 2 and texts[1]["text"].startswith("Reminder:")
    [booked] = wait_for(lambda: book.messages("SIU^S12"), timeout=20)
    assert fields(booked, "SCH")[27] == accession and fields(booked, "AIS")[4] == f"{start:%Y%m%d%H%M%S%z}"

    assert [a.AccessionNumber for a in _worklist(system, tmp_path, accession)] == [accession]
    link = re.search(r"Cancel the appointment: (\S+)", reminder).group(1)
    assert link.startswith(f"{system.ris_url}/appointment/cancel/")
    page = requests.get(link, timeout=10)  # a link preview opens it: nothing happens yet
    assert page.status_code == 200 and system.api("GET", f"/api/orders/{accession}").json()["status"] != "CANCELED"
    assert requests.post(link, timeout=10).status_code == 200
    order = system.api("GET", f"/api/orders/{accession}").json()
    assert order["scheduled_procedure_step"]["status"] == "CANCELED"
    assert _worklist(system, tmp_path, accession) == []

    [cancel] = wait_for(lambda: [m for m in ehr.messages("ORM") if accession.encode() in m], timeout=20)
    assert (fields(cancel, "ORC")[5], fields(cancel, "OBR")[18]) == ("CA", accession)
    [s15] = wait_for(lambda: book.messages("SIU^S15"), timeout=20)
    assert (fields(s15, "SCH")[25], fields(s15, "SCH")[27]) == ("Cancelled", accession)
    canceled = wait_for(lambda: len(inbox.mails) >= 3 and inbox.mails[2], timeout=60)
    assert f"Your CT head without contrast appointment on {when}" in canceled[1] and "canceled" in canceled[1]
    assert requests.post(link, timeout=10).status_code == 410  # used once


def test_two_clerks_one_slot_and_an_hl7_clash(system, tmp_path):
    _patient(system, "FD-E2E-2")
    _patient(system, "FD-E2E-3")
    desks = [
        {"Authorization": f"Bearer {_cli(system, 'create-token', f'desk-{n}', '--role', 'integrator')}"} for n in "ab"
    ]
    slot = (datetime.now(PARIS) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def book(mrn: str, headers: dict) -> None:
        barrier.wait()
        answers.append(_order(system, mrn, slot, headers))

    threads = [threading.Thread(target=book, args=a) for a in (("FD-E2E-2", desks[0]), ("FD-E2E-3", desks[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    won = next(r for r in answers if r.status_code == 201).json()["accession_number"]
    lost = next(r for r in answers if r.status_code == 409).json()["error"]
    assert lost["code"] == "slot_taken" and won in lost["message"]

    # The EHR cannot pick another time: its order on the taken slot is accepted and flagged,
    # and the same message again (a resend after a lost ACK) adds nothing.
    ctl = H.control_id()
    msg = H.build(
        H.ORM_O01_NW, ctl=ctl, mrn="FD-E2E-4", acc="FDHL7CLASH", station="FDCT1", start=f"{slot:%Y%m%d%H%M%S}"
    )
    system.patient_identifiers.add("FD-E2E-4")
    assert msa(send(system.hl7_port, msg)) == ("AA", ctl)
    assert msa(send(system.hl7_port, msg)) == ("AA", ctl)
    step = system.api("GET", "/api/orders/FDHL7CLASH").json()["scheduled_procedure_step"]
    assert (step["booking_flag"], step["booking_clash_with"]) == ("clash", won)
    found = run_findscu(
        system.dicom_port, system.aet, write_query(tmp_path / "q.dcm", PatientID="FD-E2E-4"), tmp_path / "r"
    )
    assert [a.AccessionNumber for a in found] == ["FDHL7CLASH"]


def test_a_move_at_the_desk_reaches_the_patient_and_both_ehr_peers(system, peers):
    inbox, ehr, book = peers["inbox"], peers["ehr"], peers["book"]
    _patient(system, "FD-E2E-5", email="moved@example.org")
    day = datetime.now(PARIS) + timedelta(days=3)
    first, later = (day.replace(hour=h, minute=m, second=0, microsecond=0) for h, m in ((11, 0), (12, 30)))
    r = _order(system, "FD-E2E-5", first)
    assert r.status_code == 201, r.text
    accession = r.json()["accession_number"]

    def mails_to_patient():
        return [text for to, text in inbox.mails if to == ["moved@example.org"]]

    # Moved once the confirmation left (a move before that confirms the new time instead).
    wait_for(mails_to_patient, timeout=60)
    r = system.api("POST", f"/api/orders/{accession}/reschedule", json={"scheduled_start": later.isoformat()})
    assert r.status_code == 200, r.text
    confirmation, moved = wait_for(lambda: len(m := mails_to_patient()) >= 2 and m, timeout=60)
    assert f"booked for {first:%Y-%m-%d %H:%M} (Europe/Paris)" in confirmation
    assert f"has been moved to {later:%Y-%m-%d %H:%M} (Europe/Paris)" in moved and "Cancel the appointment" in moved
    [s13] = wait_for(lambda: [m for m in book.messages("SIU^S13") if accession.encode() in m], timeout=20)
    assert fields(s13, "AIS")[4] == f"{later:%Y%m%d%H%M%S%z}" and fields(s13, "AIL")[3].startswith("FDCT1^Building B")
    [xx] = wait_for(lambda: [m for m in ehr.messages("ORM") if accession.encode() in m], timeout=20)
    assert fields(xx, "ORC")[1] == "XX" and fields(xx, "ORC")[7].split("^")[3] == f"{later:%Y%m%d%H%M%S%z}"
