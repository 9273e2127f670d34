"""Nothing lost, nothing doubled, under load: 4 API clients and 2 HL7 connections create,
move and cancel orders on the same few patients at once, while a modality reports MPPS and
images arrive for the same orders (tests/fixtures/load.py), against the whole system
(`orthanc-ris up`: real Orthanc with the plugin, the RIS, MPPS SCP, HL7 listener). Runs on
SQLite and, in the PostgreSQL pass, on PostgreSQL.

What must hold: no server error anywhere (API 5xx, HL7 internal-error ACK, MPPS processing
failure, a traceback in the log); every accession number handed out once; every HL7
message acknowledged AA applied exactly once (a re-send is answered as a duplicate and
changes nothing); every step's history a legal path of the state table. The same new MRN
and the same accession number sent by four clients at once: one 201, three 409s."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from tests.conftest import _require_debian_tools, start_system, stop_system, wait_for
from tests.e2e.test_e2e_loop import _register
from tests.fixtures.load import Load, illegal_histories, processed_per_control_id

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
SECONDS = 20
PATIENTS = 6


def _at_once(n: int, call) -> list:
    """Run `call(i)` from n threads released together; their results."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i):
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_writers_lose_nothing_and_double_nothing(tmp_path):
    _require_debian_tools()
    seed = random.randrange(10**6)
    print(f"seed {seed}")
    system = start_system(tmp_path / "home")
    try:
        system.add_station("CT1", "CT")
        patients = [f"LOAD-{n}" for n in range(PATIENTS)]
        for n, mrn in enumerate(patients):
            _register(system, mrn, "Loadley", f"Number{n}")

        # The same new patient and the same accession number, four times at once.
        new = {"mrn": "RACE-1", "family_name": "Racer", "given_name": "Rita"}
        codes = _at_once(4, lambda i: system.api("POST", "/api/patients", json=new).status_code)
        assert sorted(codes) == [201, 409, 409, 409], codes
        order = {
            "mrn": "RACE-1",
            "procedure_code": "CTHEAD",
            "modality": "CT",
            "accession_number": "RACE-ACC-1",
            "scheduled_start": "2030-01-01T09:00",
        }
        codes = _at_once(4, lambda i: system.api("POST", "/api/orders", json=order).status_code)
        assert sorted(codes) == [201, 409, 409, 409], codes

        load = Load(system, tmp_path / "load", patients, seed)
        elapsed = load.run(SECONDS)
        rate = load.orders_placed / elapsed
        print(
            f"{load.orders_placed} orders in {elapsed:.1f} s ({rate:.1f}/s) by 6 writers; "
            f"API {dict(load.api_status)}; HL7 {dict(load.hl7_acks)}; MPPS {dict(load.mpps_status)}; "
            f"images {load.images}"
        )

        assert load.api_errors == [], load.api_errors[:10]
        assert load.hl7_errors == [], load.hl7_errors[:10]
        # MPPS may be refused for a step canceled meanwhile (0x0110 with the reason), never
        # fail inside (its "processing failure" log line; the status comment "internal error").
        assert load.orders_placed > 20 and load.images > 0  # the load did happen

        # Every accession handed out once, and every order there to be read.
        assert len(set(load.api_accessions)) == len(load.api_accessions)
        assert not set(load.api_accessions) & set(load.hl7_applied.values())
        # Every AA'd HL7 order applied exactly once, on the patient it named.
        processed = processed_per_control_id(system)
        assert all(n == 1 for n in processed.values()), [k for k, n in processed.items() if n > 1]
        for ctl, acc in load.hl7_applied.items():
            assert processed[f"HOSP|{ctl}"] == 1, ctl
            r = system.api("GET", f"/api/orders/{acc}")
            assert r.status_code == 200 and r.json()["patient"]["mrn"] in patients, acc
        # A re-send of an applied message is a duplicate, answered AA, applied no more.
        assert all(text.startswith("AA duplicate") for _, text in load.hl7_duplicates), load.hl7_duplicates[:5]

        # Let the last study events land, then every step's history is a legal path.
        def quiet():
            return system.api("GET", "/api/sync").status_code == 200

        wait_for(quiet, timeout=30)
        bad = illegal_histories(system, load.api_accessions + list(load.hl7_applied.values()))
        assert bad == {}, bad

        log = (system.home / "up.log").read_text(errors="replace")
        assert "Traceback" not in log and "processing failure" not in log
        answered = Counter(line.split()[-3] for line in log.splitlines() if " ms" in line and "ris_app.access" in line)
        assert not any(code.startswith("5") for code in answered), answered
    finally:
        stop_system(system)
