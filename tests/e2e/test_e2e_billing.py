"""Billing end to end, the whole system running (`orthanc-ris up`): a pynetdicom MPPS SCU
completes an exam against the RIS's MPPS SCP, the charge is captured with the catalog's
code and price (the performed protocol switching the code), sent as DFT^P03 through the
HL7 part's outbox to a billing system on a real MLLP socket, and acknowledged. A canceled
exam is never charged, a discontinued one by the rule, a repeated COMPLETED charges once,
a correction sends a credit and a new charge, and the day's CSV sums to the total."""

from __future__ import annotations

import csv
import io

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import TEST_OUTPUT, _require_debian_tools, start_system, stop_system, wait_for
from tests.e2e import test_pages_browser as pages_browser
from tests.e2e.test_e2e_loop import _order
from tests.e2e.test_e2e_loop import _register as register
from tests.e2e.test_e2e_tracking import TODAY, _completed, _in_progress, _mpps_scu
from tests.fixtures.hl7_peer import Receiver, fields

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
browser, page = pages_browser.browser, pages_browser.page  # Debian's chromium through Playwright


@pytest.fixture(scope="module")
def billing(tmp_path_factory):
    _require_debian_tools()
    peer = Receiver()
    system = start_system(
        tmp_path_factory.mktemp("billing"),
        {
            "ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS": f"BILLING=127.0.0.1:{peer.port}",
            "ORTHANC_RIS_HL7_FINANCIAL_VERSIONS": "BILLING=2.3.1",
            "ORTHANC_RIS_BILLING_SEND": "auto",
            "ORTHANC_RIS_BILLING_DISCONTINUED": "partial",
            "ORTHANC_RIS_HL7_RETRY_SECONDS": "0.2",
        },
    )
    yield system, peer
    stop_system(system)
    peer.stop()


