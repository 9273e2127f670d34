"""Reprocessing a failed inbound message: the same path as a live message (duplicate check,
order checks), only for a message that failed, and once however many operators ask at once."""

from __future__ import annotations

import threading
from html import escape

import pytest
from sqlalchemy import func, select

from ris_app.db import transaction
from ris_app.errors import Conflict
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.store import InboundProcessor
from ris_app.model import Hl7Message, InboundStatus, Order, ProcedureCode
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import msa, send

pytestmark = pytest.mark.db


def _failed_new_order(hl7, placer: str, code: str, ctl: str | None = None) -> tuple[int, bytes]:
    """An ORM NW without accession number whose procedure code is not in the catalog (and
    no modality): answered AE, stored as error. Returns its id and the message."""
    message = H.build(H.ORM_O01_NW, ctl=ctl or H.control_id(), mrn=f"M-{placer}", placer=placer, code=code, modality="")
    assert msa(send(hl7.port, message))[0] == "AE"
    with hl7.sessions() as s:
        row = s.scalars(select(Hl7Message).where(Hl7Message.raw == message)).one()
        assert row.status == InboundStatus.ERROR
        return row.id, message


def _fix_catalog(hl7, code: str) -> None:
    with transaction(hl7.sessions) as s:
        s.add(ProcedureCode(code=code, description="Added by the operator", modality="CT"))


def _orders(hl7, placer: str) -> int:
    with hl7.sessions() as s:
        return s.scalar(select(func.count()).select_from(Order).where(Order.placer_order_number == placer))


def _status(hl7, message_id: int) -> str:
    with hl7.sessions() as s:
        return s.get(Hl7Message, message_id).status


def test_reprocess_twice_creates_one_order(hl7, client, auth):
    message_id, _ = _failed_new_order(hl7, "RP-TWICE", "RPTWICE")
    _fix_catalog(hl7, "RPTWICE")
    first = client.post(f"/api/hl7/messages/{message_id}/reprocess", headers=auth)
    assert first.status_code == 200 and first.get_json()["ack_code"] == "AA"
    again = client.post(f"/api/hl7/messages/{message_id}/reprocess", headers=auth)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "not_failed"
    assert "only a message that failed" in again.get_json()["error"]["message"]
    assert _orders(hl7, "RP-TWICE") == 1


def test_concurrent_reprocess_from_two_clients_creates_one_order(hl7, app, auth):
    message_id, _ = _failed_new_order(hl7, "RP-CONC", "RPCONC")
    _fix_catalog(hl7, "RPCONC")
    start = threading.Barrier(2)
    codes: list[int] = []

    def operator():
        c = app.test_client()
        start.wait()
        codes.append(c.post(f"/api/hl7/messages/{message_id}/reprocess", headers=auth).status_code)

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [200, 409]
    assert _orders(hl7, "RP-CONC") == 1
    assert _status(hl7, message_id) == InboundStatus.PROCESSED


def test_concurrent_reprocess_by_two_processors_creates_one_order(hl7, config):
    """The web app and the listener each hold a processor (two processes in production):
    the database, not a lock in memory, lets only one apply the message."""
    message_id, _ = _failed_new_order(hl7, "RP-PROC", "RPPROC")
    _fix_catalog(hl7, "RPPROC")
    processors = [hl7.processor, InboundProcessor(hl7.sessions, Hl7Settings(), config)]
    start = threading.Barrier(2)
    results: list[str] = []

    def operator(p: InboundProcessor):
        start.wait()
        try:
            results.append(p.reprocess(message_id).ack_code)
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=operator, args=(p,)) for p in processors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["AA", "conflict"]
    assert _orders(hl7, "RP-PROC") == 1


def test_reprocess_runs_the_duplicate_check(hl7, client, auth):
    """The EHR re-sent the failed message (same control ID) after the catalog was fixed: a
    reprocess of the failed copy is a duplicate, not a second order."""
    ctl = H.control_id()
    message_id, message = _failed_new_order(hl7, "RP-DUP", "RPDUP", ctl=ctl)
    _fix_catalog(hl7, "RPDUP")
    assert msa(send(hl7.port, message))[0] == "AA"
    r = client.post(f"/api/hl7/messages/{message_id}/reprocess", headers=auth)
    assert r.status_code == 200 and r.get_json()["status"] == InboundStatus.DUPLICATE
    assert _orders(hl7, "RP-DUP") == 1


def test_only_failed_messages_are_reprocessed(hl7, client, auth, app):
    from tests.scheduling.test_pages import _login, _post

    code, ctl = "AA", H.control_id()
    assert msa(send(hl7.port, H.build(H.ORM_O01_NW, ctl=ctl, mrn="M-RP-OK", placer="RP-OK")))[0] == code
    with transaction(hl7.sessions) as s:
        processed = s.scalars(select(Hl7Message).where(Hl7Message.control_id == ctl)).one()
        received = Hl7Message(raw=processed.raw, control_id="RECEIVED-1", status=InboundStatus.RECEIVED)
        s.add(received)
        s.flush()
        processed_id, received_id = processed.id, received.id
    r = client.post(f"/api/hl7/messages/{processed_id}/reprocess", headers=auth)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "not_failed"
    r = client.post(f"/api/hl7/messages/{received_id}/reprocess", headers=auth)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "in_progress"
    assert client.post("/api/hl7/messages/999999/reprocess", headers=auth).status_code == 404
    assert _orders(hl7, "RP-OK") == 1
    assert _status(hl7, received_id) == InboundStatus.RECEIVED

    token = _login(app, client, "admin")
    page = client.get("/hl7").data.decode()
    for message_id in (processed_id, received_id):
        assert f"/hl7/messages/{message_id}/reprocess" not in page
    failed_id, _ = _failed_new_order(hl7, "RP-PAGE", "RPPAGE")
    assert f"/hl7/messages/{failed_id}/reprocess" in client.get("/hl7").data.decode()
    r = _post(client, f"/hl7/messages/{processed_id}/reprocess", token, {})
    assert r.status_code == 302  # refused with a message, nothing applied
    assert "only a message that failed" in client.get("/hl7").data.decode()
    assert _orders(hl7, "RP-OK") == 1


def test_a_failed_message_is_red_and_its_raw_text_is_one_click_away(hl7, client, app):
    """Issue 14: errors looked like processed messages and the raw message was API-only."""
    from tests.scheduling.test_pages import _login

    failed_id, message = _failed_new_order(hl7, "RP-RAW", "RPRAW")
    _login(app, client, "admin")
    listing = client.get("/hl7").data.decode()
    assert f'href="/hl7/messages/{failed_id}"' in listing
    assert '<span class="badge error">error</span>' in listing
    page = client.get(f"/hl7/messages/{failed_id}")
    assert page.status_code == 200
    html = page.data.decode()
    assert '<span class="badge error">error</span>' in html and f"/hl7/messages/{failed_id}/reprocess" in html
    segments = [seg for seg in message.decode().replace("\n", "\r").split("\r") if seg]
    shown = html.split('<pre class="raw-hl7" id="raw-message">')[1].split("</pre>")[0]
    assert [line for line in shown.splitlines() if line] == [escape(seg) for seg in segments]
    assert client.get("/hl7/messages/999999").status_code == 404
