"""Nothing is lost across restarts: studies stored while the RIS is down are linked once
it is back; Orthanc killed in the middle of a study ends with the study linked with the
right count; duplicate and late events change nothing. Each test runs its own system."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pydicom
import pytest
import requests

from tests.conftest import STORESCU, start_system, stop_system, wait_for
from tests.e2e.test_e2e_loop import _order, _register
from tests.fixtures.dicom_factory import write_series

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")
            comm = fields[0].split(" (", 1)[1]
            ppid = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append((int(stat.parent.name), comm))
    return out


def _store(port: int, aet: str, files) -> None:
    proc = subprocess.run(
        [STORESCU, "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert proc.returncode == 0, proc.stderr


def _studies(system) -> dict[str, dict]:
    return {s["study_instance_uid"]: s for s in system.api("GET", "/api/studies").json()["items"]}


def test_studies_stored_while_the_ris_is_down_are_linked_once_it_is_back(tmp_path):
    home = tmp_path / "home"
    system = start_system(home)
    try:
        _register(system, "DOWN-1", "Downey", "Rita")
        order = _order(system, "DOWN-1")
    finally:
        stop_system(system)

    # Orthanc alone, with our plugin, while the RIS is not running.
    conf = home / "orthanc" / "orthanc.json"
    settings = json.loads(conf.read_text())
    orthanc = subprocess.Popen(
        ["Orthanc", str(conf)],
        cwd=home / "orthanc",
        stdout=subprocess.DEVNULL,
        stderr=open(home / "orthanc-alone.log", "wb"),
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    try:
        url = f"http://127.0.0.1:{settings['HttpPort']}"
        login = next(iter(settings["RegisteredUsers"].items()))

        def orthanc_up():
            try:
                return requests.get(url + "/system", auth=login, timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(orthanc_up, timeout=30)
        linked = write_series(
            tmp_path / "a", 5, patient_id="DOWN-1", patient_name="Downey^Rita", accession=order["accession_number"]
        )
        unmatched = write_series(tmp_path / "b", 2, patient_id="DOWN-X", patient_name="Nobody^Known", accession="NOPE")
        _store(settings["DicomPort"], settings["DicomAet"], linked + unmatched)
        assert len(requests.get(url + "/studies", auth=login, timeout=5).json()) == 2
    finally:
        orthanc.terminate()
        orthanc.wait(30)

    system = start_system(home)
    try:
        acc = order["accession_number"]
        body = wait_for(
            lambda: (
                (b := system.api("GET", f"/api/orders/{acc}").json())["study"] and b["study"]["instances"] == 5 and b
            ),
            timeout=60,
        )
        assert body["study"]["study_instance_uid"] == pydicom.dcmread(linked[0]).StudyInstanceUID
        assert [h["to"] for h in body["scheduled_procedure_step"]["history"]] == ["SCHEDULED", "STARTED"]
        other = pydicom.dcmread(unmatched[0]).StudyInstanceUID
        studies = wait_for(lambda: (s := _studies(system)).get(other, {}).get("instances") == 2 and s)
        assert len(studies) == 2 and studies[other]["unmatched"] is True
        health = wait_for(lambda: (h := system.api("GET", "/api/health").json())["sync"]["backlog"] == 0 and h)
        assert health["sync"]["feed_cursor"] == health["sync"]["orthanc_last_change"]
    finally:
        stop_system(system)


def test_orthanc_killed_mid_study_ends_linked_with_the_right_count(tmp_path):
    home = tmp_path / "home"
    system = start_system(home)
    files = []
    try:
        _register(system, "KILL-1", "Killian", "Oskar")
        order = _order(system, "KILL-1")
        acc = order["accession_number"]
        files = write_series(tmp_path / "s", 6, patient_id="KILL-1", patient_name="Killian^Oskar", accession=acc)
        assert system.storescu(files[:3]).returncode == 0
        wait_for(lambda: (system.api("GET", f"/api/orders/{acc}").json()["study"] or {}).get("instances") == 3)
        (orthanc_pid,) = [pid for pid, comm in _children(system.proc.pid) if comm == "Orthanc"]
        os.kill(orthanc_pid, signal.SIGKILL)
        assert system.proc.wait(60) == 1  # the supervisor says Orthanc died and stops the rest
        assert b"orthanc stopped unexpectedly" in (home / "up.log").read_bytes()
    finally:
        stop_system(system)

    system = start_system(home)
    try:
        assert system.storescu(files[3:]).returncode == 0
        body = wait_for(
            lambda: (
                (b := system.api("GET", f"/api/orders/{acc}").json())["study"]
                and b["study"]["instances"] == 6
                and b["study"]["stable_at"]
                and b
            ),
            timeout=60,
        )
        suid = body["study"]["study_instance_uid"]
        assert list(_studies(system)) == [suid]  # one study, linked once

        # Duplicate and out-of-order deliveries change nothing.
        oid = body["study"]["orthanc_id"]
        state = {
            "StudyInstanceUID": suid,
            "AccessionNumber": acc,
            "PatientID": "KILL-1",
            "CountSeries": 1,
            "CountInstances": 3,
        }
        late = {"seq": 1, "change": "NewSeries", "orthanc_id": oid, "study": state}
        assert system.api("POST", "/api/internal/study-events", json=late).status_code == 200
        current = {"seq": 10**8, "change": "StableStudy", "orthanc_id": oid, "study": dict(state, CountInstances=6)}
        for _ in range(2):
            assert system.api("POST", "/api/internal/study-events", json=current).status_code == 200
        after = system.api("GET", f"/api/orders/{acc}").json()
        assert after["study"]["instances"] == 6
        assert after["study"]["stable_at"] == body["study"]["stable_at"]
        assert [h["to"] for h in after["scheduled_procedure_step"]["history"]] == ["SCHEDULED", "STARTED"]
        assert list(_studies(system)) == [suid]
    finally:
        stop_system(system)


def test_coercion_on_stable_corrects_a_typo_at_the_console(tmp_path):
    system = start_system(tmp_path / "home", {"ORTHANC_RIS_COERCE_ON_STABLE": "true"})
    try:
        _register(system, "COERCE-1", "Lambert", "Hugo")
        acc = _order(system, "COERCE-1")["accession_number"]
        files = write_series(tmp_path / "s", 3, patient_id="COERCE-1", patient_name="Lambret^Hugo", accession=acc)
        assert system.storescu(files).returncode == 0
        suid = pydicom.dcmread(files[0]).StudyInstanceUID

        def orthanc_name():
            hits = [h for h in system.orthanc("POST", "/tools/lookup", data=suid).json() if h["Type"] == "Study"]
            study = system.orthanc("GET", f"/studies/{hits[0]['ID']}").json() if hits else {}
            return study.get("PatientMainDicomTags", {}).get("PatientName")

        wait_for(lambda: orthanc_name() == "Lambert^Hugo", timeout=60)
        body = wait_for(
            lambda: (
                (b := system.api("GET", f"/api/orders/{acc}").json())["study"] and b["study"]["instances"] == 3 and b
            )
        )
        assert body["study"]["study_instance_uid"] == suid
    finally:
        stop_system(system)