def charges(system, acc):
    r = system.api("GET", f"/api/charges?accession={acc}")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def performed(protocol: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = protocol, "99ORIS", "protocol"
    return code


def dft_of(peer, acc):
    return [m for m in peer.messages("DFT") if acc.encode() in m]


def test_mpps_completed_is_charged_once_sent_and_acknowledged(billing):
    system, peer = billing
    register(system, "E2E-BILL-1", "Payer", "Paula")
    order = _order(system, "E2E-BILL-1", aet="CT1", code="CTHEAD")
    acc = order["accession_number"]
    assoc, sop = _mpps_scu(system)
    uid = generate_uid()
    try:
        assert assoc.send_n_create(_in_progress(order), sop, uid)[0].Status == 0
        done = _completed(2)
        done.PerformedProtocolCodeSequence = [performed("CTHEAD_C")]  # contrast given after all
        assert assoc.send_n_set(done, sop, uid)[0].Status == 0
        assert assoc.send_n_set(done, sop, uid)[0].Status != 0  # the same COMPLETED again: refused
    finally:
        assoc.release()
    (charge,) = charges(system, acc)
    assert (charge["code"], charge["unit_price"], charge["total"]) == ("70460", "300.00", "300.00")
    assert charge["performing_station"] == "CT1"
    wait_for(lambda: charges(system, acc)[0]["status"] == "acknowledged", timeout=20)
    (dft,) = dft_of(peer, acc)
    assert fields(dft, "MSH")[9] == "DFT^P03" and fields(dft, "MSH")[12] == "2.3.1"
    ft1 = fields(dft, "FT1")
    assert ft1[6] == "CG" and ft1[7].startswith("70460^") and ft1[11] == "300.00" and ft1[16] == "CT1"
    assert len(charges(system, acc)) == 1


def test_canceled_never_discontinued_partial(billing):
    system, _ = billing
    register(system, "E2E-BILL-2", "Payer", "Pat")
    canceled = _order(system, "E2E-BILL-2", aet="CT1", code="CTCHEST", at="11:00")
    r = system.api("POST", f"/api/orders/{canceled['accession_number']}/status", json={"action": "cancel"})
    assert r.status_code == 200
    assert charges(system, canceled["accession_number"]) == []

    stopped = _order(system, "E2E-BILL-2", aet="CT1", code="CTCHEST", at="12:00")
    assoc, sop = _mpps_scu(system)
    uid = generate_uid()
    try:
        assert assoc.send_n_create(_in_progress(stopped), sop, uid)[0].Status == 0
        assert assoc.send_n_set(_completed(0, status="DISCONTINUED"), sop, uid)[0].Status == 0
    finally:
        assoc.release()
    lines = charges(system, stopped["accession_number"])
    assert [(c["code"], c["modifier"]) for c in lines] == [("71260", "53")]  # no contrast add-on


def test_correction_sends_a_credit_and_a_new_charge_and_the_csv_sums(billing):
    system, peer = billing
    register(system, "E2E-BILL-3", "Payer", "Pim")
    order = _order(system, "E2E-BILL-3", aet="CT1", code="CTHEAD", at="14:00")
    acc = order["accession_number"]
    for action in ("start", "complete"):
        assert system.api("POST", f"/api/orders/{acc}/status", json={"action": action}).status_code == 200
    wait_for(lambda: charges(system, acc)[0]["status"] == "acknowledged", timeout=20)
    original = charges(system, acc)[0]
    r = system.api(
        "POST", f"/api/charges/{original['id']}/correct", json={"reason": "wrong price list", "unit_price": "240.00"}
    )
    assert r.status_code == 201, r.text
    credit, new = r.json()["credit"], r.json()["charge"]
    for line in (credit, new):
        assert system.api("POST", f"/api/charges/{line['id']}/send").status_code == 200
    wait_for(lambda: {c["status"] for c in charges(system, acc) if c["id"] != original["id"]} == {"acknowledged"})
    assert [fields(m, "FT1")[6] for m in dft_of(peer, acc)] == ["CG", "CD", "CG"]
    assert [fields(m, "FT1")[11] for m in dft_of(peer, acc)] == ["250.00", "-250.00", "240.00"]

    day = system.api("GET", f"/api/charges?date={TODAY.isoformat()}").json()
    exported = system.api("GET", f"/api/charges?date={TODAY.isoformat()}&format=csv").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    cents = sum(round(float(row["total"]) * 100) for row in rows[:-1])
    assert f"{cents // 100}.{cents % 100:02d}" == day["total"] == rows[-1]["total"]


@pytest.mark.browser
def test_billing_clerk_reviews_corrects_and_exports_the_day(billing, page):
    from playwright.sync_api import expect

    system, _ = billing
    register(system, "E2E-BILL-4", "Payer", "Petra")
    for code, at in (("CTCHEST", "15:00"), ("MRKNEE", "15:30"), ("XRCHEST", "16:00")):
        acc = _order(system, "E2E-BILL-4", aet="CT1", code=code, at=at)["accession_number"]
        for action in ("start", "complete"):
            assert system.api("POST", f"/api/orders/{acc}/status", json={"action": action}).status_code == 200
    wait_for(lambda: {c["status"] for c in charges(system, acc)} == {"acknowledged"}, timeout=20)

    pages_browser._create_user(system, "clerkbill", "billing", full_name="Billing Clerk")
    page.set_viewport_size({"width": 1500, "height": 900})
    page.goto(f"{system.ris_url}/billing?date={TODAY.isoformat()}")
    pages_browser._log_in(page, "clerkbill")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Billing")
    row = page.locator("table.billing tbody tr", has_text=acc).first
    row.locator("summary").click()
    row.locator("input[name=reason]").fill("film reject, one view repeated")
    row.locator("input[name=unit_price]").fill("55.00")
    row.locator("button:has-text('Credit and recharge')").click()
    expect(page.locator(".flash").first).to_contain_text("corrected")
    expect(page.locator("table.billing")).to_contain_text("credit of #")
    expect(page.locator("#none-uncharged")).to_be_visible()
    total = page.locator("#day-total").inner_text()
    page.screenshot(path=str(TEST_OUTPUT / "billing-review.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#billing-csv")
    assert download.value.suggested_filename == f"charges-{TODAY.isoformat()}.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    cents = sum(round(float(r["total"]) * 100) for r in rows[:-1])
    assert f"{cents // 100}.{cents % 100:02d}" == total == rows[-1]["total"]
