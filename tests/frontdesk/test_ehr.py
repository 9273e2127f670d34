"""A booking, a move and a cancel reach the EHR: SIU^S12/S13/S15 to the peer that wants
appointment messages, the order status message (ORC-1 XX, new time) to the one that reads
orders, through the real outbox sender and real MLLP sockets; the patient's messages follow
the move made through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ris_app.hl7.settings import Destination, Hl7Settings, parse_destinations
from ris_app.model import Reminder
from tests.conftest import wait_for
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import Receiver, fields, msa, send
from tests.fixtures.hl7_service import serve
from tests.frontdesk.conftest import ADMIN, place
from tests.frontdesk.test_booking import _step

pytestmark = pytest.mark.db
MONDAY = "2027-01-04"


@pytest.fixture
def peers():
    ehr, book = Receiver(), Receiver()
    yield ehr, book
    ehr.stop()
    book.stop()


@pytest.fixture
def hl7(config, peers):
    ehr, book = peers
    yield from serve(
        config,
        destinations=(Destination("EHR", "127.0.0.1", ehr.port),),
        scheduling_destinations=(Destination("BOOK", "127.0.0.1", book.port),),
    )


def _siu(book: Receiver, accession_or_sps: str, n: int) -> list[list[str]]:
    """The first n SIU messages about a step, as (trigger, SCH, AIS, AIL, PID) fields."""
    msgs = wait_for(
        lambda: len(m := [x for x in book.messages("SIU") if accession_or_sps.encode() in x]) >= n and m, timeout=10
    )
    return [[fields(x, "MSH")[9], fields(x, "SCH"), fields(x, "AIS"), fields(x, "AIL"), fields(x, "PID")] for x in msgs]


def test_book_move_cancel_reach_both_kinds_of_peer(hl7, peers, client, app):
    ehr, book = peers
    r = client.patch("/api/patients/FD1", json={"email": "fran@example.org"}, headers=ADMIN)
    assert r.status_code == 200, r.json
    order = place(client, f"{MONDAY}T08:30").json
    acc, sps = order["accession_number"], order["scheduled_procedure_step"]["sps_id"]
    [(trigger, sch, ais, ail, pid)] = _siu(book, sps, 1)
    assert trigger == "SIU^S12^SIU_S12"
    assert (sch[2], sch[25], sch[27]) == (sps, "Booked", acc)
    assert ais[4] == "20270104083000+0100" and ais[7:9] == ["15", "min"]
    assert ais[3].split("^")[0] == "CTHEAD" and ail[3] == "CT1" and ail[6] == "20270104083000+0100"
    assert pid[3].split("^")[0] == "FD1"
    assert not ehr.messages()  # a new booking is no status change for the order peer

    r = client.post(f"/api/orders/{acc}/reschedule", json={"scheduled_start": f"{MONDAY}T09:00"}, headers=ADMIN)
    assert r.status_code == 200, r.json
    moved = _siu(book, sps, 2)[1]
    assert moved[0] == "SIU^S13^SIU_S12" and moved[2][4] == "20270104090000+0100" and moved[2][2] == "U"
    [orm] = wait_for(lambda: ehr.messages("ORM"), timeout=10)
    orc = fields(orm, "ORC")
    assert (orc[1], orc[5], orc[7].split("^")[3]) == ("XX", "SC", "20270104090000+0100")
    # The patient, not yet sent the first time's confirmation, is confirmed the new time
    # (not told of a move), and the reminders follow the new time.
    with app.extensions["ris_sessions"]() as s:
        step_id = _step(app, acc).id
        rows = s.scalars(select(Reminder).where(Reminder.step_id == step_id).order_by(Reminder.id)).all()
        kinds = [(r.kind, r.state, r.lead_hours) for r in rows]
        assert ("confirmation", "dropped", None) in kinds and ("confirmation", "pending", None) in kinds
        new = [r for r in rows if r.kind == "reminder" and r.state == "pending"]
        assert new and all(r.appointment_at.isoformat().startswith("2027-01-04T08:00") for r in new)  # 09:00 Paris
        assert all(r.state == "dropped" for r in rows if r.kind == "reminder" and r not in new)

    r = client.post(f"/api/orders/{acc}/status", json={"action": "cancel"}, headers=ADMIN)
    assert r.status_code == 200, r.json
    canceled = _siu(book, sps, 3)[2]
    assert canceled[0] == "SIU^S15^SIU_S12" and canceled[1][25] == "Cancelled" and canceled[2][2] == "D"
    orms = wait_for(lambda: len(m := ehr.messages("ORM")) >= 2 and m, timeout=10)
    assert [fields(m, "ORC")[1] for m in orms] == ["XX", "SC"] and fields(orms[1], "ORC")[5] == "CA"


def test_hl7_orders_moves_and_cancels_reach_the_appointment_book_not_the_ehr(hl7, peers):
    ehr, book = peers
    templates = ((H.ORM_O01_NW, "20270104083000"), (H.ORM_O01_XO, "20270104093000"), (H.ORM_O01_CA, "20270104093000"))
    for template, start in templates:
        ctl = H.control_id()
        msg = H.build(template, ctl=ctl, mrn="SIU-1", acc="SIU-ACC", station="CT1", start=start)
        assert msa(send(hl7.port, msg)) == ("AA", ctl)
    booked, moved, canceled = _siu(book, "SIU-ACC", 3)
    assert [m[0] for m in (booked, moved, canceled)] == ["SIU^S12^SIU_S12", "SIU^S13^SIU_S12", "SIU^S15^SIU_S12"]
    assert (booked[2][4], moved[2][4]) == ("20270104083000+0100", "20270104093000+0100")
    assert not ehr.messages()  # the EHR's own changes are not echoed to it


def test_scheduling_destinations_setting():
    env = {
        "ORTHANC_RIS_HL7_DESTINATIONS": "EHR=10.0.0.1:2576",
        "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS": "EHR=10.0.0.1:2576;BOOK=tls://10.0.0.2:6661",
    }
    settings = Hl7Settings.from_env(env)
    assert settings.scheduling_destinations == parse_destinations("EHR=10.0.0.1:2576;BOOK=tls://10.0.0.2:6661")
    assert [d.name for d in settings.all_destinations] == ["EHR", "BOOK"]
    with pytest.raises(ValueError, match="EHR names another peer"):
        Hl7Settings.from_env({**env, "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS": "EHR=10.0.0.9:2576"})
    with pytest.raises(ValueError, match="ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS"):
        Hl7Settings.from_env({**env, "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS": "BOOK"})
