"""Registration that keeps patients safe, end to end: the whole system (`orthanc-ris up`)
fed by real MLLP (ORU^R01, ADT with AL1, orders), read back by dcmtk's findscu through
Orthanc's worklist, and a radiologist's override in Debian's chromium
(test-output/patient-safety.png: the screenshot copied to docs/screenshots)."""

from __future__ import annotations

from datetime import timedelta

import pydicom
import pytest

from ris_app.clock import site_now, site_today
from tests.conftest import TEST_OUTPUT
from tests.e2e.test_pages_browser import PASSWORD, _create_user, _log_in, browser  # noqa: F401 (fixture)
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import msa, send
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
TODAY = site_today().strftime("%Y%m%d")


def hl7(system, template: str, **values) -> str:
    """Send over MLLP; returns the ACK's text (MSA-3) after checking it is AA."""
    ctl = H.control_id()
    reply = send(system.hl7_port, H.build(template, ctl=ctl, start=f"{TODAY}093000", **values))
    assert msa(reply) == ("AA", ctl), reply
    return reply.decode().split("MSA|", 1)[1].split("\r")[0].split("|")[2]


def mwl(system, tmp_path, accession: str) -> list[pydicom.Dataset]:
    """findscu with the record's keys in the query (Orthanc answers only the keys asked)."""
    query = write_query(tmp_path / "q.dcm", AccessionNumber=accession)
    ds = pydicom.dcmread(query)
    for key in ("Allergies", "MedicalAlerts", "SpecialNeeds", "PatientWeight", "PatientSize"):
        setattr(ds, key, "")
    ds.PregnancyStatus = None
    ds.save_as(query, enforce_file_format=True)
    return run_findscu(system.dicom_port, system.aet, query, tmp_path / "r")


def egfr(system, mrn: str, value: str) -> str:
    observed = (site_now() - timedelta(hours=3)).strftime("%Y%m%d%H%M")
    return hl7(system, H.ORU_R01_EGFR, mrn=mrn, value=value, observed=observed, egfr_code="98979-8")


@pytest.mark.browser
def test_low_egfr_refuses_the_api_holds_hl7_and_a_radiologist_releases_it(system, tmp_path, browser):  # noqa: F811
    assert egfr(system, "E2E-EGFR", "25") == "2 renal results stored"
    r = system.api(
        "POST",
        "/api/orders",
        json={"mrn": "E2E-EGFR", "procedure_code": "CTCHEST", "scheduled_start": f"{site_today()}T11:00"},
    )
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("eGFR 25 ("), r.text
    text = hl7(system, H.ORM_O01_NW, mrn="E2E-EGFR", code="CTCHEST", acc="E2EHELD")
    assert "on hold: eGFR 25" in text
    assert system.api("GET", "/api/orders/E2EHELD").json()["safety"]["hold"]
    assert mwl(system, tmp_path, "E2EHELD") == []  # held: not offered to the scanner

    _create_user(system, "dr.grey", "radiologist", "Dr Grey")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.goto(system.ris_url + "/orders/E2EHELD")
    _log_in(page, "dr.grey")
    page.wait_for_selector("#safety-hold")
    page.fill("input[name=reason]", "dialysis arranged after the scan")
    page.click("button:has-text('Override and release')")
    page.wait_for_selector("#safety-override")
    assert "dr.grey" in page.inner_text("#safety-override")
    order = system.api("GET", "/api/orders/E2EHELD").json()
    assert not order["safety"]["hold"] and order["safety"]["override"]["by"] == "dr.grey"
    [item] = mwl(system, tmp_path, "E2EHELD")
    assert "OVERRIDDEN contrast-egfr by dr.grey" in str(item.MedicalAlerts)
    assert "eGFR 25" in str(item.MedicalAlerts)
    # The record page, as the desk sees it (the screenshot in the docs).
    system.api(
        "PATCH",
        "/api/patients/E2E-EGFR",
        json={
            "implants": [{"description": "cardiac pacemaker", "mr_safety": "unsafe"}],
            "allergies": [{"agent": "Gadobutrol", "reaction": "rash", "severity": "mild"}],
            "record": {"weight_kg": 64, "height_m": 1.68, "mobility": "wheelchair", "interpreter": "Polish"},
            "insurance_details": {"payer": "AOK", "plan": "Basic", "member_number": "A123456"},
        },
    )
    page.goto(system.ris_url + "/patients/E2E-EGFR/record")
    page.wait_for_selector("#implants")
    TEST_OUTPUT.mkdir(exist_ok=True)
    shot = TEST_OUTPUT / "patient-safety.png"
    page.screenshot(path=str(shot), full_page=True)
    page.goto(system.ris_url + "/orders/E2EHELD")
    page.screenshot(path=str(TEST_OUTPUT / "order-safety.png"), full_page=True)
    context.close()


def test_adt_contrast_allergy_reaches_the_order_and_findscu(system, tmp_path):
    text = hl7(system, H.ADT_A04_SAFETY, mrn="E2E-ALG", family="Allergic", given="Ann")
    assert text == "patient registered"
    egfr(system, "E2E-ALG", "91")
    hl7(system, H.ORM_O01_NW, mrn="E2E-ALG", family="Allergic", given="Ann", code="CTCHEST", acc="E2EALG")
    order = system.api("GET", "/api/orders/E2EALG").json()
    assert [f["rule"] for f in order["safety"]["findings"]] == ["contrast-allergy"] and not order["safety"]["hold"]
    [item] = mwl(system, tmp_path, "E2EALG")
    assert item.PatientID == "E2E-ALG"  # the MRN, though PID-3 listed an SSN and an insurance number first
    assert "iodinated contrast (Iodinated contrast media): urticaria" in str(item.Allergies)
    assert "WARN: previous reaction to contrast" in str(item.MedicalAlerts)
    assert (str(item.PatientWeight), str(item.PatientSize)) == ("82", "1.78")


def test_a_pacemaker_blocks_mr_booking(system):
    r = system.api(
        "POST",
        "/api/patients",
        json={
            "mrn": "E2E-PM",
            "family_name": "Paced",
            "implants": [{"description": "pacemaker", "mr_safety": "unsafe"}],
        },
    )
    assert r.status_code == 201, r.text
    r = system.api(
        "POST",
        "/api/orders",
        json={"mrn": "E2E-PM", "procedure_code": "MRBRAIN", "scheduled_start": f"{site_today()}T15:00"},
    )
    assert r.status_code == 422 and "implant not MR conditional: pacemaker" in r.json()["error"]["message"]


def test_registration_warns_about_a_likely_duplicate(system):
    hl7(system, H.ADT_A04, mrn="E2E-DUP1", family="Jürgens", given="Zoë", birth="19700101")
    text = hl7(system, H.ADT_A04, mrn="E2E-DUP2", family="JURGENS", given="zoe", birth="19700101")
    assert text.startswith("patient registered; possible duplicate of MRN E2E-DUP1")


def test_an_order_whose_pid3_lists_other_ids_first_registers_under_the_mrn(system, tmp_path):
    hl7(system, H.ORM_O01_OTHER_IDS_FIRST, mrn="E2E-IDS", acc="E2EIDS")
    assert system.api("GET", "/api/orders/E2EIDS").json()["patient"]["mrn"] == "E2E-IDS"
    [item] = mwl(system, tmp_path, "E2EIDS")
    assert item.PatientID == "E2E-IDS"
