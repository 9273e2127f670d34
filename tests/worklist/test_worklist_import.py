"""Import of existing worklist items: every attribute kept, bad items reported one by
one and skipped, nothing half-imported."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import func, select

from ris_app.model import Order, Patient, ScheduledProcedureStep
from tests.fixtures.worklist_data import sample_worklists
from tests.worklist.test_worklist_rules import accessions, find, query

pytestmark = pytest.mark.db


def item(**over) -> Dataset:
    """A worklist item as a site's files hold it, with attributes the RIS does not model."""
    ds = Dataset()
    ds.SpecificCharacterSet = over.pop("charset", "ISO_IR 100")
    ds.AccessionNumber = over.pop("AccessionNumber", "IMP001")
    ds.PatientName = over.pop("PatientName", "Müller^Jürgen")
    ds.PatientID = over.pop("PatientID", "IMP-P1")
    ds.PatientBirthDate = "19610203"
    ds.PatientSex = "M"
    ds.MedicalAlerts = "Pacemaker"
    ds.Allergies = "Iodine"
    ds.StudyInstanceUID = over.pop("StudyInstanceUID", "1.2.826.0.1.3680043.2.1125.1")
    ds.RequestingPhysician = "House^Gregory"
    ds.RequestedProcedureID = "RP1"
    ds.add_new(0x00091010, "LO", "private value")  # private: kept too
    sps = Dataset()
    sps.Modality = "MR"
    sps.ScheduledStationAETitle = over.pop("aet", ["MR1", "MR2"])
    sps.ScheduledProcedureStepStartDate = over.pop("date", "20261128")
    sps.ScheduledProcedureStepStartTime = "0930"
    sps.ScheduledProcedureStepID = over.pop("sps_id", "IMPSPS1")
    sps.RequestedContrastAgent = "Gadolinium"
    sps.PreMedication = ""
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "MRHEAD", "99LOCAL", "MR head"
    sps.ScheduledProtocolCodeSequence = [code]
    ds.ScheduledProcedureStepSequence = [sps]
    for k, v in over.items():
        setattr(ds, k, v)
    return ds


def part10(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def counts(app) -> tuple[int, int, int]:
    with app.extensions["ris_sessions"]() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Patient, Order, ScheduledProcedureStep))


def post(client, auth, data: bytes, ctype="application/dicom"):
    return client.post("/api/worklist-items", data=data, headers={**auth, "Content-Type": ctype})


def test_imported_item_answers_every_original_attribute(client, auth):
    original = item()
    r = post(client, auth, part10(original))
    assert r.status_code == 201, r.json
    assert r.json["items"][0]["sps_id"] == "IMPSPS1"
    answer = find(client, auth, query(AccessionNumber="IMP001"))[0][0]
    for elem in original:
        if elem.keyword in ("SpecificCharacterSet", "ScheduledProcedureStepSequence"):
            continue
        assert answer[elem.tag].value == elem.value, elem.keyword
    ours, theirs = answer.ScheduledProcedureStepSequence[0], original.ScheduledProcedureStepSequence[0]
    for elem in theirs:
        assert ours[elem.tag].value == elem.value, elem.keyword
    assert answer.SpecificCharacterSet == "ISO_IR 192"  # Latin-1 in, UTF-8 out, same text
    assert str(answer.PatientName) == "Müller^Jürgen"


def test_dicom_json_import_and_several_items(client, auth):
    one = item(AccessionNumber="J1", sps_id="JS1", StudyInstanceUID="1.2.3.1").to_json_dict()
    two = item(
        AccessionNumber="J2",
        sps_id="JS2",
        StudyInstanceUID="1.2.3.2",
        PatientName="王^小明",
        PatientID="J-P2",
        charset="ISO_IR 192",
    ).to_json_dict()
    r = client.post(
        "/api/worklist-items", data=json.dumps([one, two]), headers={**auth, "Content-Type": "application/dicom+json"}
    )
    assert r.status_code == 201, r.json
    assert [i["accession_number"] for i in r.json["items"]] == ["J1", "J2"]
    answer = find(client, auth, query(AccessionNumber="J2"))[0][0]
    assert str(answer.PatientName) == "王^小明"


