"""Ordered outbound delivery, against a real MLLP peer: a message the EHR refused (AE) holds
back the later messages about the same order until an operator retries or discards it;
other orders flow meanwhile; after the retry the EHR gets them in the order they were queued."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select

from ris_app.db import transaction
from ris_app.hl7.sender import OutboxSender
from ris_app.model import Hl7Outbox, OutboxStatus
from tests.conftest import wait_for
from tests.fixtures.hl7_peer import fields
from tests.hl7.test_hl7_listener import _place

pytestmark = pytest.mark.db


def _act(client, auth, acc: str, action: str) -> None:
    assert client.post(f"/api/orders/{acc}/status", json={"action": action}, headers=auth).status_code == 200


def _rows(hl7, acc: str) -> list[Hl7Outbox]:
    with hl7.sessions() as s:
        return s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == acc).order_by(Hl7Outbox.id)).all()


def _statuses_received(receiver, acc: str) -> list[str]:
    return [fields(m, "ORC")[5] for m in receiver.messages("ORM") if fields(m, "OBR")[18] == acc]


def test_a_refused_message_holds_back_its_order_until_retried(hl7, client, auth, receiver):
    receiver.script = ["AE"]  # the EHR refuses the first message, then accepts
    held_acc = _place(client, auth, "ORD-HELD")
    _act(client, auth, held_acc, "arrive")
    first = wait_for(lambda: (r := _rows(hl7, held_acc)) and r[0].status == OutboxStatus.ERROR and r[0], timeout=10)
    _act(client, auth, held_acc, "start")
    _act(client, auth, held_acc, "complete")

    other_acc = _place(client, auth, "ORD-FLOWS")  # another order is not held back
    _act(client, auth, other_acc, "arrive")
    _act(client, auth, other_acc, "start")
    wait_for(lambda: _statuses_received(receiver, other_acc) == ["SC", "IP"], timeout=10)

    later = _rows(hl7, held_acc)[1:]
    assert [(r.status, r.attempts) for r in later] == [(OutboxStatus.PENDING, 0)] * 2
    assert _statuses_received(receiver, held_acc) == ["SC"]  # only the refused one
    items = client.get(f"/api/hl7/outbox?reference={held_acc}", headers=auth).get_json()["items"]
    assert {i["id"]: i["held_behind"] for i in items} == {first.id: None, later[0].id: first.id, later[1].id: first.id}

    from tests.scheduling.test_pages import _login

    _login(client.application, client, "admin")
    page = client.get("/hl7").data.decode()
    assert page.count(f"held behind message {first.id}") == 2

    assert client.post(f"/api/hl7/outbox/{first.id}/retry", headers=auth).status_code == 200
    wait_for(lambda: {r.status for r in _rows(hl7, held_acc)} == {OutboxStatus.SENT}, timeout=10)
    assert _statuses_received(receiver, held_acc) == ["SC", "SC", "IP", "CM"]  # refused, retried, then the rest
    sent_order = [r.sent_at for r in _rows(hl7, held_acc)]
    assert sent_order == sorted(sent_order)


def test_a_discarded_message_releases_the_ones_behind_it(hl7, client, auth, receiver):
    receiver.script = ["AE"]
    acc = _place(client, auth, "ORD-DISCARD")
    _act(client, auth, acc, "arrive")
    first = wait_for(lambda: (r := _rows(hl7, acc)) and r[0].status == OutboxStatus.ERROR and r[0], timeout=10)
    _act(client, auth, acc, "cancel")
    assert client.post(f"/api/hl7/outbox/{first.id}/discard", headers=auth).status_code == 200
    wait_for(lambda: [r.status for r in _rows(hl7, acc)] == [OutboxStatus.DISCARDED, OutboxStatus.SENT], timeout=10)
    assert _statuses_received(receiver, acc) == ["SC", "CA"]
    assert client.post(f"/api/hl7/outbox/{first.id}/discard", headers=auth).status_code == 409
    assert client.post(f"/api/hl7/outbox/{first.id}/retry", headers=auth).status_code == 409


def test_one_pass_reads_the_outbox_in_one_query_however_many_are_held(hl7, config):
    """send_due is polled twice a second: held messages cost no query each."""
    with transaction(hl7.sessions) as s:
        for n in range(40):
            s.add(
                Hl7Outbox(
                    destination="EHR",
                    message_type="ORM^O01",
                    control_id=f"HELD{n:04d}",
                    reference="ACC-MANY",
                    payload="MSH|^~\\&|\r",
                    status=OutboxStatus.ERROR if n == 0 else OutboxStatus.PENDING,
                )
            )
    sender = OutboxSender(hl7.sessions, hl7.settings)
    me, selects = threading.get_ident(), []

    def count(conn, cursor, statement, *args):
        if threading.get_ident() == me and statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(hl7.engine, "before_cursor_execute", count)
    try:
        assert sender.send_due() == 0
    finally:
        event.remove(hl7.engine, "before_cursor_execute", count)
    assert len(selects) == 1
    with hl7.sessions() as s:
        assert all(r.attempts == 0 for r in s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == "ACC-MANY")))
