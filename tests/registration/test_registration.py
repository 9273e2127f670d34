"""Registration that keeps patients safe, against a real database: the record in and out
of the API, PID-3 identity, AL1/OBX/ORU^R01 through the HL7 processor, the safety rules
at order, booking and check-in, the radiologist's override, the worklist attributes."""

from __future__ import annotations

import io
from datetime import timedelta

import pydicom
import pytest
from sqlalchemy import select

from ris_app.clock import site_now, utcnow
from ris_app.errors import Invalid
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.store import InboundProcessor
from ris_app.model import Order, RequestedProcedure
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.registration import insurance_of
from ris_app.registration.duplicates import fold
from ris_app.registration.identity import Identifier, choose_mrn
from tests.fixtures import hl7_messages as H
from tests.fixtures.web import login

pytestmark = pytest.mark.db
TOMORROW = (site_now() + timedelta(days=1)).strftime("%Y-%m-%dT10:00")


# ------------------------------------------------------------------ identity (no database)
@pytest.mark.parametrize(
    ("ids", "mrn"),
    [
        ([Identifier("123", "SSA", "SS"), Identifier("M1", "HOSP", "MR")], "M1"),
        ([Identifier("B1")], "B1"),  # a bare ID is the MRN when none is typed MR
        ([Identifier("X", "AOK", "NI"), Identifier("B2")], "B2"),
        ([Identifier("B3"), Identifier("M3", "HOSP", "MR")], "M3"),  # typed MR wins over bare
    ],
)
def test_the_mrn_is_chosen_by_type_code(ids, mrn):
    chosen, others = choose_mrn(ids)
    assert chosen.value == mrn and mrn not in [o.value for o in others]


def test_the_authority_decides_between_two_mrns_and_an_ssn_alone_is_refused():
    ids = [Identifier("A1", "OTHER", "MR"), Identifier("H1", "HOSP", "MR")]
    assert choose_mrn(ids, ("MR",), "HOSP")[0].value == "H1"
    with pytest.raises(Invalid) as err:
        choose_mrn([Identifier("123", "SSA", "SS")])
    assert err.value.code == "no_mrn"


def test_names_fold_accents_and_case():
    assert fold("Müller") == fold("MULLER") and fold("O'Brien") == fold("obrien")


# ------------------------------------------------------------------ helpers
def _hl7(app, template: str, **values) -> tuple[str, str]:
    processor = InboundProcessor(app.extensions["ris_sessions"], Hl7Settings(), app.config["RIS"])
    outcome = processor.receive(H.build(template, **values))
    return outcome.ack_code, outcome.text


def _patient(client, auth, mrn: str, **extra):
    body = {"mrn": mrn, "family_name": "Safe", "given_name": "Sam", "birth_date": "1950-05-05", "sex": "M", **extra}
    r = client.post("/api/patients", json=body, headers=auth)
    assert r.status_code == 201, r.json
    return r.json


def _order(client, auth, mrn: str, code: str, **extra):
    body = {"mrn": mrn, "procedure_code": code, "scheduled_start": TOMORROW, **extra}
    return client.post("/api/orders", json=body, headers=auth)


def _item(app, accession: str) -> pydicom.Dataset:
    with app.extensions["ris_sessions"]() as s:
        step = s.scalars(
            select(SPS).join(RequestedProcedure).join(Order).where(Order.accession_number == accession)
        ).one()
        return pydicom.dcmread(io.BytesIO(step.worklist_item))


def _egfr(app, mrn: str, value: str, days_ago: int = 1, code: str = "33914-3"):
    observed = (site_now() - timedelta(days=days_ago)).strftime("%Y%m%d%H%M")
    return _hl7(app, H.ORU_R01_EGFR, mrn=mrn, value=value, observed=observed, egfr_code=code)


