"""A privacy officer reads the audit trail in a real browser against the whole system
(`orthanc-ris up`): the trail filtered by patient, its CSV export, and the patient's
"who accessed this record" reached from the order page. Screenshots go to test-output/."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from ris_app.audit.trail import Who, record
from ris_app.clock import site_today, to_site, utcnow
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model.audit import REFUSED
from tests.e2e import test_pages_browser as pages_browser

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
# Debian's chromium through Playwright, as the other page tests drive it.
browser, page = pages_browser.browser, pages_browser.page
_create_user, _log_in, _shot = pages_browser._create_user, pages_browser._log_in, pages_browser._shot
MRN = "AU-0001"


def _seed(system) -> str:
    """A patient with an order, read through the API as an EHR would, and a morning of
    events about it written to the system's trail. Returns the accession number."""
    r = system.api("POST", "/api/patients", json={"mrn": MRN, "family_name": "Øberg", "given_name": "Linnea"})
    assert r.status_code == 201, r.text
    r = system.api(
        "POST",
        "/api/orders",
        json={"mrn": MRN, "procedure_code": "CTHEAD", "scheduled_start": f"{site_today()}T10:30"},
    )
    assert r.status_code == 201, r.text
    accession = r.json()["accession_number"]
    assert system.api("GET", f"/api/patients/{MRN}").status_code == 200
    engine = make_engine(Config.from_env(system.env).database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            now = utcnow()
            for minutes, action, who, fields in (
                (95, "login", Who("desk", "user", "10.20.0.14"), {}),
                (90, "order.read", Who("desk", "user", "10.20.0.14"), {"accession": accession}),
                (60, "study.view", Who("drhouse", "user", "10.20.0.31"), {"accession": accession}),
                (45, "report.read", Who("drhouse", "user", "10.20.0.31"), {"accession": accession}),
                (30, "patient.read", Who("ehr", "token", "10.9.0.2"), {"resource": "/api/patients/<mrn>"}),
                (20, "order.read", Who("student", "user", "10.20.0.77"), {"outcome": REFUSED, "accession": accession}),
                (10, "worklist.query", Who("CT1", "ae", "10.30.0.5"), {"accession": accession}),
            ):
                event = record(s, action, who, mrn="" if action == "login" else MRN, **fields)
                event.at = now - timedelta(minutes=minutes)
    finally:
        engine.dispose()
    return accession


def test_privacy_officer_reads_the_trail_and_a_patients_access_list(system, page):
    from playwright.sync_api import expect

    accession = _seed(system)
    _create_user(system, "privacy", "admin", full_name="Privacy Officer")
    page.goto(system.ris_url + "/audit")
    _log_in(page, "privacy")
    expect(page).to_have_url(system.ris_url + "/audit")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Audit")
    expect(page.locator("#audit-events tbody tr").first).to_be_visible()

    # Filter by the patient: only events about the patient, newest first. The morning's
    # events began 95 minutes ago: shortly after midnight that was yesterday.
    page.fill("input[name=mrn]", MRN)
    page.fill("input[name=from]", to_site(utcnow() - timedelta(minutes=100)).date().isoformat())
    page.fill("input[name=to]", site_today().isoformat())
    page.click("#audit-filter button")
    expect(page).to_have_url(re.compile(rf"/audit\?mrn={MRN}&"))
    rows = page.locator("#audit-events tbody tr")
    expect(rows.first).to_contain_text("worklist.query")
    expect(page.locator("#audit-events")).to_contain_text("drhouse")
    expect(page.locator("#audit-events tr.outcome-refused")).to_contain_text("student")
    expect(page.locator("#audit-events")).not_to_contain_text("login")
    _shot(page, "audit-trail")

    # The CSV export: the same filter, a dated file name.
    with page.expect_download() as download:
        page.click("#audit-csv")
    assert download.value.suggested_filename == f"audit-{site_today().isoformat()}.csv"
    lines = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert {line["patient_mrn"] for line in lines} == {MRN} and "student" in {line["actor"] for line in lines}

    # From the order page to the patient's access list.
    page.goto(f"{system.ris_url}/orders/{accession}")
    page.click("#patient-access-link")
    expect(page).to_have_url(f"{system.ris_url}/patients/{MRN}/access")
    expect(page.locator("h1")).to_have_text("Who accessed this record")
    table = page.locator("#patient-access")
    expect(table.locator("tbody tr").first).to_contain_text("privacy")  # the trail read a moment ago
    expect(table).to_contain_text("drhouse")
    expect(table).to_contain_text("10.9.0.2")
    _shot(page, "patient-access")
    page.click("#patient-audit-all")
    expect(page).to_have_url(f"{system.ris_url}/audit?mrn={MRN}")
