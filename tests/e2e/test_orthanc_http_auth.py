"""Orthanc's REST port always asks for a login (issue 17): anonymous or wrong credentials
get 401, while the RIS, its sync worker (service account) and the plugin (internal calls,
no credentials) keep working."""

from __future__ import annotations

import pydicom
import pytest
import requests

from tests.conftest import wait_for
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/system"), ("GET", "/patients"), ("DELETE", "/patients/x"), ("GET", "/modalities")]
)
def test_orthanc_rest_answers_401_without_credentials(system, method, path):
    r = requests.request(method, system.orthanc_url + path, timeout=10)
    assert r.status_code == 401
    wrong = requests.request(method, system.orthanc_url + path, auth=("orthanc-ris", "guess"), timeout=10)
    assert wrong.status_code == 401


def test_the_service_account_is_a_secret_file_only_its_owner_reads(system):
    path = system.home / "secrets" / "orthanc-password"
    assert path.stat().st_mode & 0o077 == 0
    assert system.orthanc("GET", "/system").status_code == 200


def test_ris_and_plugin_keep_working_behind_the_login(system, tmp_path):
    # The plugin answers the worklist (it calls the RIS) ...
    run_findscu(system.dicom_port, system.aet, write_query(tmp_path / "q.dcm"), tmp_path / "r")
    # ... and reports stored images from Orthanc's change feed (orthanc.RestApiGet, no login).
    files = write_series(tmp_path / "s", 2, patient_id="AUTH-1", patient_name="Auth^Test", accession="AUTHX1")
    assert system.storescu(files).returncode == 0
    suid = pydicom.dcmread(files[0]).StudyInstanceUID

    def reported():
        items = system.api("GET", "/api/studies?unmatched=1").json()["items"]
        return [s for s in items if s["study_instance_uid"] == suid and s["instances"] == 2]

    wait_for(reported)
    # The RIS itself (service account) put the stations into Orthanc.
    modalities = system.orthanc("GET", "/modalities?expand").json()
    assert {"FINDSCU", "STORESCU"} <= {m["AET"] for m in modalities.values()}
