"""The audit trail of the HL7 interface over a real MLLP socket: each message applied or
refused is an hl7.receive event naming the sending application and the peer; each message
the peer acknowledges is an hl7.send event (ris_app/hl7/store.py, ris_app/hl7/sender.py)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.fixtures import hl7_messages as H
from tests.fixtures.audit import events, holds_no_name, seen
from tests.fixtures.hl7_peer import msa, send
from tests.fixtures.hl7_service import hl7, receiver

__all__ = ["hl7", "receiver"]
pytestmark = pytest.mark.db


def test_messages_received_and_refused_are_events(hl7):
    reply = send(hl7.port, H.build(H.ORM_O01_NW, mrn="AUD-1", acc="AUDACC1", family="Zyxwvutson", given="Quin"))
    assert msa(reply)[0] == "AA"
    (applied,) = events(hl7.sessions, action="hl7.receive")
    assert seen(applied) == ("hl7.receive", "EHR", "hl7", "AUD-1", "AUDACC1", "success")
    assert applied.address == "127.0.0.1" and applied.resource.startswith("ORM^O01 ")

    assert msa(send(hl7.port, H.build(H.UNKNOWN_TYPE, mrn="AUD-2")))[0] == "AR"
    # A birth date that is no date: the error's text quotes it, the event must not.
    assert msa(send(hl7.port, H.build(H.ADT_A01, mrn="AUD-3", birth="19701301")))[0] == "AE"
    refused, failed = events(hl7.sessions, action="hl7.receive")[1:]
    assert (refused.outcome, refused.actor, refused.detail.split(" ")[0]) == ("refused", "EHR", "AR")
    assert (failed.outcome, failed.detail) == ("failed", "AE 102 at PID-7.1")
    holds_no_name(events(hl7.sessions), "Zyxwvutson", "Quin", "19701301")


def test_a_message_the_peer_acknowledges_is_an_hl7_send_event(hl7, client, auth, receiver):
    r = client.post(
        "/api/patients",
        json={"mrn": "AUD-OUT", "family_name": "Out", "given_name": "Bound", "birth_date": "1970-01-01"},
        headers=auth,
    )
    assert r.status_code == 201
    r = client.post(
        "/api/orders",
        json={
            "mrn": "AUD-OUT",
            "procedure_code": "CTHEAD",
            "scheduled_start": "2030-01-01T10:00",
            "station_aet": "CT1",
        },
        headers=auth,
    )
    acc = r.get_json()["accession_number"]
    assert client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth).status_code == 200
    sent = wait_for(lambda: events(hl7.sessions, action="hl7.send"), timeout=10)
    assert seen(sent[0]) == ("hl7.send", "EHR", "hl7", "AUD-OUT", acc, "success")
    assert sent[0].address == "127.0.0.1" and sent[0].resource.startswith("ORM^O01 ")
