"""The stations table is the DICOM allowlist (issue 17), shown with real peers: an unknown
calling AE is refused for worklist C-FIND, C-STORE and MPPS, a known one works, a station
added through the API may call at once, and every refusal is logged with AE and address."""

from __future__ import annotations

import subprocess

import pydicom
import pytest

from tests.conftest import FINDSCU, wait_for
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import write_query

pytestmark = pytest.mark.e2e

INTRUDER = "INTRUDER"


def _log(system) -> str:
    return (system.home / "up.log").read_text(errors="replace")


def _mpps_associate(system, calling: str, called: str | None = None):
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    return ae.associate(
        "127.0.0.1", system.mpps_port, ae_title=called or system.env.get("ORTHANC_RIS_MPPS_AET", "RISMPPS")
    )


def test_unknown_calling_ae_cannot_query_the_worklist(system, tmp_path):
    proc = system.findscu(write_query(tmp_path / "q.dcm"), calling_aet=INTRUDER)
    assert proc.returncode != 0
    assert "Calling AE Title Not Recognized" in proc.stdout + proc.stderr
    wait_for(lambda: f"Rejected association for remote AET {INTRUDER} on IP 127.0.0.1" in _log(system))


def test_unknown_calling_ae_cannot_store(system, tmp_path):
    files = write_series(tmp_path / "s", 1, patient_id="NOSTORE1", patient_name="Test^Store", accession="NOSTORE1")
    proc = system.storescu(files, calling_aet=INTRUDER)
    assert proc.returncode != 0
    assert "Calling AE Title Not Recognized" in proc.stdout + proc.stderr
    suid = pydicom.dcmread(files[0]).StudyInstanceUID
    assert system.orthanc("POST", "/tools/lookup", data=suid).json() == []
    wait_for(lambda: f"Rejected association for remote AET {INTRUDER} on IP 127.0.0.1" in _log(system))


def test_known_station_queries_and_stores(system, tmp_path):
    query = write_query(tmp_path / "q.dcm")
    assert system.findscu(query).returncode == 0  # FINDSCU is a station (start_system)
    files = write_series(tmp_path / "s", 1, patient_id="STORED1", patient_name="Test^Store", accession="STORED1")
    assert system.storescu(files).returncode == 0


def test_a_station_added_through_the_api_queries_at_once(system, tmp_path):
    query = write_query(tmp_path / "q.dcm")
    assert system.findscu(query, calling_aet="NEWCT7").returncode != 0
    system.add_station("NEWCT7", "CT")
    proc = system.findscu(query, calling_aet="NEWCT7")  # no restart, no wait
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_wrong_called_ae_is_refused(system, tmp_path):
    query = write_query(tmp_path / "q.dcm")
    argv = [FINDSCU, "-W", "-aet", "FINDSCU", "-aec", "NOTPACS", "127.0.0.1", str(system.dicom_port), str(query)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Called AE Title Not Recognized" in proc.stdout + proc.stderr


def test_unknown_calling_ae_cannot_open_mpps(system):
    assoc = _mpps_associate(system, INTRUDER)
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x03  # calling AE title not recognised
    wait_for(lambda: f"calling AE '{INTRUDER}' from 127.0.0.1" in _log(system))


def test_mpps_refuses_the_wrong_called_ae(system):
    system.add_station("MPPSCT", "CT")
    assoc = _mpps_associate(system, "MPPSCT", called="NOTMPPS")
    assert assoc.is_rejected
    wait_for(lambda: "called AE 'NOTMPPS'" in _log(system))


def test_a_new_station_opens_mpps_at_once_and_only_from_its_host(system):
    system.add_station("MPPSMR", "MR")
    assoc = _mpps_associate(system, "MPPSMR")
    assert assoc.is_established
    assoc.release()
    system.add_station("FARCT", "CT", host="10.9.8.7")  # calls from elsewhere only
    assoc = _mpps_associate(system, "FARCT")
    assert assoc.is_rejected