def test_bad_items_reported_one_by_one_and_nothing_half_imported(app, client, auth, tmp_path):
    tmp_path = tmp_path / "worklists"
    tmp_path.mkdir()
    good = item(AccessionNumber="G1", sps_id="GS1", StudyInstanceUID="1.2.4.1")
    no_date = item(AccessionNumber="B1", sps_id="BS1", StudyInstanceUID="1.2.4.2", PatientID="NEW-PATIENT", date="")
    too_long = item(AccessionNumber="B2", sps_id="X" * 40, StudyInstanceUID="1.2.4.3", PatientID="NEW-PATIENT2")
    (tmp_path / "good.wl").write_bytes(part10(good))
    (tmp_path / "no_date.wl").write_bytes(part10(no_date))
    (tmp_path / "too_long.wl").write_bytes(part10(too_long))
    (tmp_path / "garbage.wl").write_bytes(b"\x00not dicom at all" * 3)
    (tmp_path / "truncated.wl").write_bytes(part10(good)[:200])
    (tmp_path / "lockfile").touch()
    from ris_app.worklist.importer import import_folder

    with app.extensions["ris_sessions"]() as s:
        outcomes = {Path(o.source).name: o for o in import_folder(s, tmp_path)}
    assert set(outcomes) == {"good.wl", "no_date.wl", "too_long.wl", "garbage.wl", "truncated.wl"}
    assert outcomes["good.wl"].ok
    assert "StartDate" in outcomes["no_date.wl"].error
    assert "ScheduledProcedureStepID" in outcomes["too_long.wl"].error
    assert not outcomes["garbage.wl"].ok and not outcomes["truncated.wl"].ok
    assert counts(app) == (1, 1, 1)  # the new patients of the bad items did not stay
    # Importing the same file again is refused, not duplicated.
    r = post(client, auth, part10(good))
    assert r.status_code == 400 and "exists" in r.json["items"][0]["error"]
    assert counts(app) == (1, 1, 1)


def test_existing_patient_spelled_otherwise(client, auth):
    """The RIS's patient record answers the keys it matches in SQL (name, sex); the others
    keep the item's value (birth date here), and the import says so."""
    r = client.post(
        "/api/patients",
        json={"mrn": "IMP-P1", "family_name": "Mueller", "given_name": "J", "birth_date": "1961-01-01", "sex": "M"},
        headers=auth,
    )
    assert r.status_code == 201
    r = post(client, auth, part10(item()))
    warnings = " ".join(r.json["items"][0]["warnings"])
    assert r.status_code == 201 and "PatientName" in warnings and "00100030" in warnings
    answer = find(client, auth, query(AccessionNumber="IMP001"))[0][0]
    assert str(answer.PatientName) == "Mueller^J" and answer.PatientBirthDate == "19610203"
    assert accessions(find(client, auth, query(PatientName="mueller*"))[0]) == ["IMP001"]  # matched as answered
    assert find(client, auth, query(PatientName="Müller*"))[0] == []


def test_imported_step_without_status_answers_it_once_it_changes(client, auth):
    post(client, auth, part10(item()))
    sps = find(client, auth, query(AccessionNumber="IMP001"))[0][0].ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepStatus in ("", None)  # as the original: none
    client.post("/api/orders/IMP001/status", json={"action": "arrive"}, headers=auth)
    sps = find(client, auth, query(AccessionNumber="IMP001"))[0][0].ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepStatus == "ARRIVED"


