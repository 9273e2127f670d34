"""Charges on a real database, through the API and the pages, sent to a billing system
standing in on a real MLLP socket: a completed exam is charged once with the catalog's
code and price of the day, a canceled one never, a discontinued one per the rule; the
billing system's AA acknowledges and its AE rejects; a correction makes a credit and a
new charge, both sent; the day's CSV sums to the page's total."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from ris_app.billing import settings as billing_settings
from ris_app.billing.settings import BillingSettings
from ris_app.clock import site_today
from ris_app.db import transaction
from ris_app.hl7.outbound import set_settings as set_hl7_settings
from ris_app.hl7.sender import OutboxSender
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.model import AuditEvent, BillingItem, Charge, ProcedureCode
from tests.fixtures.hl7_peer import Receiver, fields
from tests.fixtures.web import login

pytestmark = pytest.mark.db
TODAY = site_today()


@pytest.fixture
def billing_peer():
    peer = Receiver()
    hl7 = Hl7Settings(
        financial_destinations=(Destination("BILLING", "127.0.0.1", peer.port),),
        financial_versions=(("BILLING", "2.5.1"),),
        retry_seconds=0.05,
    )
    set_hl7_settings(hl7)
    yield peer, hl7
    set_hl7_settings(None)
    billing_settings.set_settings(None)
    peer.stop()


def rule(**kw):
    billing_settings.set_settings(BillingSettings(**kw))


def deliver(app, hl7) -> int:
    return OutboxSender(app.extensions["ris_sessions"], hl7).send_due()


def order(client, auth, mrn, code="CTHEAD", **extra):
    if client.get(f"/api/patients/{mrn}", headers=auth).status_code == 404:
        r = client.post(
            "/api/patients",
            json={"mrn": mrn, "family_name": "Doe", "given_name": "Jo", "insurance": "ACME Health 42"},
            headers=auth,
        )
        assert r.status_code == 201, r.text
    r = client.post(
        "/api/orders",
        json={
            "mrn": mrn,
            "procedure_code": code,
            "modality": "CT",
            "scheduled_start": f"{TODAY.isoformat()}T09:30",
            "referring_physician": "House^Greg",
            "diagnosis_codes": "R51~G43.9",
            **extra,
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return r.get_json()["accession_number"]


def act(client, auth, acc, *actions):
    for action in actions:
        r = client.post(f"/api/orders/{acc}/status", json={"action": action}, headers=auth)
        assert r.status_code == 200, r.text


def charges_of(client, auth, acc):
    r = client.get(f"/api/charges?accession={acc}", headers=auth)
    assert r.status_code == 200, r.text
    return r.get_json()["items"]


def test_a_completed_exam_is_charged_once_with_the_price_of_the_day(app, client, auth, billing_peer):
    rule()
    acc = order(client, auth, "BILL-1", code="CTCHEST")
    act(client, auth, acc, "start", "complete")
    items = charges_of(client, auth, acc)
    assert [(c["code"], c["kind"], c["quantity"], c["unit_price"], c["total"]) for c in items] == [
        ("71260", "procedure", 1, "350.00", "350.00"),
        ("Q9967", "contrast", 80, "0.50", "40.00"),
    ]
    c = items[0]
    assert c["status"] == "new" and c["service_day"] == TODAY.isoformat()
    assert c["diagnosis_codes"] == ["R51", "G43.9"] and c["ordering_physician"] == "House^Greg"
    with transaction(app.extensions["ris_sessions"]) as s:
        assert s.scalar(select(Charge.insurance).where(Charge.accession_number == acc)) == "ACME Health 42"
        step = s.scalar(select(Charge).where(Charge.accession_number == acc)).step
        from ris_app.billing.capture import capture

        assert capture(step) == []  # told again (a retry, an addendum): nothing more
    assert len(charges_of(client, auth, acc)) == 2


def test_canceled_never_discontinued_per_the_rule(app, client, auth, billing_peer):
    rule(discontinued="none")
    canceled = order(client, auth, "BILL-2")
    act(client, auth, canceled, "cancel")
    stopped = order(client, auth, "BILL-2")
    act(client, auth, stopped, "start", "discontinue")
    assert charges_of(client, auth, canceled) == [] and charges_of(client, auth, stopped) == []
    rule(discontinued="partial")
    partial = order(client, auth, "BILL-2", code="MRKNEE", modality="MR")
    act(client, auth, partial, "start", "discontinue")
    assert [(c["code"], c["modifier"]) for c in charges_of(client, auth, partial)] == [("73721-TC", "53")]


def test_sent_acknowledged_rejected_and_corrected(app, client, auth, billing_peer):
    peer, hl7 = billing_peer
    rule()
    acc = order(client, auth, "BILL-3")
    act(client, auth, acc, "start", "complete")
    (charge,) = charges_of(client, auth, acc)
    assert client.post(f"/api/charges/{charge['id']}/review", headers=auth).get_json()["status"] == "reviewed"
    assert client.post(f"/api/charges/{charge['id']}/send", headers=auth).get_json()["status"] == "sent"
    assert client.post(f"/api/charges/{charge['id']}/send", headers=auth).status_code == 409
    assert deliver(app, hl7) == 1
    (dft,) = peer.messages("DFT")
    msh, ft1 = fields(dft, "MSH"), fields(dft, "FT1")
    assert msh[9] == "DFT^P03^DFT_P03" and msh[12] == "2.5.1"
    assert ft1[6] == "CG" and ft1[7] == "70450^CT head without contrast^CPT" and ft1[10] == "1"
    assert ft1[11] == "250.00" and ft1[19] == "R51^^I10~G43.9^^I10" and ft1[21] == "^House^Greg"
    assert fields(dft, "PID")[3].startswith("BILL-3") and fields(dft, "DG1")[3] == "R51^^I10"
    assert charges_of(client, auth, acc)[0]["status"] == "acknowledged"

    r = client.post(f"/api/charges/{charge['id']}/correct", json={"quantity": 2}, headers=auth)
    assert r.status_code == 400  # a reason is required
    r = client.post(
        f"/api/charges/{charge['id']}/correct", json={"reason": "two heads scanned", "quantity": 2}, headers=auth
    )
    assert r.status_code == 201, r.text
    credit, new = r.get_json()["credit"], r.get_json()["charge"]
    assert (credit["line"], credit["quantity"], credit["total"], credit["corrects"]) == (
        "credit",
        -1,
        "-250.00",
        charge["id"],
    )
    assert (new["quantity"], new["total"], new["status"]) == (2, "500.00", "new")
    peer.script = ["AA", "AE"]  # the credit is booked, the new charge refused
    for line in (credit, new):
        assert client.post(f"/api/charges/{line['id']}/send", headers=auth).status_code == 200
    deliver(app, hl7)
    types = [fields(m, "FT1")[6] for m in peer.messages("DFT")]
    assert types == ["CG", "CD", "CG"]
    by_id = {c["id"]: c for c in charges_of(client, auth, acc)}
    assert by_id[charge["id"]]["status"] == "credited"
    assert by_id[credit["id"]]["status"] == "acknowledged"
    assert by_id[new["id"]]["status"] == "rejected" and "AE" in by_id[new["id"]]["status_reason"]

    # The rejected one is corrected in turn: its refused message no longer holds the order back.
    r = client.post(
        f"/api/charges/{new['id']}/correct", json={"reason": "one head after all", "quantity": 1}, headers=auth
    )
    again = r.get_json()["charge"]
    assert r.get_json()["credit"]["status"] == "credited"  # never booked there: nothing to cancel
    assert client.post(f"/api/charges/{again['id']}/send", headers=auth).status_code == 200
    assert deliver(app, hl7) == 1
    assert charges_of(client, auth, acc)[-1]["status"] == "acknowledged"
    with transaction(app.extensions["ris_sessions"]) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.accession == acc)))
        assert {"charge.read", "charge.send", "charge.correct", "hl7.send"} <= actions


def test_version_2_3_1_per_destination_and_auto_send(app, client, auth, billing_peer):
    peer, _ = billing_peer
    hl7 = Hl7Settings(
        financial_destinations=(Destination("BILLING", "127.0.0.1", peer.port),),
        financial_versions=(("BILLING", "2.3.1"),),
    )
    set_hl7_settings(hl7)
    rule(send="auto")
    acc = order(client, auth, "BILL-4", code="XRCHEST", modality="CR")
    act(client, auth, acc, "start", "complete")
    assert charges_of(client, auth, acc)[0]["status"] == "sent"
    assert deliver(app, hl7) == 1
    msh = fields(peer.messages("DFT")[0], "MSH")
    assert msh[9] == "DFT^P03" and msh[12] == "2.3.1"
    assert charges_of(client, auth, acc)[0]["status"] == "acknowledged"


def test_no_billing_system_configured_refuses_to_send(app, client, auth):
    set_hl7_settings(Hl7Settings())
    try:
        acc = order(client, auth, "BILL-5")
        act(client, auth, acc, "start", "complete")
        (charge,) = charges_of(client, auth, acc)
        assert client.post(f"/api/charges/{charge['id']}/send", headers=auth).status_code == 503
        assert charges_of(client, auth, acc)[0]["status"] == "new"
    finally:
        set_hl7_settings(None)


def test_review_page_csv_sums_to_the_page_total_and_lists_uncharged_exams(app, client, auth, billing_peer):
    rule()
    for mrn, code in (("BILL-6", "CTCHEST"), ("BILL-7", "MGSCREEN"), ("BILL-8", "CTABD")):
        acc = order(client, auth, mrn, code=code)
        act(client, auth, acc, "start", "complete")
    first = charges_of(client, auth, acc)[0]
    # an exam whose procedure bills nothing is listed, not lost
    with transaction(app.extensions["ris_sessions"]) as s:
        usabd = s.scalar(select(ProcedureCode).where(ProcedureCode.code == "USABD"))
        for item in s.scalars(select(BillingItem).where(BillingItem.procedure_code_id == usabd.id)):
            item.active = False
    unbilled = order(client, auth, "BILL-9", code="USABD", modality="US")
    act(client, auth, unbilled, "start", "complete")

    token = login(app, client, "billing")
    r = client.post(
        f"/billing/charges/{first['id']}/correct?date={TODAY.isoformat()}",
        data={"csrf_token": token, "reason": "less contrast", "quantity": "1", "unit_price": "300"},
    )
    assert r.status_code == 302
    page = client.get(f"/billing?date={TODAY.isoformat()}").get_data(as_text=True)
    total = re.search(r'id="day-total">([-\d.]+)<', page).group(1)
    assert unbilled in page.split("Exams performed without a charge")[1]
    exported = client.get(f"/billing/export.csv?date={TODAY.isoformat()}").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(exported)))
    lines, last = rows[:-1], rows[-1]
    cents = sum(round(float(row["total"]) * 100) for row in lines)
    assert f"{cents // 100}.{cents % 100:02d}" == total == last["total"]
    assert {row["line"] for row in lines} == {"charge", "credit"}

    with transaction(app.extensions["ris_sessions"]) as s:  # the catalog fixed, the exam is charged now
        for item in s.scalars(select(BillingItem).where(BillingItem.procedure_code_id == usabd.id)):
            item.active = True
    step_id = re.search(r"/billing/steps/(\d+)/capture", page).group(1)
    r = client.post(f"/billing/steps/{step_id}/capture?date={TODAY.isoformat()}", data={"csrf_token": token})
    assert r.status_code == 302
    page = client.get(f"/billing?date={TODAY.isoformat()}").get_data(as_text=True)
    assert 'id="none-uncharged"' in page
    # other roles may not see charges
    clerk = app.test_client()
    login(app, clerk, "clerk")
    assert clerk.get("/billing").status_code == 403


def test_prices_are_edited_by_admin_tokens_and_apply_from_their_day(app, client, auth, billing_peer):
    rule()
    items = client.get("/api/billing/items", headers=auth).get_json()["items"]
    head = next(i for i in items if i["code"] == "70450")
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    r = client.post(
        f"/api/billing/items/{head['id']}/prices", json={"amount": "275.00", "valid_from": tomorrow}, headers=auth
    )
    assert r.status_code == 201, r.text
    assert [p["amount"] for p in r.get_json()["prices"]] == ["250.00", "275.00"]
    acc = order(client, auth, "BILL-10")
    act(client, auth, acc, "start", "complete")
    assert charges_of(client, auth, acc)[0]["unit_price"] == "250.00"  # today's price
    r = client.post(
        "/api/billing/items",
        json={
            "procedure_code": "MRBRAIN",
            "kind": "contrast",
            "code": "A9579",
            "amount": "45.10",
            "valid_from": TODAY.isoformat(),
            "code_system": "HCPCS",
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert client.post("/api/billing/items", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_charges_are_closed_to_every_token_but_billing_and_admin(app, client):
    from ris_app.web.tokens import create_token

    with transaction(app.extensions["ris_sessions"]) as s:
        tokens = {role: create_token(s, f"t-{role}", role) for role in ("billing", "integrator", "plugin")}
    answers = {
        role: client.get("/api/charges", headers={"Authorization": f"Bearer {t}"}).status_code
        for role, t in tokens.items()
    }
    assert answers == {"billing": 200, "integrator": 403, "plugin": 403}
    assert client.get("/api/charges").status_code == 401
    billing = {"Authorization": f"Bearer {tokens['billing']}"}
    assert client.post("/api/billing/items/1/prices", json={}, headers=billing).status_code == 403  # prices: admin


def test_price_list_import_from_csv(app, tmp_path):
    from click.testing import CliRunner

    from ris_app.ops.cli import main

    (tmp_path / "prices.csv").write_text(
        "procedure,kind,code,amount,valid_from,description,code_system\n"
        "CTHEAD,procedure,70450,260.00,2027-01-01,,\n"
        "MRBRAIN,contrast,A9579,45.10,2026-01-01,Gadolinium contrast per ml,HCPCS\n"
    )
    env = {"ORTHANC_RIS_DATABASE_URL": app.config["RIS"].database_url, "ORTHANC_RIS_HOME": str(tmp_path)}
    result = CliRunner().invoke(main, ["import-prices", str(tmp_path / "prices.csv")], env=env)
    assert result.exit_code == 0, result.output
    assert "2 price(s) imported" in result.output
    with transaction(app.extensions["ris_sessions"]) as s:
        head = s.scalar(select(BillingItem).where(BillingItem.code == "70450"))
        assert [(p.amount_cents, p.valid_to) for p in head.prices][-1] == (26000, None)
        assert s.scalar(select(BillingItem).where(BillingItem.code == "A9579")).code_system == "HCPCS"
    bad = CliRunner().invoke(
        main,
        ["import-prices", "-"],
        input="procedure,kind,code,amount,valid_from\nNOPE,procedure,1,1,2026-01-01\n",
        env=env,
    )
    assert bad.exit_code != 0 and "unknown procedure" in bad.output


def test_a_technologist_completing_on_the_page_charges_like_mpps(app, client, auth, billing_peer):
    rule()
    acc = order(client, auth, "BILL-11", code="USABD", modality="US")
    tech = app.test_client()
    token = login(app, tech, "technologist")
    for action in ("start", "complete"):
        r = tech.post(f"/orders/{acc}/status", data={"action": action, "csrf_token": token})
        assert r.status_code == 302
    assert [(c["code"], c["total"]) for c in charges_of(client, auth, acc)] == [("76700", "150.00")]


def test_the_database_refuses_a_second_line_with_the_same_capture_key(app, client, auth, billing_peer):
    """Two writers capturing the same completion at once (PostgreSQL runs them side by
    side): the unique key makes the second fail, and db.retrying re-reads and adds nothing."""
    from sqlalchemy.exc import IntegrityError

    rule()
    acc = order(client, auth, "BILL-12")
    act(client, auth, acc, "start", "complete")
    sessions = app.extensions["ris_sessions"]
    with sessions() as s:
        first = s.scalar(select(Charge).where(Charge.accession_number == acc))
        copy = Charge(**{c.key: getattr(first, c.key) for c in Charge.__table__.columns if c.key != "id"})
        s.add(copy)
        with pytest.raises(IntegrityError):
            s.commit()


def test_two_billing_systems_each_get_the_charge_and_both_answers_count(app, client, auth, billing_peer):
    """The charge is acknowledged only once every billing system answered AA, and a refusal
    from any of them rejects it (not only the first destination's answer counts)."""
    peer, _ = billing_peer
    second = Receiver()
    try:
        hl7 = Hl7Settings(
            financial_destinations=(
                Destination("BILLING", "127.0.0.1", peer.port),
                Destination("INSURER", "127.0.0.1", second.port),
            ),
            financial_versions=(("BILLING", "2.5.1"), ("INSURER", "2.3.1")),
            retry_seconds=0.05,
        )
        set_hl7_settings(hl7)
        rule(send="auto")
        acc = order(client, auth, "BILL-20", code="XRCHEST", modality="CR")
        act(client, auth, acc, "start", "complete")
        second.answer = "AE"
        deliver(app, hl7)
        [ours], [theirs] = peer.messages("DFT"), second.messages("DFT")
        assert fields(ours, "MSH")[10][:-1] == fields(theirs, "MSH")[10][:-1]  # one charge, two IDs
        (charge,) = charges_of(client, auth, acc)
        assert charge["status"] == "rejected" and "AE" in charge["status_reason"], charge

        acc = order(client, auth, "BILL-21", code="XRCHEST", modality="CR")
        second.answer = "WRONG_ID"  # an answer out of step: retried later, the charge waits
        act(client, auth, acc, "start", "complete")
        deliver(app, hl7)
        assert charges_of(client, auth, acc)[0]["status"] == "sent"  # BILLING said AA, INSURER not yet
        second.answer = "AA"
        for _ in range(50):
            deliver(app, hl7)
            if charges_of(client, auth, acc)[0]["status"] != "sent":
                break
        assert charges_of(client, auth, acc)[0]["status"] == "acknowledged"
    finally:
        second.stop()