# ------------------------------------------------------------------ the record through the API
def test_the_record_and_insurance_go_in_and_out_of_the_api(client, auth):
    body = _patient(
        client,
        auth,
        "REC-1",
        record={
            "weight_kg": 70.5,
            "height_m": 1.72,
            "measured_on": "2026-01-02",
            "mobility": "wheelchair",
            "interpreter": "Portuguese",
        },
        insurance_details={
            "payer": "AOK",
            "plan": "Basic",
            "member_number": "M-9",
            "group_number": "G-1",
            "subscriber": "Self",
        },
        allergies=[{"agent": "Iohexol", "reaction": "hives", "severity": "moderate"}],
        implants=[{"description": "knee prosthesis", "mr_safety": "safe"}],
        lab_results=[{"test": "egfr", "value": 75, "unit": "mL/min/1.73m2", "observed_at": utcnow().isoformat()}],
        other_identifiers=[{"value": "123-45", "type_code": "SS", "authority": "SSA"}],
    )
    assert body["record"]["weight_kg"] == 70.5 and body["record"]["mobility"] == "wheelchair"
    assert body["allergies"][0]["agent_class"] == "iodinated"  # from the agent's name
    assert body["insurance_details"]["member_number"] == "M-9"
    assert body["other_identifiers"] == [{"value": "123-45", "type_code": "SS", "authority": "SSA"}]
    r = client.patch("/api/patients/REC-1", json={"record": {"pregnancy_status": "bogus"}}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "record.pregnancy_status"


def test_insurance_of_is_the_one_accessor(app, client, auth):
    _patient(client, auth, "INS-1", insurance="legacy text", insurance_details={"payer": "TK", "member_number": "7"})
    with app.extensions["ris_sessions"]() as s:
        from ris_app.scheduling.orders import find_patient

        ins = insurance_of(find_patient(s, "INS-1"))
    assert (ins.payer, ins.member_number, ins.note) == ("TK", "7", "legacy text")


def test_registration_warns_about_a_likely_duplicate(client, auth):
    _patient(client, auth, "DUP-1", family_name="Müller", given_name="José", birth_date="1960-02-03")
    body = _patient(client, auth, "DUP-2", family_name="MULLER", given_name="jose", birth_date="1960-02-03")
    assert body["possible_duplicates"] == [
        {"mrn": "DUP-1", "issuer": "", "reasons": ["same birth date and name (ignoring accents and case)"]}
    ]
    swapped = _patient(client, auth, "DUP-3", family_name="José", given_name="Müller", birth_date="1960-02-03")
    assert "given and family names transposed" in swapped["possible_duplicates"][0]["reasons"][0]
    other = _patient(client, auth, "DUP-4", family_name="Müller", given_name="José", birth_date="1961-02-03")
    assert other["possible_duplicates"] == []


# ------------------------------------------------------------------ identity from HL7
def test_pid3_with_other_ids_first_registers_under_the_mrn(app, client, auth):
    code, text = _hl7(app, H.ADT_A04_SAFETY, mrn="HL7-MRN-1")
    assert code == "AA", text
    p = client.get("/api/patients/HL7-MRN-1", headers=auth).json
    assert {(i["value"], i["type_code"]) for i in p["other_identifiers"]} == {("123-45-6789", "SS"), ("INS-777", "NI")}
    assert client.get("/api/patients/123-45-6789", headers=auth).status_code == 404
    found = client.get("/api/patient-identifiers/123-45-6789", headers=auth).json["items"]
    assert found == [{"mrn": "HL7-MRN-1", "issuer": "HOSP", "type_code": "SS", "authority": "SSA"}]
    code, text = _hl7(app, H.ORM_O01_OTHER_IDS_FIRST, mrn="HL7-MRN-2", acc="IDFIRST1")
    assert code == "AA", text
    assert client.get("/api/orders/IDFIRST1", headers=auth).json["patient"]["mrn"] == "HL7-MRN-2"
    item = _item(app, "IDFIRST1")
    assert item.PatientID == "HL7-MRN-2" and item.OtherPatientIDsSequence[0].PatientID == "INS-555"


def test_an_ssn_alone_is_refused_ae(app):
    code, text = _hl7(app, H.ADT_A01_SSN_ONLY)
    assert code == "AE" and "MRN" in text


# ------------------------------------------------------------------ safety rules
def test_low_egfr_blocks_contrast_ct_through_the_api_and_holds_the_hl7_order(app, client, auth):
    _patient(client, auth, "EGFR-1")
    code, text = _egfr(app, "EGFR-1", "25")
    assert (code, text) == ("AA", "2 renal results stored")
    r = _order(client, auth, "EGFR-1", "CTCHEST")
    assert r.status_code == 422, r.json
    assert r.json["error"]["code"] == "unsafe" and r.json["error"]["message"].startswith("eGFR 25 (")
    assert _order(client, auth, "EGFR-1", "CTHEAD").status_code == 201  # no contrast: no rule
    code, text = _hl7(app, H.ORM_O01_NW, mrn="EGFR-1", code="CTCHEST", acc="HELD1")
    assert code == "AA" and "on hold: eGFR 25" in text
    order = client.get("/api/orders/HELD1", headers=auth).json
    assert order["safety"]["hold"] and order["safety"]["findings"][0]["rule"] == "contrast-egfr"
    assert "ON HOLD: eGFR 25" in str(_item(app, "HELD1").MedicalAlerts)
    # Check-in is refused while held; a clerk cannot override, a radiologist can, with a reason.
    assert client.post("/api/orders/HELD1/status", json={"action": "arrive"}, headers=auth).status_code == 422
    clerk = app.test_client()
    token = login(app, clerk, "clerk")
    r = clerk.post("/orders/HELD1/safety-override", data={"reason": "x", "csrf_token": token})
    assert r.status_code == 403
    token = login(app, client, "radiologist", "dr.house")
    r = client.post("/orders/HELD1/safety-override", data={"reason": "", "csrf_token": token})
    assert not client.get("/api/orders/HELD1", headers=auth).json["safety"]["override"]
    client.post("/orders/HELD1/safety-override", data={"reason": "dialysis arranged", "csrf_token": token})
    safety = client.get("/api/orders/HELD1", headers=auth).json["safety"]
    assert not safety["hold"] and safety["override"]["by"] == "dr.house"
    assert safety["override"]["reason"] == "dialysis arranged" and safety["override"]["rules"] == ["contrast-egfr"]
    page = client.get("/orders/HELD1").get_data(as_text=True)
    assert "Overridden by <strong>dr.house</strong>" in page and "dialysis arranged" in page
    assert client.post("/api/orders/HELD1/status", json={"action": "arrive"}, headers=auth).status_code == 200
    assert "OVERRIDDEN contrast-egfr by dr.house" in str(_item(app, "HELD1").MedicalAlerts)


def test_an_old_egfr_only_warns_and_a_good_one_passes(app, client, auth):
    _patient(client, auth, "EGFR-2")
    _egfr(app, "EGFR-2", "25", days_ago=200, code="62238-1")
    r = _order(client, auth, "EGFR-2", "CTCHEST")
    assert r.status_code == 201 and r.json["safety"]["findings"][0]["rule"] == "contrast-egfr-missing"
    _egfr(app, "EGFR-2", "88")
    r = _order(client, auth, "EGFR-2", "CTCHEST")
    assert r.status_code == 201 and r.json["safety"]["findings"] == []


def test_a_new_low_egfr_holds_an_exam_already_booked_and_a_good_one_releases_it(app, client, auth):
    """The record is checked again when it changes, not only at order, move and check-in: a
    low result arriving after the booking takes the exam out of the worklist at once."""
    _patient(client, auth, "EGFR-3")
    _egfr(app, "EGFR-3", "80", days_ago=2)
    assert _order(client, auth, "EGFR-3", "CTCHEST", accession_number="BOOKED1").status_code == 201
    assert _order(client, auth, "EGFR-3", "CTHEAD", accession_number="BOOKED2").status_code == 201
    code, _ = _egfr(app, "EGFR-3", "22")
    assert code == "AA"
    safety = client.get("/api/orders/BOOKED1", headers=auth).json["safety"]
    assert safety["hold"] and safety["checked_on"] == "record" and safety["hold_reason"].startswith("eGFR 22")
    assert "ON HOLD: eGFR 22" in str(_item(app, "BOOKED1").MedicalAlerts)
    assert not client.get("/api/orders/BOOKED2", headers=auth).json["safety"]["hold"]  # no contrast
    _egfr(app, "EGFR-3", "75", days_ago=0)
    assert not client.get("/api/orders/BOOKED1", headers=auth).json["safety"]["hold"]


def test_adt_contrast_allergy_shows_on_the_order_and_in_the_worklist_item(app, client, auth):
    assert _hl7(app, H.ADT_A04_SAFETY, mrn="ALG-1")[0] == "AA"
    _egfr(app, "ALG-1", "90")
    r = _order(client, auth, "ALG-1", "CTCHEST", accession_number="ALG1")
    assert r.status_code == 201, r.json
    assert [f["rule"] for f in r.json["safety"]["findings"]] == ["contrast-allergy"]
    item = _item(app, "ALG1")
    assert "iodinated contrast (Iodinated contrast media): urticaria" in str(item.Allergies)
    assert "WARN: previous reaction to contrast" in str(item.MedicalAlerts)
    assert (str(item.PatientWeight), str(item.PatientSize)) == ("82", "1.78")
    page = client.get("/api/patients/ALG-1", headers=auth).json
    assert page["allergies"][0]["severity"] == "severe"
    r = _order(client, auth, "ALG-1", "CTHEAD", preauth_number="PA-77", preauth_status="approved")
    assert r.json["preauth"] == {"number": "PA-77", "status": "approved"}
    login(app, client, "clerk")
    assert "Pre-authorisation PA-77 · approved" in client.get(f"/orders/{r.json['accession_number']}").get_data(
        as_text=True
    )


def test_a_pacemaker_blocks_mr_until_a_radiologist_overrides(app, client, auth):
    _patient(client, auth, "PM-1", implants=[{"description": "cardiac pacemaker", "mr_safety": "unsafe"}])
    r = _order(client, auth, "PM-1", "MRBRAIN")
    assert r.status_code == 422 and "implant not MR conditional: cardiac pacemaker" in r.json["error"]["message"]
    code, _ = _hl7(app, H.OMI_O23_NW, mrn="PM-1", code="MRBRAIN", modality="MR", acc="PM1", suid="1.2.3.16")
    assert code == "AA"
    assert client.get("/api/orders/PM1", headers=auth).json["safety"]["hold"]
    token = login(app, client, "radiologist")
    client.post("/orders/PM1/safety-override", data={"reason": "MR conditional per cardiology", "csrf_token": token})
    assert not client.get("/api/orders/PM1", headers=auth).json["safety"]["hold"]


def test_pregnancy_blocks_ct_and_shows_in_the_worklist(app, client, auth):
    _patient(client, auth, "PREG-1", sex="F", record={"pregnancy_status": "pregnant"})
    r = _order(client, auth, "PREG-1", "CTHEAD")
    assert r.status_code == 422 and "pregnant" in r.json["error"]["message"]
    client.patch("/api/patients/PREG-1", json={"record": {"pregnancy_status": "possibly_pregnant"}}, headers=auth)
    r = _order(client, auth, "PREG-1", "CTHEAD", accession_number="PREG1")
    assert r.status_code == 201 and r.json["safety"]["findings"][0]["action"] == "warn"
    assert _item(app, "PREG1").PregnancyStatus == 2
    assert _order(client, auth, "PREG-1", "USABD").status_code == 201  # not ionising


def test_the_record_page_shows_the_safety_facts(app, client, auth):
    _patient(client, auth, "PAGE-1", implants=[{"description": "pacemaker", "mr_safety": "unsafe"}])
    login(app, client, "clerk")
    html = client.get("/patients/PAGE-1/record").get_data(as_text=True)
    assert "pacemaker" in html and "MR unsafe" in html


def test_the_desk_adds_to_the_record_on_the_page(app, client, auth):
    _patient(client, auth, "PAGE-2")
    token = login(app, client, "clerk")
    form = {
        "csrf_token": token,
        "pregnancy_status": "",
        "weight_kg": "80",
        "height_m": "1.8",
        "mobility": "stretcher",
        "interpreter": "",
        "payer": "BKK",
        "allergy_agent": "Gadoterate",
        "allergy_severity": "severe",
        "implant_description": "cochlear implant",
        "implant_mr_safety": "conditional",
    }
    r = client.post("/patients/PAGE-2/record", data=form)
    assert r.status_code == 302
    p = client.get("/api/patients/PAGE-2", headers=auth).json
    assert p["record"]["weight_kg"] == 80 and p["record"]["mobility"] == "stretcher"
    assert p["allergies"][0]["agent_class"] == "gadolinium" and p["implants"][0]["mr_safety"] == "conditional"
    assert p["insurance_details"]["payer"] == "BKK"
    r = client.post(
        "/patients/PAGE-2/record", data={**form, "weight_kg": "-3", "allergy_agent": ""}, follow_redirects=True
    )
    assert "Not saved: record.weight_kg" in r.get_data(as_text=True)


def test_the_registration_page_warns_about_a_likely_duplicate(app, client, auth):
    _patient(client, auth, "PDUP-1", family_name="Émile", given_name="Zola", birth_date="1940-04-02")
    token = login(app, client, "clerk")
    form = {
        "csrf_token": token,
        "mrn": "PDUP-2",
        "family_name": "Zola",
        "given_name": "Emile",
        "birth_date": "1940-04-02",
        "sex": "M",
    }
    r = client.post("/patients/new", data=form, follow_redirects=True)
    assert "Possible duplicate of MRN PDUP-1: same birth date, given and family names transposed." in r.get_data(
        as_text=True
    )


def test_the_rules_run_again_when_an_exam_is_moved(client, auth):
    _patient(client, auth, "MOVE-1", sex="F")
    r = _order(client, auth, "MOVE-1", "CTHEAD", accession_number="MOVE1")
    assert r.status_code == 201 and r.json["safety"]["findings"] == []
    client.patch("/api/patients/MOVE-1", json={"record": {"pregnancy_status": "pregnant"}}, headers=auth)
    later = (site_now() + timedelta(days=2)).strftime("%Y-%m-%dT11:00")
    r = client.post("/api/orders/MOVE1/reschedule", json={"scheduled_start": later}, headers=auth)
    assert r.status_code == 422 and r.json["error"]["code"] == "unsafe"


def test_an_adt_registration_of_a_likely_duplicate_is_accepted_with_a_warning_err(app):
    """The EHR's identity is authoritative (AA), and its interface engine gets an ERR it can
    route to a person (severity W, pointing at PID-3), not only MSA-3 text."""
    processor = InboundProcessor(app.extensions["ris_sessions"], Hl7Settings(), app.config["RIS"])
    processor.receive(H.build(H.ADT_A04, mrn="ERR-DUP1", family="Jürgens", given="Zoë", birth="19700101"))
    outcome = processor.receive(H.build(H.ADT_A04, mrn="ERR-DUP2", family="JURGENS", given="zoe", birth="19700101"))
    assert outcome.ack_code == "AA" and "possible duplicate of MRN ERR-DUP1" in outcome.text
    [err] = [seg for seg in outcome.ack.decode().split("\r") if seg.startswith("ERR")]
    assert err.startswith("ERR|PID^1^3^^0&Message accepted&HL70357"), err  # ADT_A04 is 2.3.1: ERR-1 only