def test_cli_import_reports_and_exits_nonzero_on_bad_files(config, tmp_path):
    folder = sample_worklists(tmp_path / "db")
    (folder / "OFFIS" / "broken.wl").write_bytes(b"garbage")
    env = {
        "ORTHANC_RIS_HOME": str(config.home),
        "ORTHANC_RIS_DATABASE_URL": config.database_url,
        "ORTHANC_RIS_API_TOKEN": "x",
        "ORTHANC_RIS_SECRET_KEY": "y",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "import-worklists", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "10 imported, 1 skipped" in proc.stdout
    assert "broken.wl" in proc.stderr


def test_japanese_item_in_iso_2022_keeps_every_name_group(client, auth):
    ds = item(
        charset=["", "ISO 2022 IR 87"],
        AccessionNumber="JP1",
        sps_id="JPS1",
        StudyInstanceUID="1.2.5.1",
        PatientID="JP-P1",
        PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
    )
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    r = post(client, auth, part10(ds))
    assert r.status_code == 201, r.json
    for pattern in ("Yamada*", "山田*", "やまだ^たろう", "yamada^tarou"):
        answers = find(client, auth, query(PatientName=pattern))[0]
        assert [str(a.PatientName) for a in answers] == ["Yamada^Tarou=山田^太郎=やまだ^たろう"], pattern


def test_sequence_matching_on_protocol_and_procedure_codes(client, auth):
    from pydicom.dataset import Dataset as D

    post(client, auth, part10(item()))  # ScheduledProtocolCodeSequence MRHEAD / 99LOCAL

    def ask(code_value, scheme=""):
        q = pydicom.dcmread(io.BytesIO(query()), force=True)
        code = D()
        code.CodeValue, code.CodingSchemeDesignator = code_value, scheme
        q.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence = [code]
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, q, implicit_vr=False, little_endian=True)
        return accessions(find(client, auth, buf.getvalue())[0])

    assert ask("MRHEAD") == ["IMP001"]
    assert ask("MRHEAD", "99LOCAL") == ["IMP001"]
    assert ask("MRHEAD", "DCM") == []  # every key of the item must match the same stored item
    assert ask("MR*") == ["IMP001"]
    assert ask("CTHEAD") == []


def test_multipart_upload_of_files(client, auth):
    files = {
        "a": (io.BytesIO(part10(item(AccessionNumber="M1", sps_id="MS1", StudyInstanceUID="1.2.6.1"))), "a.wl"),
        "b": (io.BytesIO(b"garbage"), "b.wl"),
    }
    r = client.post("/api/worklist-items", data=files, headers=auth, content_type="multipart/form-data")
    assert r.status_code == 207, r.json
    assert [(i["source"], i["ok"]) for i in r.json["items"]] == [("a.wl", True), ("b.wl", False)]
    assert (
        client.post("/api/worklist-items", data=b"x", headers={"Content-Type": "application/dicom"}).status_code == 401
    )


@pytest.mark.parametrize(
    "over, field",
    [
        ({"StudyInstanceUID": "1.02.3"}, "study_instance_uid"),
        ({"PatientID": "A/B"}, "mrn"),
        ({"PatientName": "Do\x7fe^Jane"}, "family_name"),
        ({"PatientBirthDate": "29990101"}, "birth_date"),
    ],
)
def test_items_breaking_the_field_rules_are_skipped_whole(app, client, auth, over, field):
    """Issue 17: the import applies scheduling.fields like the API, and keeps nothing of the item."""
    r = post(client, auth, part10(item(**over)))
    assert r.status_code == 400, r.json
    assert r.json["items"][0]["error"].startswith(f"{field}:")
    assert counts(app) == (0, 0, 0)


def test_an_unknown_modality_is_skipped(app, client, auth):
    ds = item()
    ds.ScheduledProcedureStepSequence[0].Modality = "XX"
    r = post(client, auth, part10(ds))
    assert r.status_code == 400 and r.json["items"][0]["error"].startswith("modality:")
    assert counts(app) == (0, 0, 0)
