"""MRNs compared without case (the default) through the real parts: a patient registered
as E2E-CASE through the API, an ORM^O01 over MLLP naming e2e-case, and dcmtk's findscu
asking Orthanc's worklist for PatientID e2e-case: one patient, its MRN as first written."""

from __future__ import annotations

import pytest

from ris_app.clock import site_today
from tests.e2e.test_registration_e2e import hl7
from tests.fixtures import hl7_messages as H
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]


def test_one_patient_whatever_the_case_of_its_mrn_api_hl7_and_worklist(system, tmp_path):
    body = {"mrn": "E2E-CASE", "family_name": "Müller", "given_name": "Jörg", "birth_date": "1970-01-02"}
    assert system.api("POST", "/api/patients", json=body).status_code == 201
    hl7(system, H.ORM_O01_NW, mrn="e2e-case", family="Müller", given="Jörg", acc="E2ECASE", placer="PL-CASE")
    order = system.api("GET", "/api/orders/E2ECASE").json()
    assert order["patient"]["mrn"] == "E2E-CASE"
    assert [p["mrn"] for p in system.api("GET", "/api/patients?q=müller jörg").json()["items"]] == ["E2E-CASE"]
    day = site_today().strftime("%Y%m%d")
    query = write_query(tmp_path / "q.dcm", PatientID="e2e-case", sps={"ScheduledProcedureStepStartDate": day})
    found = run_findscu(system.dicom_port, system.aet, query, tmp_path / "r")
    assert [(ds.AccessionNumber, ds.PatientID) for ds in found] == [("E2ECASE", "E2E-CASE")]
