"""Nothing lost, nothing doubled: reports signed while the whole system (`orthanc-ris up`)
is SIGKILLed at random moments, restarted, reach Orthanc (one Encapsulated PDF and one SR
per signed version, by SOP Instance UID) and the test EHR (one ORU per report version,
counted by MSH-10: an outbox row re-sent after a crash keeps its control ID, which is how
an HL7 receiver tells a repeat) exactly once."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from tests.conftest import _require_debian_tools, start_system, stop_system, wait_for
from tests.e2e.test_e2e_loop import _order, _register
from tests.fixtures import hl7_peer
from tests.fixtures.dicom_factory import write_series

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
REPORTS = 10
KILLS = 3
PER_ROUND = 3  # signatures tried before each kill: every round has work in flight when it lands
PASSWORD = "crash-reader-123"


def _reader(system) -> None:
    env = {**system.env, "RIS_TEST_PASSWORD": PASSWORD}
    cli = str(Path(sys.executable).parent / "orthanc-ris")
    subprocess.run(
        [
            cli,
            "create-user",
            "rex",
            "--role",
            "radiologist",
            "--full-name",
            "Dr Rex",
            "--password-env",
            "RIS_TEST_PASSWORD",
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(system) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{system.ris_url}/login", timeout=10)
    r = s.post(page.url, data={"username": "rex", "password": PASSWORD, "csrf_token": _csrf(page.text)}, timeout=10)
    assert r.ok
    return s


def _signed(system, uid: str) -> bool:
    r = system.api("GET", f"/api/studies/{uid}/report")
    return r.status_code == 200 and r.json()["status"] == "FINAL"


def _sign(system, http: requests.Session, uid: str) -> None:
    page = http.get(f"{system.ris_url}/reading/by-uid/{uid}", timeout=10)
    page.raise_for_status()
    data = {
        "impression": f"Impression of {uid[-6:]}.",
        "action": "sign",
        "confirmed": "1",
        "csrf_token": _csrf(page.text),
    }
    http.post(page.url.rstrip("/") + "/report", data=data, timeout=10).raise_for_status()


def _kill_everything(pid: int) -> None:
    """SIGKILL `orthanc-ris up` and every part: each part runs in its own session, so the
    supervisor's process group alone would leave them running; kill every group of the tree."""
    parents: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[ppid].append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += parents.get(p, [])
    groups = set()
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(p))
    for g in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(g, signal.SIGKILL)


def _sign_until_killed(system, uids: list[str], delay: float) -> None:
    """Sign the reports not signed yet, one after the other, while the whole system is
    SIGKILLed after `delay` seconds (mid-signature, mid-task or mid-send: wherever it lands)."""
    killer = threading.Timer(delay, _kill_everything, (system.proc.pid,))
    killer.start()
    try:
        http = _login(system)
        for uid in [uid for uid in uids if not _signed(system, uid)][:PER_ROUND]:
            if system.proc.poll() is not None:
                break
            _sign(system, http, uid)
    except requests.RequestException:
        pass  # killed under our feet
    finally:
        killer.join()
        system.proc.wait(30)


def _everything_done(system, uids: list[str]) -> dict[str, dict] | None:
    reports = {uid: system.api("GET", f"/api/studies/{uid}/report").json() for uid in uids}
    for body in reports.values():
        for v in body["versions"]:
            if v["status"] == "FINAL" and {t["state"] for t in v["tasks"]} != {"done"}:
                return None
    return reports


def test_signed_reports_reach_orthanc_and_the_ehr_exactly_once_across_kills(tmp_path):
    _require_debian_tools()
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    print(f"seed {seed}")
    ehr = hl7_peer.Receiver()
    home = tmp_path / "home"
    extra = {"ORTHANC_RIS_HL7_DESTINATIONS": f"EHR=127.0.0.1:{ehr.port}"}
    system = start_system(home, extra)
    # PostgreSQL pass: restarts keep the databases the first start made (it would make fresh ones).
    extra |= {
        k: system.env[k] for k in ("ORTHANC_RIS_DATABASE_URL", "ORTHANC_RIS_ORTHANC_INDEX_URL") if k in system.env
    }
    try:
        _reader(system)
        files, accessions = [], []
        for n in range(REPORTS):
            mrn = f"CRASH-{n}"
            _register(system, mrn, "Crashley", f"Number{n}")
            acc = _order(system, mrn)["accession_number"]
            accessions.append(acc)
            files += write_series(tmp_path / f"s{n}", 1, patient_id=mrn, patient_name=f"Crashley^N{n}", accession=acc)
        assert system.storescu(files).returncode == 0

        def linked():
            studies = [system.api("GET", f"/api/orders/{acc}").json()["study"] for acc in accessions]
            return all(studies) and [st["study_instance_uid"] for st in studies]

        uids = wait_for(linked, timeout=60)

        for _ in range(KILLS):
            _sign_until_killed(system, uids, rng.uniform(0.2, 2.0))
            system = start_system(home, extra)
            print("signed after a kill:", sum(_signed(system, uid) for uid in uids), "of", len(uids))  # -s shows it
        http = _login(system)
        for uid in uids:
            if not _signed(system, uid):
                _sign(system, http, uid)

        reports = wait_for(lambda: _everything_done(system, uids), timeout=60, step=0.5)
        expected = {f"{body['id']}.1" for body in reports.values()}
        by_report: dict[str, set[str]] = defaultdict(set)

        def all_orus_in():
            by_report.clear()
            for m in ehr.messages("ORU"):
                by_report[hl7_peer.fields(m, "OBX")[4]].add(hl7_peer.fields(m, "MSH")[10])
            return set(by_report) == expected

        wait_for(all_orus_in, timeout=30)
        assert {rid: len(ids) for rid, ids in by_report.items()} == dict.fromkeys(expected, 1)

        for uid, body in reports.items():
            (v,) = body["versions"]
            found = system.orthanc(
                "POST", "/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": uid}, "Expand": True}
            ).json()
            documents = sorted(
                i["MainDicomTags"]["SOPInstanceUID"] for i in found if i["MainDicomTags"]["SOPInstanceUID"] != ""
            )
            assert len(found) == 3, found  # the image, the PDF, the SR
            assert {v["sop_instance_uid"], v["sr_instance_uid"]} <= set(documents)
    finally:
        stop_system(system)
        ehr.stop()
