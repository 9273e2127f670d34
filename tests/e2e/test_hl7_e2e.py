"""HL7 end to end: the whole system (`orthanc-ris up`, with its HL7 listener part) fed by
MLLP, the worklist read back by dcmtk's findscu, status messages received by a test EHR."""

from __future__ import annotations

import pytest

from ris_app.clock import site_today
from tests.conftest import TEST_OUTPUT, _require_debian_tools, start_system, stop_system, wait_for
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import Receiver, fields, msa, send
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
TODAY = site_today().strftime("%Y%m%d")


@pytest.fixture(scope="module")
def ehr():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def hl7_system(tmp_path_factory, ehr):
    """The system, with the test EHR as its outbound HL7 destination."""
    _require_debian_tools()
    home = tmp_path_factory.mktemp("hl7system")
    s = start_system(
        home,
        {
            "ORTHANC_RIS_HL7_DESTINATIONS": f"EHR=127.0.0.1:{ehr.port}",
            "ORTHANC_RIS_HL7_RETRY_SECONDS": "0.3",
            "ORTHANC_RIS_HL7_RETRY_MAX_SECONDS": "1",
        },
    )
    yield s
    stop_system(s)
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / f"up-{home.name}.log").write_text((home / "up.log").read_text(errors="replace"))


def hl7(system, template: str, **values) -> None:
    ctl = H.control_id()
    reply = send(system.hl7_port, H.build(template, ctl=ctl, start=f"{TODAY}093000", **values))
    assert msa(reply) == ("AA", ctl), reply


def mwl(system, tmp_path, **keys):
    return run_findscu(system.dicom_port, system.aet, write_query(tmp_path / "q.dcm", **keys), tmp_path / "r")


def test_up_reports_the_hl7_listener(hl7_system):
    assert "HL7 MLLP listener" in (hl7_system.home / "up.log").read_text()


def test_adt_then_orm_is_in_the_worklist(hl7_system, tmp_path):
    hl7(hl7_system, H.ADT_A01, mrn="E2E-HL7-1", family="Müller", given="Jürgen", sex="M", birth="19610203")
    hl7(hl7_system, H.ORM_O01_NW, mrn="E2E-HL7-1", family="Müller", given="Jürgen", acc="HL7E2E1", station="CT1")
    [a] = mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E1")
    assert str(a.PatientName) == "Müller^Jürgen" and a.PatientID == "E2E-HL7-1" and a.PatientSex == "M"
    sps = a.ScheduledProcedureStepSequence[0]
    assert (sps.Modality, sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartDate) == ("CT", "CT1", TODAY)
    assert sps.ScheduledProcedureStepStartTime.startswith("0930")


def test_omi_without_station_is_found_by_a_scanner_without_aet(hl7_system, tmp_path):
    hl7(
        hl7_system,
        H.OMI_O23_NW,
        mrn="E2E-HL7-2",
        acc="HL7E2E2",
        code="XRCHEST",
        modality="CR",
        station="",
        suid="1.2.826.0.1.3680043.2.1125.99.2",
    )
    [a] = mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E2")
    assert a.StudyInstanceUID == "1.2.826.0.1.3680043.2.1125.99.2"
    answers = mwl(hl7_system, tmp_path, sps={"Modality": "CR", "ScheduledProcedureStepStartDate": TODAY})
    assert "HL7E2E2" in [x.AccessionNumber for x in answers]


def test_a08_renames_in_the_next_worklist_answer(hl7_system, tmp_path):
    hl7(hl7_system, H.ORM_O01_NW, mrn="E2E-HL7-3", family="Before", given="Name", acc="HL7E2E3")
    hl7(hl7_system, H.ADT_A08, mrn="E2E-HL7-3", family="After", given="Renamed")
    [a] = mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E3")
    assert str(a.PatientName) == "After^Renamed"


def test_a40_merge_moves_the_order_to_the_surviving_patient(hl7_system, tmp_path):
    hl7(hl7_system, H.ADT_A01, mrn="E2E-SURV", family="Kept", given="One")
    hl7(hl7_system, H.ORM_O01_NW, mrn="E2E-PRIOR", family="Dup", given="Two", acc="HL7E2E4")
    hl7(hl7_system, H.ADT_A40, mrn="E2E-SURV", family="Kept", given="One", prior="E2E-PRIOR")
    [a] = mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E4")
    assert (a.PatientID, str(a.PatientName)) == ("E2E-SURV", "Kept^One")
    prior = hl7_system.api("GET", "/api/patients/E2E-PRIOR")  # kept, marked merged
    assert prior.status_code == 200 and prior.json()["merged_into"] == "E2E-SURV"


def test_ca_removes_the_step_from_the_worklist(hl7_system, tmp_path):
    hl7(hl7_system, H.ORM_O01_NW, mrn="E2E-HL7-5", acc="HL7E2E5")
    assert len(mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E5")) == 1
    hl7(hl7_system, H.ORM_O01_CA, mrn="E2E-HL7-5", acc="HL7E2E5")
    assert mwl(hl7_system, tmp_path, AccessionNumber="HL7E2E5") == []
    assert hl7_system.api("GET", "/api/orders/HL7E2E5").json()["status"] == "CANCELED"


def test_duplicate_is_applied_once(hl7_system):
    data = H.build(H.ORM_O01_NW, ctl="E2E-DUP-1", mrn="E2E-HL7-6", acc="HL7E2E6")
    assert msa(send(hl7_system.hl7_port, data)) == ("AA", "E2E-DUP-1")
    assert msa(send(hl7_system.hl7_port, data)) == ("AA", "E2E-DUP-1")
    items = hl7_system.api("GET", "/api/hl7/messages?control_id=E2E-DUP-1").json()["items"]
    assert sorted(i["status"] for i in items) == ["duplicate", "processed"]


def test_status_from_the_pages_and_api_reaches_the_ehr(hl7_system, ehr):
    hl7(hl7_system, H.ORM_O01_NW, mrn="E2E-HL7-7", acc="HL7E2E7")
    for action in ("arrive", "start", "complete"):
        r = hl7_system.api("POST", "/api/orders/HL7E2E7/status", json={"action": action})
        assert r.status_code == 200, r.text
    msgs = wait_for(
        lambda: (m := [x for x in ehr.messages("ORM") if b"HL7E2E7" in x]) and len(m) >= 3 and m, timeout=20
    )
    assert [fields(m, "ORC")[5] for m in msgs] == ["SC", "IP", "CM"]


def test_the_real_listener_refuses_garbage_and_keeps_serving(hl7_system):
    from ris_app.hl7.mllp import END, START
    from tests.fixtures.hl7_peer import send_raw

    assert msa(send(hl7_system.hl7_port, H.NO_MSH.encode()))[0] == "AR"
    assert msa(send(hl7_system.hl7_port, H.build(H.WRONG_VERSION, ctl="E2E-BADV")))[0] == "AR"
    huge = H.build(H.ADT_A01, ctl="E2E-HUGE") + b"NTE|1||" + b"x" * (1_100_000) + b"\r"
    assert msa(send_raw(hl7_system.hl7_port, START + huge + END)) == ("AR", "E2E-HUGE")
    hl7(hl7_system, H.ADT_A01, mrn="E2E-AFTER")
    rejected = hl7_system.api("GET", "/api/hl7/messages?status=rejected").json()["items"]
    assert {"E2E-BADV", "E2E-HUGE"} <= {m["control_id"] for m in rejected}
