"""The heart of the product, end to end: order -> worklist (findscu) -> images (storescu)
-> the order shows its study. Real Orthanc with our plugin, real RIS, dcmtk peers."""

from __future__ import annotations

from datetime import datetime

import pytest

from ris_app.clock import site_today
from tests.conftest import wait_for
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
TODAY = site_today()


def _register(system, mrn, family, given, birth="1970-01-01", sex="F"):
    r = system.api(
        "POST",
        "/api/patients",
        json={"mrn": mrn, "family_name": family, "given_name": given, "birth_date": birth, "sex": sex},
    )
    assert r.status_code == 201, r.text


def _order(system, mrn, aet="CT1", code="CTHEAD", at="09:30", **extra):
    r = system.api(
        "POST",
        "/api/orders",
        json={
            "mrn": mrn,
            "procedure_code": code,
            "modality": "CT",
            "station_aet": aet,
            "scheduled_start": f"{TODAY.isoformat()}T{at}",
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_health_without_token(system):
    r = system.api("GET", "/api/health", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json()["database"] == "ok" and r.json()["orthanc"] == "ok"


def test_order_appears_in_worklist_with_every_field(system, tmp_path):
    _register(system, "E2E-001", "Müller", "Jürgen", "1961-02-03", "M")
    order = _order(system, "E2E-001", aet="CT1", at="14:35")
    query = write_query(tmp_path / "q.dcm", AccessionNumber=order["accession_number"])
    answers = run_findscu(system.dicom_port, system.aet, query, tmp_path / "rsp")
    assert len(answers) == 1
    a = answers[0]
    assert str(a.PatientName) == "Müller^Jürgen"
    assert a.PatientID == "E2E-001"
    assert a.PatientBirthDate == "19610203" and a.PatientSex == "M"
    assert a.AccessionNumber == order["accession_number"]
    assert a.StudyInstanceUID == order["study_instance_uid"]
    sps = a.ScheduledProcedureStepSequence[0]
    assert sps.Modality == "CT"
    assert sps.ScheduledStationAETitle == "CT1"
    assert sps.ScheduledProcedureStepStartDate == TODAY.strftime("%Y%m%d")
    assert sps.ScheduledProcedureStepStartTime.startswith("1435")
    assert sps.ScheduledProcedureStepID == order["scheduled_procedure_step"]["sps_id"]
    assert sps.ScheduledProcedureStepStatus == "SCHEDULED"


def test_non_latin_names_survive(system, tmp_path):
    _register(system, "E2E-CJK", "王", "小明")
    order = _order(system, "E2E-CJK", aet="CT9")
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(tmp_path / "q.dcm", AccessionNumber=order["accession_number"]),
        tmp_path / "r",
    )
    assert [str(a.PatientName) for a in answers] == ["王^小明"]


def test_scanner_query_by_aet_and_today(system, tmp_path):
    _register(system, "E2E-AET", "Station", "Test")
    mine = _order(system, "E2E-AET", aet="MR7", code="MRBRAIN", at="08:00")
    _order(system, "E2E-AET", aet="MR8", code="MRBRAIN", at="08:00")
    query = write_query(
        tmp_path / "q.dcm",
        sps={"ScheduledStationAETitle": "MR7", "ScheduledProcedureStepStartDate": TODAY.strftime("%Y%m%d")},
    )
    answers = run_findscu(system.dicom_port, system.aet, query, tmp_path / "r")
    assert [a.AccessionNumber for a in answers] == [mine["accession_number"]]


@pytest.mark.parametrize("action_path", [["cancel"], ["start", "complete"]])
def test_canceled_or_completed_step_leaves_the_worklist(system, tmp_path, action_path):
    _register(system, f"E2E-{action_path[0]}", "Leaving", "Worklist")
    order = _order(system, f"E2E-{action_path[0]}")
    query = write_query(tmp_path / "q.dcm", AccessionNumber=order["accession_number"])
    assert len(run_findscu(system.dicom_port, system.aet, query, tmp_path / "r")) == 1
    for action in action_path:
        r = system.api("POST", f"/api/orders/{order['accession_number']}/status", json={"action": action})
        assert r.status_code == 200, r.text
    assert run_findscu(system.dicom_port, system.aet, query, tmp_path / "r") == []


def test_images_link_to_their_order_with_instance_count(system, tmp_path):
    _register(system, "E2E-IMG", "Images", "Arrive")
    order = _order(system, "E2E-IMG")
    acc = order["accession_number"]
    files = write_series(tmp_path / "series", 7, patient_id="E2E-IMG", patient_name="Images^Arrive", accession=acc)
    proc = system.storescu(files)
    assert proc.returncode == 0, proc.stderr

    def linked():
        body = system.api("GET", f"/api/orders/{acc}").json()
        study = body.get("study")
        return body if study and study["instances"] == 7 else None

    body = wait_for(linked, timeout=20)
    assert body["study"]["study_instance_uid"] != order["study_instance_uid"]  # scanner made its own UID
    assert body["study"]["link_method"] == "accession"
    assert body["status"] == "STARTED"  # images started the step
    # ... and a started step no longer answers the default worklist.
    assert (
        run_findscu(system.dicom_port, system.aet, write_query(tmp_path / "q.dcm", AccessionNumber=acc), tmp_path / "r")
        == []
    )


def test_images_link_by_study_instance_uid_when_accession_is_missing(system, tmp_path):
    _register(system, "E2E-UID", "Uid", "Link")
    order = _order(system, "E2E-UID")
    files = write_series(
        tmp_path / "s",
        2,
        patient_id="E2E-UID",
        patient_name="Uid^Link",
        accession="",
        study_uid=order["study_instance_uid"],
    )
    assert system.storescu(files).returncode == 0
    body = wait_for(lambda: (b := system.api("GET", f"/api/orders/{order['accession_number']}").json())["study"] and b)
    assert body["study"]["link_method"] == "study_uid"


def test_images_link_by_sps_id_in_request_attributes(system, tmp_path):
    _register(system, "E2E-SPS", "Sps", "Link")
    order = _order(system, "E2E-SPS")
    files = write_series(
        tmp_path / "s",
        1,
        patient_id="E2E-SPS",
        patient_name="Sps^Link",
        accession="",
        sps_id=order["scheduled_procedure_step"]["sps_id"],
    )
    assert system.storescu(files).returncode == 0
    body = wait_for(lambda: (b := system.api("GET", f"/api/orders/{order['accession_number']}").json())["study"] and b)
    assert body["study"]["link_method"] == "sps_id"


def test_unknown_accession_is_an_unmatched_study(system, tmp_path):
    files = write_series(tmp_path / "s", 3, patient_id="WHO-KNOWS", patient_name="Nobody^Known", accession="NOSUCHACC")

    assert system.storescu(files).returncode == 0

    def unmatched():
        items = system.api("GET", "/api/studies?unmatched=1").json()["items"]
        return [s for s in items if s["accession_number"] == "NOSUCHACC" and s["instances"] == 3]

    (study,) = wait_for(unmatched)
    assert study["order"] is None and study["unmatched"] is True


def test_stable_study_marks_images_complete(system, tmp_path):
    _register(system, "E2E-STABLE", "Stable", "Study")
    order = _order(system, "E2E-STABLE")
    files = write_series(
        tmp_path / "s", 2, patient_id="E2E-STABLE", patient_name="Stable^Study", accession=order["accession_number"]
    )
    assert system.storescu(files).returncode == 0
    body = wait_for(
        lambda: (
            (b := system.api("GET", f"/api/orders/{order['accession_number']}").json())["study"]
            and b["study"]["stable_at"]
            and b
        ),
        timeout=30,
    )
    assert datetime.fromisoformat(body["study"]["stable_at"]) >= datetime.fromisoformat(
        body["study"]["first_received_at"]
    )


def test_write_without_token_is_refused_and_writes_nothing(system):
    r = system.api("POST", "/api/patients", headers={"Authorization": ""}, json={"mrn": "NOTOKEN", "family_name": "X"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert system.api("GET", "/api/patients/NOTOKEN").status_code == 404


def test_logs_hold_no_patient_data(system):
    """Runs last in this module: everything above has been logged by now."""
    log = (system.home / "up.log").read_text(errors="replace")
    assert "worklist C-FIND" in log and "linked to order" in log  # the log does say what happens
    for secret in (
        "Müller",
        "Jürgen",
        "E2E-001",
        "E2E-IMG",
        "19610203",
        "1961-02-03",
        "王",
        "Nobody",
        "WHO-KNOWS",
        system.token,
    ):
        assert secret not in log, secret
