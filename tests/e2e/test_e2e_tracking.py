"""Image tracking end to end, with the whole system running (`orthanc-ris up`): a real
MPPS SCU, the inbox relinking a misfiled study in Orthanc and undoing it, a rename and a
merge reaching the worklist and Orthanc, reconciliation and the health report."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ris_app.clock import site_today
from tests.conftest import wait_for
from tests.e2e.test_e2e_loop import _order
from tests.e2e.test_e2e_loop import _register as register
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = pytest.mark.e2e
TODAY = site_today()


def place_order(system, mrn, aet="CT1", at="09:30"):
    return _order(system, mrn, aet=aet, at=at)


def order_of(system, accession):
    return system.api("GET", f"/api/orders/{accession}").json()


def orthanc_study(system, suid):
    """What Orthanc holds for a StudyInstanceUID: patient, accession, SOP UIDs (or None)."""
    hits = [h for h in system.orthanc("POST", "/tools/lookup", data=suid).json() if h["Type"] == "Study"]
    if len(hits) != 1:
        return None
    study = system.orthanc("GET", f"/studies/{hits[0]['ID']}").json()
    instances = system.orthanc("GET", f"/studies/{hits[0]['ID']}/instances").json()
    sops = sorted(
        system.orthanc("GET", f"/instances/{i['ID']}/simplified-tags").json()["SOPInstanceUID"] for i in instances
    )
    return {
        "PatientID": study["PatientMainDicomTags"]["PatientID"],
        "PatientName": study["PatientMainDicomTags"]["PatientName"],
        "PatientBirthDate": study["PatientMainDicomTags"].get("PatientBirthDate", ""),
        "PatientSex": study["PatientMainDicomTags"].get("PatientSex", ""),
        "AccessionNumber": study["MainDicomTags"].get("AccessionNumber", ""),
        "sops": sops,
    }


def wait_tasks_done(system, tasks, timeout=60):
    def done():
        states = [system.api("GET", f"/api/orthanc-tasks/{t['id']}").json()["state"] for t in tasks]
        assert "failed" not in states, states
        return all(s == "done" for s in states)

    wait_for(done, timeout=timeout)


# ------------------------------------------------------------------------------ MPPS
def _mpps_scu(system):
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    system.add_station("CT1", "CT")  # the MPPS SCP answers stations only
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", system.mpps_port, ae_title=system.env.get("ORTHANC_RIS_MPPS_AET", "RISMPPS"))
    assert assoc.is_established
    return assoc, ModalityPerformedProcedureStep


def _in_progress(order, status="IN PROGRESS"):
    ds = Dataset()
    item = Dataset()
    item.AccessionNumber = order["accession_number"]
    item.ScheduledProcedureStepID = order["scheduled_procedure_step"]["sps_id"]
    item.StudyInstanceUID = order["study_instance_uid"]
    ds.ScheduledStepAttributesSequence = [item]
    ds.PatientID = order["patient"]["mrn"]
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepStartDate = TODAY.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepStatus = status
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def _completed(n_instances, status="COMPLETED"):
    mods = Dataset()
    mods.PerformedProcedureStepStatus = status
    mods.PerformedProcedureStepEndDate = TODAY.strftime("%Y%m%d")
    mods.PerformedProcedureStepEndTime = "102000"
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.ReferencedImageSequence = []
    for _ in range(n_instances):
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = generate_uid()
        series.ReferencedImageSequence.append(ref)
    mods.PerformedSeriesSequence = [series]
    return mods


def test_mpps_drives_the_step_and_refuses_bad_transitions(system):
    register(system, "MPPS-1", "Mpps", "Patient")
    order = place_order(system, "MPPS-1")
    acc = order["accession_number"]
    assoc, sop = _mpps_scu(system)
    try:
        uid = generate_uid()
        status, _ = assoc.send_n_create(_in_progress(order, status="COMPLETED"), sop, uid)
        assert status.Status == 0x0106  # N-CREATE must be IN PROGRESS
        status, _ = assoc.send_n_create(_in_progress(order), sop, uid)
        assert status.Status == 0x0000
        assert order_of(system, acc)["status"] == "STARTED"
        status, _ = assoc.send_n_create(_in_progress(order), sop, uid)
        assert status.Status == 0x0111  # duplicate SOP instance
        status, _ = assoc.send_n_set(_completed(3), sop, generate_uid())
        assert status.Status == 0x0112  # no such SOP instance
        status, _ = assoc.send_n_set(_completed(3), sop, uid)
        assert status.Status == 0x0000
        body = order_of(system, acc)
        assert body["status"] == "COMPLETED"
        assert [h["source"] for h in body["scheduled_procedure_step"]["history"]][-2:] == ["mpps", "mpps"]
        status, _ = assoc.send_n_set(_completed(3, status="DISCONTINUED"), sop, uid)
        assert status.Status == 0x0110  # a completed step may no longer be updated
        assert status.get("ErrorID") == 0xA710
        # A step already completed cannot be started again by another MPPS.
        status, _ = assoc.send_n_create(_in_progress(order), sop, generate_uid())
        assert status.Status == 0x0110
    finally:
        assoc.release()
    journey = system.api("GET", f"/api/orders/{acc}/journey").json()
    by_name = {m["name"]: m["at"] for m in journey["milestones"]}
    assert by_name["ordered"] and by_name["scheduled"] and by_name["started"] and by_name["images_complete"]
    assert by_name["reported"] is None and by_name["signed"] is None
    assert journey["mpps_instances"] == 3 and journey["instances"] == 0
    assert journey["missing_images"] is True  # MPPS made 3 images, Orthanc holds none


def test_mpps_discontinued(system):
    register(system, "MPPS-2", "Mpps", "Stopped")
    order = place_order(system, "MPPS-2")
    assoc, sop = _mpps_scu(system)
    try:
        uid = generate_uid()
        assert assoc.send_n_create(_in_progress(order), sop, uid)[0].Status == 0
        assert assoc.send_n_set(_completed(0, status="DISCONTINUED"), sop, uid)[0].Status == 0
    finally:
        assoc.release()
    assert order_of(system, order["accession_number"])["status"] == "DISCONTINUED"


# ------------------------------------------------------------------------------ inbox
def test_misfiled_study_is_relinked_from_the_inbox_and_undone(system, tmp_path):
    register(system, "INBOX-1", "Schröder", "Anna", birth="1980-05-06")
    order = place_order(system, "INBOX-1", aet="CT1")
    acc = order["accession_number"]
    # The scanner sent the study under a typed-in ID and no accession.
    files = write_series(tmp_path / "s", 4, patient_id="TMP123", patient_name="Schroder^Anna", accession="WRONG1")
    system.add_station("CT1", "CT")
    assert system.storescu(files, calling_aet="CT1").returncode == 0
    suid = pytest.importorskip("pydicom").dcmread(files[0]).StudyInstanceUID
    original_sops = orthanc_study(system, suid)["sops"] if wait_for(lambda: orthanc_study(system, suid)) else None

    def in_inbox():
        items = system.api("GET", "/api/studies?unmatched=1").json()["items"]
        return [s for s in items if s["study_instance_uid"] == suid and s["instances"] == 4]

    (study,) = wait_for(in_inbox)
    best = study["candidates"][0]
    assert best["accession_number"] == acc
    assert {"family_name", "given_name", "date", "modality", "station_aet"} <= set(best["reasons"])

    r = system.api("POST", f"/api/studies/{suid}/link", json={"accession_number": acc})
    assert r.status_code == 201, r.text
    link = r.json()
    assert order_of(system, acc)["study"]["study_instance_uid"] == suid  # the RIS at once
    wait_tasks_done(system, link["tasks"])
    fixed = orthanc_study(system, suid)
    assert fixed["PatientID"] == "INBOX-1" and fixed["AccessionNumber"] == acc
    assert fixed["PatientName"] == "Schröder^Anna"
    assert (fixed["PatientBirthDate"], fixed["PatientSex"]) == ("19800506", "F")
    assert fixed["sops"] == original_sops  # UIDs kept, nothing lost or doubled
    body = wait_for(lambda: (b := order_of(system, acc))["study"]["accession_number"] == acc and b)
    assert body["study"]["instances"] == 4 and body["study"]["link_method"] == "manual"
    audit = system.api("GET", f"/api/corrections?study_instance_uid={suid}").json()["items"]
    assert [c["action"] for c in audit] == ["link"]

    r = system.api("POST", f"/api/corrections/{link['correction']['id']}/undo")
    assert r.status_code == 201, r.text
    wait_tasks_done(system, r.json()["tasks"])
    restored = orthanc_study(system, suid)
    assert (restored["PatientID"], restored["AccessionNumber"]) == ("TMP123", "WRONG1")
    assert (restored["PatientBirthDate"], restored["PatientSex"]) == ("", "")  # as the scanner sent them
    assert restored["sops"] == original_sops
    assert order_of(system, acc)["study"] is None
    assert wait_for(in_inbox)  # back in the inbox, and not relinked by the events of the undo
    assert system.api("POST", f"/api/corrections/{link['correction']['id']}/undo").status_code == 409


# ------------------------------------------------------------------------------ patients
def test_rename_reaches_worklist_and_orthanc(system, tmp_path):
    register(system, "RENAME-1", "Oldname", "Eva")
    waiting = place_order(system, "RENAME-1", aet="CT5")
    imaged = place_order(system, "RENAME-1", aet="CT6")
    files = write_series(
        tmp_path / "s", 2, patient_id="RENAME-1", patient_name="Oldname^Eva", accession=imaged["accession_number"]
    )
    assert system.storescu(files).returncode == 0
    suid = pytest.importorskip("pydicom").dcmread(files[0]).StudyInstanceUID
    wait_for(lambda: order_of(system, imaged["accession_number"])["study"])

    r = system.api("PATCH", "/api/patients/RENAME-1", json={"family_name": "Newname"})
    assert r.status_code == 200, r.text
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(tmp_path / "q.dcm", AccessionNumber=waiting["accession_number"]),
        tmp_path / "r",
    )
    assert [str(a.PatientName) for a in answers] == ["Newname^Eva"]
    wait_for(lambda: (orthanc_study(system, suid) or {}).get("PatientName") == "Newname^Eva", timeout=60)
    assert orthanc_study(system, suid)["PatientID"] == "RENAME-1"


def test_merge_moves_orders_and_studies(system, tmp_path):
    register(system, "MERGE-KEEP", "Dupont", "Marie", birth="1950-01-02")
    register(system, "MERGE-DUP", "Dupont", "Marie", birth="1950-01-02")
    order = place_order(system, "MERGE-DUP")
    files = write_series(
        tmp_path / "s", 2, patient_id="MERGE-DUP", patient_name="Dupont^Marie", accession=order["accession_number"]
    )
    assert system.storescu(files).returncode == 0
    suid = pytest.importorskip("pydicom").dcmread(files[0]).StudyInstanceUID
    wait_for(lambda: order_of(system, order["accession_number"])["study"])
    r = system.api("POST", "/api/patients/MERGE-KEEP/merge", json={"merged_mrn": "MERGE-DUP"})
    assert r.status_code == 201, r.text
    assert order_of(system, order["accession_number"])["patient"]["mrn"] == "MERGE-KEEP"
    wait_tasks_done(system, r.json()["tasks"])
    assert orthanc_study(system, suid)["PatientID"] == "MERGE-KEEP"
    assert system.api("POST", "/api/patients/MERGE-KEEP/merge", json={"merged_mrn": "MERGE-DUP"}).status_code == 409


# ------------------------------------------------------------------------------ reconciliation & health
def test_reconciliation_repairs_drift_and_health_shows_sync(system, tmp_path):
    files = write_series(tmp_path / "s", 3, patient_id="RECON", patient_name="Re^Con", accession="RECON1")
    assert system.storescu(files).returncode == 0
    suid = pytest.importorskip("pydicom").dcmread(files[0]).StudyInstanceUID

    def study():
        return [s for s in system.api("GET", "/api/studies").json()["items"] if s["study_instance_uid"] == suid]

    (st,) = wait_for(study)
    # Drift: a count the RIS got wrong, and a study the RIS believes in but Orthanc lost.
    bad = {
        "seq": 10**9,
        "change": "NewSeries",
        "orthanc_id": st["orthanc_id"],
        "study": {"StudyInstanceUID": suid, "AccessionNumber": "RECON1", "CountSeries": 1, "CountInstances": 99},
    }
    assert system.api("POST", "/api/internal/study-events", json=bad).status_code == 200
    ghost = {
        "seq": 1,
        "change": "NewStudy",
        "orthanc_id": "no-such-study",
        "study": {"StudyInstanceUID": "1.2.3.999", "CountSeries": 1, "CountInstances": 1},
    }
    assert system.api("POST", "/api/internal/study-events", json=ghost).status_code == 200
    r = system.api("POST", "/api/sync/reconcile")
    assert r.status_code == 200, r.text
    assert r.json()["updated"] >= 1 and r.json()["deleted"] >= 1
    assert study()[0]["instances"] == 3
    assert not [s for s in system.api("GET", "/api/studies").json()["items"] if s["study_instance_uid"] == "1.2.3.999"]

    health = wait_for(
        lambda: (
            (h := system.api("GET", "/api/health", headers={"Authorization": ""}).json())["sync"]["backlog"] == 0 and h
        )
    )
    assert health["sync"]["last_sync"] is not None
    assert health["sync"]["last_reconcile"] is not None


def test_relinking_one_of_two_studies_of_a_patient_leaves_the_other(system, tmp_path):
    """Orthanc 1.10 cannot change PatientID at study level: with another study under the
    same wrong patient, the instances are moved one by one (UIDs kept)."""
    register(system, "SPLIT-1", "Split", "Right")
    order = place_order(system, "SPLIT-1")
    moved = write_series(tmp_path / "a", 3, patient_id="SHARED", patient_name="Wrong^Patient", accession="W1")
    stays = write_series(tmp_path / "b", 2, patient_id="SHARED", patient_name="Wrong^Patient", accession="W2")
    assert system.storescu(moved + stays).returncode == 0
    dcm = pytest.importorskip("pydicom")
    moved_uid, stays_uid = dcm.dcmread(moved[0]).StudyInstanceUID, dcm.dcmread(stays[0]).StudyInstanceUID
    wait_for(
        lambda: (
            {s["study_instance_uid"] for s in system.api("GET", "/api/studies?unmatched=1").json()["items"]}
            >= {moved_uid, stays_uid}
        )
    )
    before = orthanc_study(system, moved_uid)["sops"]
    r = system.api("POST", f"/api/studies/{moved_uid}/link", json={"accession_number": order["accession_number"]})
    assert r.status_code == 201, r.text
    wait_tasks_done(system, r.json()["tasks"])
    after = orthanc_study(system, moved_uid)
    assert (after["PatientID"], after["AccessionNumber"], after["sops"]) == (
        "SPLIT-1",
        order["accession_number"],
        before,
    )
    other = orthanc_study(system, stays_uid)
    assert (other["PatientID"], other["AccessionNumber"], len(other["sops"])) == ("SHARED", "W2", 2)
    body = wait_for(lambda: (b := order_of(system, order["accession_number"]))["study"]["instances"] == 3 and b)
    assert body["study"]["patient_mrn"] == "SPLIT-1"
